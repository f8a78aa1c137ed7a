/** A throwaway certificate authority and a server certificate signed by it, made with openssl. */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { tmpDir } from './index.js';

export interface TestCert {
  ca: string;
  cert: string;
  key: string;
}

/** `weakLeaf`: the server key is RSA-1024, below OpenSSL's security level 2 (but accepted at 0). */
export function makeCert(names: string[], opts: { weakLeaf?: boolean } = {}): TestCert {
  const dir = tmpDir('blufio-tls-');
  const f = (n: string) => path.join(dir, n);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', '/CN=blufio test CA', '-keyout', f('ca.key'), '-out', f('ca.pem'));
  const leafKey = opts.weakLeaf === true ? ['-newkey', 'rsa:1024'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  ssl('req', ...leafKey, '-nodes', '-subj', '/CN=blufio test server', '-keyout', f('server.key'), '-out', f('server.csr'));
  const san = names.map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
  fs.writeFileSync(f('ext.cnf'), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
  ssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial',
    '-days', '2', '-extfile', f('ext.cnf'), '-out', f('server.pem'));
  return { ca: fs.readFileSync(f('ca.pem'), 'utf8'), cert: fs.readFileSync(f('server.pem'), 'utf8'), key: fs.readFileSync(f('server.key'), 'utf8') };
}

/**
 * A loopback stand-in for an address that silently drops SYNs: a listener in a stopped child
 * process whose accept queue is already full, so the kernel ignores further connection attempts
 * and a client's connect hangs until it gives up (as with a firewalled public address).
 */
import { spawn } from 'node:child_process';
import net from 'node:net';

export interface Blackhole {
  host: string;
  port: number;
  close(): Promise<void>;
}

const LISTEN = `const s = require('node:net').createServer(() => {});
s.listen({ port: 0, host: process.argv[1], backlog: 1 }, () => process.stdout.write(s.address().port + '\\n'));`;

export async function startBlackhole(host: string): Promise<Blackhole> {
  const child = spawn(process.execPath, ['-e', LISTEN, host], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = Number(await new Promise<string>((resolve, reject) => {
    child.once('error', reject);
    child.stdout!.once('data', (d: Buffer) => resolve(String(d).trim()));
  }));
  // Stopped, it never accepts: backlog 1 holds two finished handshakes, and the rest are dropped.
  child.kill('SIGSTOP');
  const fillers = Array.from({ length: 6 }, () => net.connect(port, host).on('error', () => {}));
  await new Promise((resolve) => fillers[0]!.once('connect', resolve));
  await new Promise((resolve) => setTimeout(resolve, 100));
  return {
    host,
    port,
    close: async () => {
      for (const f of fillers) f.destroy();
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await gone;
    },
  };
}

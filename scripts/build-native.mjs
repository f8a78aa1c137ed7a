// Builds the object store's optional native sealer (native/objseal.c) at install. It never fails
// the install: without a compiler, or on any error, blufio seals objects with node:crypto (the
// same bytes, more CPU) and says so here. node-gyp is the one npm itself carries.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

const gyp = process.env.npm_config_node_gyp;
const skip = (why) => {
  console.warn(`blufio: the native object sealer was not built (${why}); objects are sealed with node:crypto, which is slower`);
  process.exit(0);
};
if (process.env.BLUFIO_SKIP_NATIVE === '1') skip('BLUFIO_SKIP_NATIVE=1');
if (gyp === undefined || !fs.existsSync(gyp)) skip('npm did not name its node-gyp');
// A time limit: without a nodedir, node-gyp downloads Node's headers, which a firewall can stall.
const r = spawnSync(process.execPath, [gyp, 'rebuild'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000, maxBuffer: 64 * 1024 * 1024 });
if (r.status !== 0) {
  process.stderr.write(`${(r.stderr || r.stdout || String(r.error ?? '')).split('\n').slice(-15).join('\n')}\n`);
  skip(`node-gyp exited with ${r.status ?? r.signal}`);
}
console.log('blufio: built the native object sealer (build/Release/blufio_objseal.node)');

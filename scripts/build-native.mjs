// Builds the object store's optional native sealer (native/objseal.c) at install. It never fails
// the install: without a compiler, or on any error, blufio seals objects with node:crypto (the
// same bytes, more CPU) and says so here. node-gyp is the one npm itself carries.
import { spawn } from 'node:child_process';
import fs from 'node:fs';

const LIMIT_MS = 300_000;
const gyp = process.env.npm_config_node_gyp;
const skip = (why) => {
  console.warn(`blufio: the native object sealer was not built (${why}); objects are sealed with node:crypto, which is slower`);
  process.exit(0);
};
if (process.env.BLUFIO_SKIP_NATIVE === '1') skip('BLUFIO_SKIP_NATIVE=1');
if (gyp === undefined || !fs.existsSync(gyp)) skip('npm did not name its node-gyp');

// In a process group of its own, so that a time limit stops the compiler and make too, not only
// node-gyp (a build that finished after this script said it failed would be loaded anyway).
// The limit is there because without a nodedir node-gyp downloads Node's headers, which a
// firewall can stall.
const child = spawn(process.execPath, [gyp, 'rebuild'], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
let out = '';
const keep = (d) => {
  out = (out + d).slice(-16_384);
};
child.stdout.setEncoding('utf8').on('data', keep);
child.stderr.setEncoding('utf8').on('data', keep);
let timedOut = false;
const timer = setTimeout(() => {
  timedOut = true;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}, LIMIT_MS);
child.on('error', (err) => {
  clearTimeout(timer);
  skip(`node-gyp did not start: ${err.message}`);
});
child.on('close', (code, signal) => {
  clearTimeout(timer);
  if (timedOut || code !== 0) {
    // A half-built module must not be loaded: remove whatever the build left.
    fs.rmSync('build', { recursive: true, force: true });
    process.stderr.write(`${out.split('\n').slice(-15).join('\n')}\n`);
    skip(timedOut ? `node-gyp took more than ${LIMIT_MS / 1000} s` : `node-gyp exited with ${code ?? signal}`);
  }
  console.log('blufio: built the native object sealer (build/Release/blufio_objseal.node)');
});

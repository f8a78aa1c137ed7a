/**
 * The bench's HTTP server, in its own process so it does not share the event loop with the
 * clients being measured. Prints its port. `/close` answers with `Connection: close`, so every
 * request to it needs a new connection (the guard's per-connection cost).
 */
import http from 'node:http';

const body = JSON.stringify({ ok: true, model: 'bench', tokens: [1, 2, 3, 4, 5, 6, 7, 8] });
const server = http.createServer((req, res) => {
  if (req.url === '/close') res.setHeader('connection', 'close');
  res.setHeader('content-type', 'application/json');
  res.end(body);
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${(server.address() as import('node:net').AddressInfo).port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));

#!/usr/bin/env node
// A TCP proxy on 127.0.0.1 that delays every chunk by <oneWayMs> in each
// direction, so the loopback API server behaves like a cluster 2 * oneWayMs of
// round trip away (a cloud cluster seen from a CI runner). TLS passes through
// untouched. Prints its port, then runs until killed.
//   node bench/latency-proxy.mjs <targetPort> <oneWayMs>
import net from 'node:net';

const [targetPort, oneWayMs] = process.argv.slice(2).map(Number);
if (!targetPort || Number.isNaN(oneWayMs)) {
  console.error('usage: latency-proxy.mjs <targetPort> <oneWayMs>');
  process.exit(2);
}
// setTimeout callbacks with the same delay run in the order they were set, so
// chunks keep their order.
const later = (fn) => setTimeout(fn, oneWayMs);
const pipe = (from, to) => {
  from.on('data', (chunk) => later(() => to.destroyed || to.write(chunk)));
  from.on('end', () => later(() => to.end()));
  from.on('error', () => later(() => to.destroy()));
  from.on('close', () => later(() => to.destroy()));
};
const server = net.createServer((client) => {
  const upstream = net.connect(targetPort, '127.0.0.1');
  pipe(client, upstream);
  pipe(upstream, client);
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));

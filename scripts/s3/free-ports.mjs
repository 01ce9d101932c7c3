#!/usr/bin/env node
// Prints N (default 1) distinct free TCP ports on 127.0.0.1, space-separated, as chosen by the kernel.
// All sockets are held open until every port is known, so the N ports differ from each other.
import net from 'node:net';

const n = Number(process.argv[2] ?? 1);
if (!Number.isInteger(n) || n < 1 || n > 16) {
  console.error('usage: free-ports.mjs [N]');
  process.exit(2);
}

const servers = [];
const ports = [];
for (let i = 0; i < n; i++) {
  const server = net.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  servers.push(server);
  ports.push(server.address().port);
}
await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
console.log(ports.join(' '));

#!/usr/bin/env node
// node-proxy.js — the plain Node.js `net` pipe proxy that the benchmark compares nsproxy with:
// what keeping the bytes in JavaScript costs. Usage (as the harness runs it):
//
//   systemd-socket-activate -l 127.0.0.1:HOSTPORT \
//     nsenter --net=/run/netns/NS node bench/peers/node-proxy.js 127.0.0.1:PORT
//
// The listening socket comes from the host through LISTEN_FDS (fd 3); the whole process runs
// inside the target namespace (Node cannot create a socket in another namespace), so its
// outgoing connections are made there. Half-closes are forwarded (allowHalfOpen + pipe), a
// reset or error on either side destroys both, TCP_NODELAY on both sides.
'use strict';
const net = require('node:net');

const to = process.argv[2] || '';
const m = /^(\d+\.\d+\.\d+\.\d+):(\d+)$/.exec(to);
if (!m) {
  process.stderr.write('node-proxy: usage: node-proxy.js IPV4:PORT (with LISTEN_FDS=1 from systemd-socket-activate)\n');
  process.exit(2);
}
const host = m[1];
const port = Number(m[2]);
if (process.env.LISTEN_FDS !== '1' || process.env.LISTEN_PID !== String(process.pid)) {
  process.stderr.write(`node-proxy: needs one socket from systemd (LISTEN_FDS=${process.env.LISTEN_FDS}, LISTEN_PID=${process.env.LISTEN_PID}, pid ${process.pid})\n`);
  process.exit(2);
}
delete process.env.LISTEN_FDS;
delete process.env.LISTEN_PID;
delete process.env.LISTEN_FDNAMES;

const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: false }, (client) => {
  client.setNoDelay(true);
  const upstream = net.connect({ host, port, allowHalfOpen: true, noDelay: true });
  const destroyBoth = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', destroyBoth);
  upstream.on('error', destroyBoth);
  client.pipe(upstream);
  upstream.pipe(client);
  // with allowHalfOpen, a socket whose both directions ended is closed by Node itself
});
server.on('error', (err) => {
  process.stderr.write(`node-proxy: ${err.message}\n`);
  process.exit(1);
});
server.listen({ fd: 3 }, () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => process.exit(0));

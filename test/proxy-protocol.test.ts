// --proxy-protocol v1|v2: the header each connection brings the service, before any byte of the
// client's, compared byte for byte with one built here from HAProxy's spec, for IPv4 and IPv6
// clients and a client on a Unix socket (which has no address to tell: v1 UNKNOWN, v2 LOCAL).
// The fuzzer (fuzz.test.ts) checks the same with the header on, over hundreds of conversations.
import { mkdtempSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import t from 'tap';

import { spawnActivated } from './helpers/activation';
import { requireProduct } from './helpers/checks';
import { childEnv, type TestLike } from './helpers/env';
import { makeNetns } from './helpers/namespaces';
import { startNsproxy } from './helpers/nsproxy';
import { Proc, waitForStdoutLine } from './helpers/procs';

// Reads one PROXY header (its length from the v2 length field, or up to v1's CRLF), prints it in
// hex, then echoes what follows: the client's bytes must come after the header, untouched.
const SERVER = `
import socket, sys
s = socket.socket(socket.AF_INET6); s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(('::', 7000)); s.listen(16); print('listening', flush=True)
while True:
    c, _ = s.accept()
    data, n = b'', 0
    while True:
        chunk = c.recv(4096)
        if not chunk: break  # the readiness probe: connects, sends nothing
        data += chunk
        if data.startswith(b'\\r\\n\\r\\n\\x00\\r\\nQUIT\\n') and len(data) >= 16 and len(data) >= 16 + int.from_bytes(data[14:16], 'big'):
            n = 16 + int.from_bytes(data[14:16], 'big'); break
        if data.startswith(b'PROXY') and b'\\r\\n' in data:
            n = data.index(b'\\r\\n') + 2; break
    if not n:
        c.close(); continue
    print(data[:n].hex(), flush=True)
    rest = data[n:]
    if rest: c.sendall(rest)
    while True:
        chunk = c.recv(4096)
        if not chunk: break
        c.sendall(chunk)
    c.close()
`;

const V2_SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

/** The header, from HAProxy's proxy-protocol.txt: client `src` connected to `dst`. */
function expected(version: string, src?: net.AddressInfo, dst?: net.AddressInfo): Buffer {
  if (!src || !dst) return version === 'v1' ? Buffer.from('PROXY UNKNOWN\r\n') : Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, 0, 0])]);
  const v6 = src.family === 'IPv6';
  if (version === 'v1') return Buffer.from(`PROXY ${v6 ? 'TCP6' : 'TCP4'} ${src.address} ${dst.address} ${src.port} ${dst.port}\r\n`);
  const ip = (address: string) => (v6 ? ipv6Bytes(address) : Buffer.from(address.split('.').map(Number)));
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(src.port, 0);
  ports.writeUInt16BE(dst.port, 2);
  const addresses = Buffer.concat([ip(src.address), ip(dst.address), ports]);
  const length = Buffer.alloc(2);
  length.writeUInt16BE(addresses.length);
  return Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, v6 ? 0x21 : 0x11]), length, addresses]);
}

function ipv6Bytes(address: string): Buffer {
  const [head, tail] = address.split('::') as [string, string | undefined];
  const words = (part: string | undefined) => (part ? part.split(':').map((w) => parseInt(w, 16)) : []);
  const h = words(head);
  const tl = words(tail);
  const all = tail === undefined ? h : [...h, ...new Array(8 - h.length - tl.length).fill(0), ...tl];
  const out = Buffer.alloc(16);
  all.forEach((w, i) => out.writeUInt16BE(w, i * 2));
  return out;
}

/** Connects, sends `payload`, half-closes, and returns the local/remote addresses and the echo. */
function roundTrip(opts: net.NetConnectOpts, payload: string): Promise<{ local?: net.AddressInfo; remote?: net.AddressInfo; echo: string }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ ...opts, allowHalfOpen: true });
    let echo = '';
    let local: net.AddressInfo | undefined;
    let remote: net.AddressInfo | undefined;
    sock.on('connect', () => {
      if (sock.remotePort !== undefined) {
        local = { address: sock.localAddress!, port: sock.localPort!, family: sock.localFamily! };
        remote = { address: sock.remoteAddress!, port: sock.remotePort, family: sock.remoteFamily! };
      }
      sock.end(payload);
    });
    sock.on('data', (d: Buffer) => (echo += d.toString()));
    sock.on('close', () => resolve({ local, remote, echo }));
    sock.on('error', reject);
  });
}

async function headerServer(t: TestLike, ns: string): Promise<Proc> {
  const server = new Proc('PROXY header server', 'ip', ['netns', 'exec', ns, 'python3', '-c', SERVER], { env: childEnv() });
  t.teardown(() => server.stop('SIGKILL', 1000));
  await waitForStdoutLine(server, (l) => l === 'listening', 10_000, 'the header server');
  return server;
}

for (const version of ['v1', 'v2']) {
  t.test(`--proxy-protocol ${version}: IPv4, IPv6 and Unix socket clients, byte for byte`, async (t) => {
    if (!requireProduct(t)) return;
    const ns = await makeNetns(t);
    const server = await headerServer(t, ns);
    const px = await startNsproxy(t, ['--netns', ns, '--to', '127.0.0.1:7000', '--listen', '127.0.0.1:0', '--listen', '[::1]:0', '--proxy-protocol', version]);
    let seen = 0;
    for (const l of px.listening) {
      const r = await roundTrip({ host: l.host, port: l.port }, `hello ${l.host}`);
      const line = await waitForStdoutLine(server, () => true, 10_000, 'a header', 1 + seen++);
      t.equal(line, expected(version, r.local, r.remote).toString('hex'), `${l.address}: the header names the client ${r.local?.address}:${r.local?.port} and the address it connected to`);
      t.equal(r.echo, `hello ${l.host}`, `${l.address}: the client's bytes follow the header, untouched`);
    }
    const dir = mkdtempSync(path.join(tmpdir(), 'nsproxy-pp-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const sock = path.join(dir, 'pp.sock');
    const activated = await spawnActivated(t, [sock], null, ['--netns', ns, '--to', '127.0.0.1:7000', '--proxy-protocol', version]);
    const r = await roundTrip({ path: sock }, 'from a unix socket');
    await activated.ready();
    const line = await waitForStdoutLine(server, () => true, 10_000, 'a header', 1 + seen);
    t.equal(line, expected(version).toString('hex'), `Unix socket client: ${version === 'v1' ? 'PROXY UNKNOWN' : 'the LOCAL command'}`);
    t.equal(r.echo, 'from a unix socket', "the client's bytes follow, untouched");
  });
}

import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import t from 'tap';

import type { Route } from '../../src/config';
import { formatDuration, parseDuration } from '../../src/duration';
import { tcpCheck, waitUntilReady } from '../../src/readiness';
import type { HostListener } from '../../src/listeners';
import { resolveDestination, routeListeners } from '../../src/routes';
import { complaint } from '../../src/runtimes/runtime';
import { formatBytes, statusLine } from '../../src/status';
import type { Target } from '../../src/target';
import { fakeNative } from './fake-native';

t.test('durations as systemd writes them', async (t) => {
  t.equal(parseDuration('--x', '90'), 90_000);
  t.equal(parseDuration('--x', '500ms'), 500);
  t.equal(parseDuration('--x', '2min'), 120_000);
  t.equal(parseDuration('--x', '1m30s'), 90_000);
  t.equal(parseDuration('--x', '1h 5s'), 3_605_000);
  t.equal(parseDuration('--x', '0.5s'), 500);
  for (const bad of ['', 's', '5 parsecs', '1x', '-1s', 'ms5']) {
    t.throws(() => parseDuration('--ready-timeout', bad), { code: 'NSPROXY_ERR_USAGE', message: /--ready-timeout '.*': not a time span; write e\.g\. 90s/ }, bad);
  }
  t.equal(formatDuration(450), '450 ms');
  t.equal(formatDuration(3210), '3.2 s');
  t.equal(formatDuration(60_000), '60 s', 'whole seconds without a decimal');
  const readme = readFileSync(join(__dirname, '..', '..', 'README.md'), 'utf8');
  t.match(readme, `did not accept a connection within ${formatDuration(60_000)}\``, 'the README quotes the message as it is printed');
  t.equal(formatDuration(Infinity), 'infinity');
});

t.test("durations: all of systemd's units, and infinity", async (t) => {
  t.equal(parseDuration('--x', '250us'), 0.25);
  t.equal(parseDuration('--x', '250usec'), 0.25);
  t.equal(parseDuration('--x', '2d'), 2 * 86_400_000);
  t.equal(parseDuration('--x', '1w 1d'), 8 * 86_400_000);
  t.equal(parseDuration('--x', '1M'), 30.44 * 86_400_000, 'M is a month');
  t.equal(parseDuration('--x', '1m'), 60_000, 'm is a minute');
  t.equal(parseDuration('--x', '1y'), 365.25 * 86_400_000);
  t.equal(parseDuration('--x', 'infinity'), Infinity);
  t.throws(() => parseDuration('--x', '1fortnight'), { message: /not a time span; write e\.g\. 90s, 500ms, 2min, 1m30s, 1d or infinity/ });
});

t.test("runtime complaints become one clean line: the error, not a warning before it", async (t) => {
  const stderr = (text: string) => ({ code: 125, stderr: text });
  t.equal(complaint(stderr('time="2026-11-24T01:00:00Z" level=error msg="container does not exist"\nmore')), 'container does not exist');
  t.equal(complaint(stderr('Error: no such container x\n')), 'no such container x');
  t.equal(complaint(stderr('msg="say \\"hi\\""')), 'say "hi"');
  t.equal(
    complaint(stderr('time="x" level=warning msg="\\"/\\" is not a shared mount, this could cause issues"\ncannot setresgid: Invalid argument\nError: cannot set up namespace using "/usr/bin/newuidmap": exit status 1\n')),
    'cannot set up namespace using "/usr/bin/newuidmap": exit status 1',
    'the Error: line wins over a warning before it',
  );
  t.equal(complaint(stderr('WARN[0000] something\nnewuidmap: write to uid_map failed: Operation not permitted\n')), 'newuidmap: write to uid_map failed: Operation not permitted', 'else the last non-warning line');
  t.equal(complaint({ code: 1, signal: 'SIGKILL', stderr: '' }), 'killed by SIGKILL');
  t.equal(complaint({ code: 3, stderr: '' }), 'exit status 3, no message');
});

const listener = (name?: string): HostListener => ({ fd: 3, address: '127.0.0.1:1', source: 'systemd', name });
const literal = (port: number): Route['destination'] => ({ kind: 'address', endpoint: { address: '127.0.0.1', port, family: 4 } });

t.test('each listener takes its named route, else the unnamed one', async (t) => {
  const routes: Route[] = [{ destination: literal(1) }, { name: 'web', destination: literal(2) }];
  t.same(routeListeners([listener('web'), listener('db'), listener()], routes), [literal(2), literal(1), literal(1)]);
  t.throws(() => routeListeners([listener('db')], [{ name: 'web', destination: literal(2) }]), { code: 'NSPROXY_ERR_USAGE', message: /socket 'db' \(fd 3\) has no --to; add --to db=ADDR:PORT/ });
});

t.test('@NETWORK resolves to the container address on that network, or says where it is', async (t) => {
  const target: Target = { netnsFd: 9, description: 'container web', container: { id: 'x', pid: 5, running: true, status: 'running', networks: { podman: { ipv4: '10.88.0.7' }, v6only: { ipv6: 'fd00::7' } } } };
  t.same(resolveDestination({ kind: 'network', network: 'podman', port: 80 }, target), { address: '10.88.0.7', port: 80, family: 4 });
  t.same(resolveDestination({ kind: 'network', network: 'v6only', port: 80 }, target), { address: 'fd00::7', port: 80, family: 6 });
  t.throws(() => resolveDestination({ kind: 'network', network: 'nope', port: 80 }, target), { code: 'NSPROXY_ERR_NO_ADDRESS', exitCode: 2, message: "container web has no address on network 'nope' (it is on: podman, v6only); use one of those, or a numeric --to" });
});

t.test('STATUS= line with counters', async (t) => {
  t.equal(formatBytes(999), '999 B');
  t.equal(formatBytes(1200), '1.2 kB');
  t.equal(formatBytes(30_000_000), '30.0 MB');
  const stats = { active: 3, total: 120, bytesIn: 1_200_000, bytesOut: 30_000_000, connectFailures: 0, sockmapActive: 2, sockmapTotal: 100, migrations: 7, sockmapLosses: 0 };
  t.equal(statusLine('forwarding a to b in c', stats), 'forwarding a to b in c; 3 active, 120 total, 1.2 MB in, 30.0 MB out');
  t.equal(statusLine('forwarding a to b in c', stats, 'auto'), 'forwarding a to b in c; 3 active, 120 total, 1.2 MB in, 30.0 MB out; auto: 2 on sockmap, 1 on splice, 7 of 100 moved to splice');
  t.equal(statusLine('f', { ...stats, sockmapLosses: 1 }, 'sockmap'), 'f; 3 active, 120 total, 1.2 MB in, 30.0 MB out; sockmap: 2 on sockmap, 1 on splice, 7 of 100 moved to splice, 1 reset for bytes the kernel dropped');
});

t.test('readiness: retries what waiting can cure, fails at once on what it cannot', async (t) => {
  const endpoint = { address: '::1', port: 5432, family: 6 as const };
  const probing = (codes: string[]) => {
    const native = fakeNative();
    let calls = 0;
    native.probeTcp = async () => {
      const code = codes[calls++];
      return code === undefined ? null : { code, errno: -1, syscall: 'connect' };
    };
    return { native, calls: () => calls };
  };
  const options = { timeoutMs: 10_000, onProgress: () => undefined };

  const refused = probing(['ECONNREFUSED', 'ECONNREFUSED']);
  t.same((await waitUntilReady([tcpCheck(refused.native, { netnsFd: 3 }, endpoint, 'container db')], options)).attempts, 3, 'refused twice, then ready');

  const noFamily = probing(['EAFNOSUPPORT', 'EAFNOSUPPORT']);
  await t.rejects(waitUntilReady([tcpCheck(noFamily.native, { netnsFd: 3 }, endpoint, 'container db')], options), {
    code: 'NSPROXY_ERR_NOT_READY',
    message: /^cannot probe \[::1\]:5432 in container db: connect EAFNOSUPPORT; check the --to address/,
  });
  t.equal(noFamily.calls(), 1, 'EAFNOSUPPORT is not retried');
});

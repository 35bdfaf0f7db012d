// Operating nsproxy day to day, against real namespaces:
//   - SIGHUP reloads (no more death by rc 129): the namespace re-opened by name, RELOADING=1
//     with MONOTONIC_USEC= then READY=1; a reload that cannot reach a ready target is fatal;
//   - every option from NSPROXY_* variables, the command line winning; unknown variables and
//     bad values are one-line errors that name the variable;
//   - socket-proxyd's positional ADDR:PORT, and localhost;
//   - --log-connections: one info line per connection with the client, target, bytes, how it ended;
//   - the final fatal line carries <3> when $JOURNAL_STREAM names stderr;
//   - a readable line per event when stdout is a terminal (script(1) gives it one).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { assertOneStderrLine, assertRunning, requireProduct } from './helpers/checks';
import { echoPingPong, freePort } from './helpers/client';
import { MAIN_JS, NODE, REPO_ROOT, childEnv } from './helpers/env';
import { makeNetns, startServerInNetns } from './helpers/namespaces';
import { datagrams, notifyReceiver } from './helpers/notify';
import { runNsproxy, runShell, startNsproxy } from './helpers/nsproxy';
import { mustRun, runCommand } from './helpers/procs';

const PORT = 7300;
const TO = `127.0.0.1:${PORT}`;

t.test('SIGHUP: the target resolved again, RELOADING=1 ... READY=1, no exit', async (t) => {
  if (!requireProduct(t)) return;
  const ns = await makeNetns(t);
  const first = await startServerInNetns(t, ns, 'echo', [TO]);
  const sock = `@nsproxy-t-${process.pid}-reload`;
  const receiver = await notifyReceiver(t, sock);
  const px = await startNsproxy(t, ['--netns', ns, '--to', TO, '--listen', '127.0.0.1:0', '--ready-timeout', '3s'], { env: { NOTIFY_SOCKET: sock } });
  const port = px.listening[0]?.port as number;
  t.same((await echoPingPong(port, '127.0.0.1', ['before\n'])).replies, ['before\n']);

  // the namespace is made anew under the same name; nsproxy still holds the old one
  await first.proc.stop('SIGTERM', 5000);
  await mustRun('ip', ['netns', 'del', ns]);
  await mustRun('ip', ['netns', 'add', ns]);
  await mustRun('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  await startServerInNetns(t, ns, 'echo', [TO]);
  const before = datagrams(receiver).length;
  process.kill(px.pid, 'SIGHUP');
  const reloaded = await px.waitForLog((l) => l.msg === 'reloaded', 15000, '"reloaded"');
  t.equal(reloaded.namespaceChanged, true, 'the path was opened again: a new namespace');
  t.same((await echoPingPong(port, '127.0.0.1', ['after\n'])).replies, ['after\n'], 'forwarding into the new namespace');
  assertRunning(t, px, 'nsproxy survived SIGHUP');
  const sent = datagrams(receiver).slice(before);
  const reloading = sent.findIndex((d) => d.includes('RELOADING=1'));
  t.match(sent[reloading] ?? '', /MONOTONIC_USEC=\d+/, 'RELOADING=1 with MONOTONIC_USEC=');
  t.ok(sent.findIndex((d, i) => i > reloading && d.includes('READY=1')) > reloading, 'then READY=1', { sent });

  process.kill(px.pid, 'SIGHUP');
  const again = await px.waitForLog((l) => l.msg === 'reloaded' && l.namespaceChanged === false, 15000, 'a second "reloaded"');
  t.equal(again.namespaceChanged, false, 'nothing changed: the engine stays where it is');

  // the namespace is gone: the reload cannot reach a ready target within --ready-timeout
  await mustRun('ip', ['netns', 'del', ns]);
  process.kill(px.pid, 'SIGHUP');
  const exit = await px.proc.exited;
  t.equal(exit.code, 2, 'a reload that fails is fatal, as a start would be: a missing namespace is exit 2');
  t.match(px.stderr, /^nsproxy: --netns: \/run\/netns\/\S+ does not exist; create it with ip netns add/m);
  await mustRun('ip', ['netns', 'add', ns]); // the teardown deletes it
});

t.test('options from NSPROXY_* variables; the command line wins; --log-connections', async (t) => {
  if (!requireProduct(t)) return;
  const ns = await makeNetns(t);
  await startServerInNetns(t, ns, 'echo', [TO]);
  const px = await startNsproxy(t, [], {
    env: { NSPROXY_NETNS: ns, NSPROXY_TO: TO, NSPROXY_LISTEN: '127.0.0.1:0', NSPROXY_LOG_CONNECTIONS: '1', NSPROXY_CONNECTIONS_MAX: '7' },
  });
  const ready = await px.ready();
  t.equal(ready.connectionsMax, 7, 'NSPROXY_CONNECTIONS_MAX=7');
  t.equal(ready.to, TO, 'NSPROXY_TO');
  const port = px.listening[0]?.port as number;
  const r = await echoPingPong(port, '127.0.0.1', ['12345\n', 'abc\n']);
  t.same(r.replies, ['12345\n', 'abc\n']);
  const line = await px.waitForLog((l) => l.msg === 'connection', 10000, 'the connection line');
  t.equal(line.level, 30, 'at level info');
  t.match(String(line.client), /^127\.0\.0\.1:\d+$/, 'the client address');
  t.equal(line.to, TO);
  t.equal(line.listener, px.listening[0]?.address);
  t.equal(line.bytesIn, 10, 'bytes client -> target');
  t.equal(line.bytesOut, 10, 'bytes target -> client');
  t.equal(line.end, 'closed', 'how it ended');
  t.type(line.durationMs, 'number');
  await px.stop();

  const cliWins = await startNsproxy(t, ['--to', TO, '--listen', '127.0.0.1:0'], { env: { NSPROXY_NETNS: ns, NSPROXY_TO: '10.9.9.9:1' } });
  t.equal((await cliWins.ready()).to, TO, '--to on the command line wins over NSPROXY_TO');
  await cliWins.stop();
});

t.test('a connection that cannot reach the target is logged with how it ended', async (t) => {
  if (!requireProduct(t)) return;
  const ns = await makeNetns(t);
  const server = await startServerInNetns(t, ns, 'echo', [TO]);
  const px = await startNsproxy(t, ['--netns', ns, '--to', TO, '--listen', '127.0.0.1:0', '--log-connections'], {});
  const port = px.listening[0]?.port as number;
  await server.proc.stop('SIGTERM', 5000); // nothing listens at --to any more
  await echoPingPong(port, '127.0.0.1', ['x\n'], '', 5000);
  const line = await px.waitForLog((l) => l.msg === 'connection', 10000, 'the connection line');
  t.equal(line.end, 'connect failed (ECONNREFUSED)', 'end: connect failed (ECONNREFUSED)');
  t.match(String(line.client), /^127\.0\.0\.1:\d+$/, 'the client is named even though it never reached the target');
  await px.stop();
});

t.test('bad variables: one line naming the variable, exit 2', async (t) => {
  if (!requireProduct(t)) return;
  const unknown = await runNsproxy(['--pid', '1', '--to', TO], { NSPROXY_FROBNICATE: '1' });
  assertOneStderrLine(t, unknown, 2);
  t.match(unknown.stderr, /^nsproxy: NSPROXY_FROBNICATE is set, but nsproxy has no option it would set/);
  const bad = await runNsproxy(['--pid', '1', '--to', TO], { NSPROXY_READY_TIMEOUT: 'soon' });
  assertOneStderrLine(t, bad, 2);
  t.match(bad.stderr, /^nsproxy: --ready-timeout 'soon' \(from NSPROXY_READY_TIMEOUT\): not a time span/);
});

t.test("socket-proxyd's positional ADDR:PORT, and localhost", async (t) => {
  if (!requireProduct(t)) return;
  const ns = await makeNetns(t);
  await startServerInNetns(t, ns, 'echo', [TO]);
  const px = await startNsproxy(t, ['--netns', ns, `localhost:${PORT}`, '--listen', 'localhost:0']);
  t.equal((await px.ready()).to, TO, 'localhost:PORT is 127.0.0.1:PORT, given as socket-proxyd takes it');
  t.same((await echoPingPong(px.listening[0]?.port as number, '127.0.0.1', ['p\n'])).replies, ['p\n']);
  await px.stop();
  const both = await runNsproxy(['--netns', ns, TO, '--to', TO]);
  assertOneStderrLine(t, both, 2);
  t.match(both.stderr, /and --to both given; give the target address once/);
  const two = await runNsproxy(['--netns', ns, TO, TO]);
  assertOneStderrLine(t, two, 2);
  const unix = await runNsproxy(['--netns', ns, '/run/postgresql/.s.PGSQL.5432']);
  assertOneStderrLine(t, unix, 2);
  t.match(unix.stderr, /a Unix socket path; nsproxy forwards to TCP addresses only/);
});

t.test('the fatal line has priority <3> when stderr is the journal', async (t) => {
  if (!requireProduct(t)) return;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsproxy-t-journal-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'stderr');
  fs.writeFileSync(file, '');
  const st = fs.statSync(file);
  // stderr is the file, and JOURNAL_STREAM names it (as systemd names the journal's socket)
  const r = await runShell('exec 2>>"$1"; exec "$2" "$3" --pid 0 --to 127.0.0.1:1', [file, NODE, MAIN_JS], { JOURNAL_STREAM: `${st.dev}:${st.ino}` });
  t.equal(r.code, 2);
  t.match(fs.readFileSync(file, 'utf8'), /^<3>nsproxy: --pid '0': not a process ID/, '<3> prefix');
  const plain = await runNsproxy(['--pid', '0', '--to', '127.0.0.1:1'], { JOURNAL_STREAM: `${st.dev}:${st.ino}` });
  t.match(plain.stderr, /^nsproxy: /, 'no prefix when JOURNAL_STREAM names another file');
});

t.test('a terminal gets readable lines, not JSON', async (t) => {
  if (!requireProduct(t)) return;
  const ns = await makeNetns(t);
  await startServerInNetns(t, ns, 'echo', [TO]);
  const port = await freePort();
  // script(1) runs nsproxy on a pseudo-terminal; --exit-idle-time ends it by itself
  const command = `'${NODE}' '${MAIN_JS}' --netns ${ns} --to ${TO} --listen 127.0.0.1:${port} --exit-idle-time 1s`;
  const r = await runCommand('script', ['-qfec', command, '/dev/null'], { env: childEnv({ TERM: 'dumb' }), timeoutMs: 30000, cwd: REPO_ROOT });
  t.equal(r.code, 0, 'exits 0 when idle', { stdout: r.stdout, stderr: r.stderr });
  const lines = r.stdout.split(/\r?\n/).filter((l) => l.trim() !== '');
  t.ok(lines.length >= 4, `lines: ${lines.length}`, { lines });
  t.notOk(lines.some((l) => l.startsWith('{')), 'no JSON on a terminal');
  t.match(r.stdout, new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3}  INFO listening address=127\\.0\\.0\\.1:${port} source=listen fd=\\d+\\r?$`, 'm'));
  t.match(r.stdout, /^\d\d:\d\d:\d\d\.\d{3} {2}INFO ready target="netns \S+" /m);
  t.match(r.stdout, /^\d\d:\d\d:\d\d\.\d{3} {2}INFO idle, exiting idleMs=\d+/m);
});

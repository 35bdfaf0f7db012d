import t from 'tap';

import { takePassedSockets } from '../../src/systemd';
import { fakeNative } from './fake-native';

const noClose = () => undefined;

t.test('no LISTEN_FDS: nothing passed, nothing said', async (t) => {
  t.same(takePassedSockets({}, 50, fakeNative(), noClose), { sockets: [] });
});

t.test('our LISTEN_PID: the named sockets, and LISTEN_* removed from the environment', async (t) => {
  const env: NodeJS.ProcessEnv = { LISTEN_FDS: '2', LISTEN_PID: '50', LISTEN_FDNAMES: 'db:web', OTHER: 'x' };
  const passed = takePassedSockets(env, 50, fakeNative({ 3: {}, 4: {} }), noClose);
  t.same(passed.sockets.map((s) => [s.fd, s.name]), [[3, 'db'], [4, 'web']]);
  t.same(env, { OTHER: 'x' });
});

t.test('unnamed sockets are "unknown", as sd_listen_fds_with_names says', async (t) => {
  const passed = takePassedSockets({ LISTEN_FDS: '1', LISTEN_PID: '50' }, 50, fakeNative({ 3: {} }), noClose);
  t.equal(passed.sockets[0]?.name, 'unknown');
});

t.test("someone else's LISTEN_PID: ignored, with a reason, and still removed", async (t) => {
  const env: NodeJS.ProcessEnv = { LISTEN_FDS: '1', LISTEN_PID: '49' };
  const passed = takePassedSockets(env, 50, fakeNative({ 3: {} }), noClose);
  t.same(passed.sockets, []);
  t.match(passed.ignored, /LISTEN_PID=49 is not this process \(50\)/);
  t.same(env, {});
});

t.test('LISTEN_PIDFDID must match our pidfd inode when set', async (t) => {
  let closed = 0;
  const good = takePassedSockets({ LISTEN_FDS: '1', LISTEN_PID: '50', LISTEN_PIDFDID: '777' }, 50, fakeNative({ 3: {} }, '777'), () => closed++);
  t.equal(good.sockets.length, 1);
  t.equal(closed, 1, 'the pidfd opened for the check is closed');
  const bad = takePassedSockets({ LISTEN_FDS: '1', LISTEN_PID: '50', LISTEN_PIDFDID: '778' }, 50, fakeNative({ 3: {} }, '777'), noClose);
  t.same(bad.sockets, []);
  t.match(bad.ignored, /LISTEN_PIDFDID does not match/);
});

t.test('bad passed sockets are configuration errors (exit 2)', async (t) => {
  const cases: [NodeJS.ProcessEnv, Parameters<typeof fakeNative>[0], RegExp][] = [
    [{ LISTEN_FDS: '0', LISTEN_PID: '50' }, {}, /LISTEN_FDS=0: no sockets were passed/],
    [{ LISTEN_FDS: 'x', LISTEN_PID: '50' }, {}, /LISTEN_FDS=x/],
    [{ LISTEN_FDS: '1', LISTEN_PID: '50' }, { 3: 'closed' }, /fd 3 \(unknown\) from LISTEN_FDS is not open/],
    [{ LISTEN_FDS: '1', LISTEN_PID: '50' }, { 3: { isSocket: false } }, /is not a stream socket/],
    [{ LISTEN_FDS: '1', LISTEN_PID: '50' }, { 3: { type: 2 } }, /is not a stream socket; use ListenStream=/],
    [{ LISTEN_FDS: '1', LISTEN_PID: '50', LISTEN_FDNAMES: 'db' }, { 3: { listening: false } }, /fd 3 \(db\).*not a listening one; set Accept=no/],
  ];
  for (const [env, sockets, pattern] of cases) {
    t.throws(() => takePassedSockets(env, 50, fakeNative(sockets), noClose), { code: 'NSPROXY_ERR_LISTEN_FDS', exitCode: 2, message: pattern });
  }
});

// A listener that accept() keeps failing on, for a reason other than running out of fds or
// memory, must not make nsproxy spin: it backs off, and reports the failures at most once a
// second. The listener is broken from outside with shutdown(SHUT_RD) on a duplicate of nsproxy's
// own fd (pidfd_getfd): the socket stays readable (EPOLLHUP) and accept() returns EINVAL.
import t from 'tap';

import { requireProduct } from './helpers/checks';
import { cpuShare } from './helpers/cpu';
import { makeNetns, startServerInNetns } from './helpers/namespaces';
import { startNsproxy } from './helpers/nsproxy';
import { mustRun } from './helpers/procs';

const SHUT_LISTENER = `
import ctypes, os, socket, sys
pid, fd = int(sys.argv[1]), int(sys.argv[2])
libc = ctypes.CDLL(None, use_errno=True)
pidfd = os.pidfd_open(pid)
dup = libc.syscall(438, pidfd, fd, 0)  # pidfd_getfd
if dup < 0:
    raise OSError(ctypes.get_errno(), 'pidfd_getfd')
socket.socket(fileno=dup).shutdown(socket.SHUT_RD)
`;

t.test('accept() failing with EINVAL: no busy loop, rate-limited reports', async (t) => {
  if (!requireProduct(t)) return;
  const ns = await makeNetns(t);
  await startServerInNetns(t, ns, 'echo', ['127.0.0.1:7000']);
  const px = await startNsproxy(t, ['--netns', ns, '--to', '127.0.0.1:7000', '--listen', '127.0.0.1:0']);
  const fd = Number(px.listening[0]!.fd);
  await mustRun('python3', ['-c', SHUT_LISTENER, String(px.pid), String(fd)]);
  const share = await cpuShare(px.pid, 3000);
  t.ok(share < 0.1, `nsproxy used ${(share * 100).toFixed(1)} % of a core with a broken listener (< 10 %)`);
  const failures = px.logs.filter((l) => l.msg === 'accept failed');
  t.ok(failures.length >= 1 && failures.length <= 5, `"accept failed" logged ${failures.length} times in ~3 s`);
  t.equal(failures[0]?.code, 'EINVAL', 'with EINVAL');
  t.ok(failures.some((l) => Number(l.count) > 1), 'a report counts the failures since the last one');
  t.ok(px.running, 'nsproxy is still running');
});

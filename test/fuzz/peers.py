"""peers.py — the world a fuzz run needs: a target network namespace with listeners inside, and
the proxy under test (nsproxy as root or as an ordinary user, or systemd-socket-proxyd) started
in front of it. Everything made here is undone by Environment.close(), processes by PID.
"""
import ctypes
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAIN_JS = os.path.join(REPO, 'dist', 'main.js')
SOCKET_PROXYD = '/lib/systemd/systemd-socket-proxyd'
CLONE_NEWNET = 0x40000000
USERS_LOCK = '/run/lock/nsproxy-test-users.lock'
F_GETPIPE_SZ = 1032
PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(None, use_errno=True)


def setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f'setns: {os.strerror(err)}')


class Namespace:
    """An open netns fd; sockets made inside it with socket() stay there for life."""

    def __init__(self, path):
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self.host_fd = os.open('/proc/thread-self/ns/net', os.O_RDONLY | os.O_CLOEXEC)

    def socket(self, family=socket.AF_INET):
        setns(self.fd)
        try:
            return socket.socket(family, socket.SOCK_STREAM)
        finally:
            setns(self.host_fd)

    def listener(self, port=0, backlog=4096):
        s = self.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(('127.0.0.1', port))
        s.listen(backlog)
        s.setblocking(False)
        return s

    def close(self):
        os.close(self.fd)
        os.close(self.host_fd)


def run(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Environment:
    """Target namespace, its listeners and the proxy. `peer`: 'nsproxy' or 'socket-proxyd'."""

    def __init__(self, peer, user=None, nsproxy_args=(), main_js=MAIN_JS, log=print, small_pipes=False):
        self.peer = peer
        self.user = user
        self.log = log
        self.procs = []
        self.netns_name = None
        self.mount = None
        self.ns = None
        self.holder = None
        self.main_js = main_js
        self.stopped = {}
        self.aux = []  # processes that are not the proxy: the namespace holder, the pipe hog
        try:
            self._make_namespace()
            if small_pipes:
                self.fill_pipe_quota()
            self.direct = self.ns.listener()      # direct connections land here
            self.proxied = self.ns.listener()     # connections through the proxy land here
            self.direct_port = self.direct.getsockname()[1]
            self.proxied_port = self.proxied.getsockname()[1]
            closed = self.ns.listener()           # open for the proxies' readiness probe only
            self.closed_port = closed.getsockname()[1]
            self.proxy_port = self._start_proxy(self.proxied_port, nsproxy_args)
            self.refusing_port = self._start_proxy(self.closed_port, nsproxy_args)
            closed.close()
            self._drain(self.proxied)             # the readiness probes' connections
        except BaseException:
            self.close()
            raise

    # ---- the target namespace -------------------------------------------------------------

    def fill_pipe_quota(self):
        """Takes the user past fs.pipe-user-pages-soft with a process of its own holding pipes,
        as a busy rootless user would be: from then on its new pipes get 2 pages (8 KiB) and
        F_SETPIPE_SZ is refused. Only this user is affected, unlike lowering the sysctl."""
        hog = self._spawn(self._as_user(['python3', '-c', PIPE_HOG]))
        self.aux.append(hog)
        if hog.stdout.readline().strip() != 'full':
            raise RuntimeError('could not fill the test user\'s pipe quota')

    def _make_namespace(self):
        if self.user is None:
            self.netns_name = f'nsproxy-fuzz-{os.getpid()}'
            run('ip', 'netns', 'add', self.netns_name)
            run('ip', '-n', self.netns_name, 'link', 'set', 'lo', 'up')
            self.ns = Namespace(f'/run/netns/{self.netns_name}')
            return
        # The shape of a rootless container: a user namespace and a netns owned by the user.
        self.holder = self._spawn(self._as_user(['unshare', '-Urn', 'sh', '-c', 'ip link set lo up && echo up && exec sleep infinity']))
        self.aux.append(self.holder)
        if self.holder.stdout.readline().strip() != 'up':
            raise RuntimeError('unshare -Urn as the test user failed')
        self.ns = Namespace(f'/proc/{self.holder.pid}/ns/net')

    def _as_user(self, argv):
        if self.user is None:
            return argv
        return ['setpriv', '--reuid', self.user, '--regid', self.user, '--init-groups', '--reset-env',
                '--pdeathsig', 'KILL', '--'] + argv

    # ---- the proxy ------------------------------------------------------------------------

    def _spawn(self, argv, **kw):
        # Whatever happens to the fuzzer (a test runner's SIGKILL), what it started dies with it.
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True,
                                preexec_fn=lambda: _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL), **kw)
        self.procs.append(proc)
        return proc

    def _start_proxy(self, target_port, nsproxy_args):
        if self.peer == 'socket-proxyd':
            port = free_port()
            # systemd-socket-activate execs on the first connection; SIGPIPE ignored as under systemd.
            cmd = ['systemd-socket-activate', '-l', f'127.0.0.1:{port}', 'sh', '-c', 'trap "" PIPE; exec "$@"', 'sh',
                   'nsenter', f'--net={self.ns.path}', SOCKET_PROXYD, '--connections-max=4096', f'127.0.0.1:{target_port}']
            self._spawn(cmd, stderr=subprocess.DEVNULL)
            self._wait_listening(port)
            return port
        main_js = self._reachable_main_js()
        where = ['--pid', str(self.holder.pid)] if self.user else ['--netns', self.ns.path]
        argv = self._as_user([shutil.which('node') or 'node', main_js, *where, '--to', f'127.0.0.1:{target_port}',
                              '--listen', '127.0.0.1:0', '--log-level', 'info', *nsproxy_args])
        proc = self._spawn(argv, cwd='/')
        port = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f'nsproxy exited before it was ready: {" ".join(argv)}')
            record = json.loads(line) if line.startswith('{') else {}
            if record.get('msg') == 'listening':
                port = int(record['address'].rsplit(':', 1)[1])
            if record.get('msg') == 'ready':
                break
        else:
            raise RuntimeError('nsproxy did not log "ready" within 30 s')
        self._forward_output(proc)
        return port

    def _forward_output(self, proc):
        """Keep reading the daemon's log (so it never blocks on a full pipe); print warnings."""
        import threading

        def pump():
            for line in proc.stdout:
                if line.startswith('{'):
                    record = json.loads(line)
                    if record.get('msg') == 'stopped':
                        self.stopped[proc.pid] = record
                    if record.get('level', 0) >= 50:
                        self.log(f'nsproxy {proc.pid}: {line.strip()}')
        threading.Thread(target=pump, daemon=True).start()

    def _reachable_main_js(self):
        if self.user is None:
            return self.main_js
        if run(*self._as_user(['test', '-r', self.main_js]), check=False).returncode == 0:
            return self.main_js
        # A parent directory is closed to others (a clone under /root): bind-mount the repository.
        self.mount = tempfile.mkdtemp(prefix='nsproxy-fuzz-repo-', dir='/run')
        os.chmod(self.mount, 0o755)
        run('mount', '--bind', REPO, self.mount)
        return os.path.join(self.mount, os.path.relpath(self.main_js, REPO))

    @staticmethod
    def _wait_listening(port):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            out = run('ss', '-Hltn', f'sport = :{port}').stdout
            if out.strip():
                return
            time.sleep(0.02)
        raise RuntimeError(f'nothing listens on 127.0.0.1:{port}')

    @staticmethod
    def _drain(listener):
        time.sleep(0.05)
        while True:
            try:
                s, _ = listener.accept()
                s.close()
            except BlockingIOError:
                return

    # ---- health -----------------------------------------------------------------------------

    def proxy_pids(self):
        return [p.pid for p in self.procs if p not in self.aux]

    def alive(self):
        return all(p.poll() is None for p in self.procs if p not in self.aux)

    def pipe_capacities(self):
        """The capacities of the pipes nsproxy holds right now (F_GETPIPE_SZ through /proc/PID/fd)."""
        sizes = set()
        for pid in self.proxy_pids():
            try:
                fds = os.listdir(f'/proc/{pid}/fd')
            except OSError:
                continue
            for fd in fds:
                if int(fd) <= 2:
                    continue  # stdio: pipes its parent made
                path = f'/proc/{pid}/fd/{fd}'
                try:
                    if not os.readlink(path).startswith('pipe:'):
                        continue
                    own = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
                except OSError:
                    continue
                try:
                    sizes.add(fcntl.fcntl(own, F_GETPIPE_SZ))
                except OSError:
                    pass
                finally:
                    os.close(own)
        return sizes

    def stop_and_check(self):
        """After the run: every proxy still up; nsproxy stops on SIGTERM with exit 0 and no connection left open."""
        if not self.alive():
            return {'error': 'a proxy died during the run'}
        if self.peer != 'nsproxy':
            return {'alive': True}
        out = {'alive': True, 'active_at_stop': 0}
        for proc in self.procs:
            if proc in self.aux:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(30)
            except subprocess.TimeoutExpired:
                return {'error': f'nsproxy {proc.pid} did not stop within 30 s of SIGTERM'}
            time.sleep(0.1)  # the log pump reads the last lines
            stopped = self.stopped.get(proc.pid)
            if code != 0 or stopped is None:
                return {'error': f'nsproxy {proc.pid} exited {code} without a "stopped" line'}
            out['active_at_stop'] += stopped.get('active', 0)
            for key in ('total', 'sockmapTotal', 'migrations', 'sockmapLosses'):
                out[key] = out.get(key, 0) + stopped.get(key, 0)
        if out['active_at_stop']:
            out['error'] = f'{out["active_at_stop"]} connections still open in nsproxy after every client closed'
        return out

    def close(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        self.procs = []
        for s in ('direct', 'proxied'):
            if hasattr(self, s):
                getattr(self, s).close()
        if self.ns:
            self.ns.close()
            self.ns = None
        if self.netns_name:
            run('ip', 'netns', 'del', self.netns_name, check=False)
            self.netns_name = None
        if self.mount:
            run('umount', self.mount, check=False)
            os.rmdir(self.mount)
            self.mount = None


PIPE_HOG = '''
import fcntl, os, time
pipes = []
while True:
    r, w = os.pipe()
    try:
        fcntl.fcntl(r, 1031, 1 << 20)  # F_SETPIPE_SZ: 256 pages each, until the quota says no
    except PermissionError:
        break
    pipes.append((r, w))
print('full', flush=True)
time.sleep(86400)
'''


def ensure_user(name):
    run('flock', USERS_LOCK, 'sh', '-c', f'id -u {name} >/dev/null 2>&1 || useradd -m -s /bin/sh {name}')
    return name

// help.ts — the text of `nsproxy --help`, which the man page nsproxy(1) is also written from
// (scripts/man.js): one source, so the two never disagree. Data only.

export const USAGE = 'nsproxy (--container NAME | --pid PID | --netns NAME|PATH) --to ADDR:PORT [options]';

export const COMMAND_USAGES = [
  'nsproxy check (--container NAME | --pid PID | --netns NAME|PATH) [--to ADDR:PORT] [--ready-exec CMD | --ready health] [--json]',
  'nsproxy generate --container NAME --to ADDR:PORT [--listen ADDR:PORT]... [--user] [--scale-to-zero] [--quadlet] [--output-dir DIR]',
];

export const DESCRIPTION = `Forward connections from host sockets into another network namespace: a container's,
a process's, or one made by ip netns add. For each connection nsproxy creates a socket inside the
target namespace and splices bytes both ways in native threads; the service needs no published
port, and nsproxy needs no helper process inside the container.`;

export interface HelpSection {
  title: string;
  /** lines as --help prints them (indented two spaces) */
  body: string;
}

export const SECTIONS: HelpSection[] = [
  {
    title: 'COMMANDS',
    body: `  nsproxy check ...     What nsproxy sees of a target, without forwarding anything: the
                        resolved target (runtime, PID, namespace, owner, how nsproxy enters it),
                        its addresses, its listening TCP sockets, a probe of --to and of the
                        readiness check. Exit 0 when all is well, 1 otherwise; --json for scripts.
  nsproxy generate ...  A .socket and .service pair (Type=notify, hardened for the manager) for a
                        container, optionally its quadlet and scale-to-zero drop-ins; to stdout
                        or --output-dir. See nsproxy check --help, nsproxy generate --help.`,
  },
  {
    title: 'READINESS AND RESTARTS',
    body: `  Before accepting anything nsproxy waits until the target is ready, up to --ready-timeout:
  its --to port accepts a TCP connection (probed from inside its namespace), then, if given,
  --ready-exec CMD exits 0 inside the target, and with --ready health podman reports the
  container healthy. Clients wait in the kernel backlog meanwhile; STATUS= says what is being
  waited for. With --container, when the container's process exits nsproxy stops accepting,
  finds the container again (new PID, new namespace), waits until it is ready and resumes;
  open connections end naturally. With --pid, nsproxy exits (status 1) when the process does.`,
  },
  {
    title: 'RELOAD',
    body: `  SIGHUP (ExecReload=kill -HUP $MAINPID) resolves the target again, refreshes @NETWORK
  addresses and waits until the target is ready, with RELOADING=1 (and MONOTONIC_USEC=) then
  READY=1; clients wait in the backlog meanwhile. A reload that cannot reach a ready target
  within --ready-timeout is fatal, with the exit status a start would have had.`,
  },
  {
    title: 'SOCKET ACTIVATION',
    body: `  Run as ExecStart= of a service activated by a .socket unit: the sockets systemd passes
  (LISTEN_FDS, checked against LISTEN_PID and LISTEN_PIDFDID) are used, and then no default
  listener is opened; --to NAME=... picks the target of the socket named NAME
  (FileDescriptorName=). Type=notify works: READY=1, STATUS= with live counters, RELOADING=1
  around a container restart and a reload, STOPPING=1, WATCHDOG=1 (WatchdogSec=). Half-closes
  are forwarded (a client may shut down its sending side and still read the answer); resets too.`,
  },
  {
    title: 'PRIVILEGE',
    body: `  With CAP_SYS_ADMIN in its effective set (root, or a service user given it, e.g.
  AmbientCapabilities=CAP_SYS_ADMIN) nsproxy enters any namespace from its own threads. Without
  it, as an ordinary user, it reaches the namespaces of that user's rootless containers with no
  capabilities, through a helper process (nsproxy-helper) that joins the container's user
  namespace; other users' namespaces are refused.`,
  },
  {
    title: 'DURATIONS',
    body: `  As in systemd: 90 (seconds), 90s, 500ms, 250us, 2min, 1m30s, 1h, 2d, 1w, and infinity.`,
  },
  {
    title: 'EXAMPLES',
    body: `  Forward 127.0.0.1:5432 on the host to PostgreSQL in the podman container test-postgresql,
  once it accepts sessions:
    nsproxy --container test-postgresql --to 127.0.0.1:5432 --ready-exec 'pg_isready -h 127.0.0.1'

  The same as ExecStart= of postgresql-activator.service (Type=notify), activated by a .socket
  unit with ListenStream=5432, in the user's own manager next to a rootless container:
    ExecStart=/usr/local/bin/nsproxy --container test-postgresql --to 127.0.0.1:5432

  Into the namespace of process 4242, or of "ip netns add blue", from every host address:
    nsproxy --pid 4242 --to 127.0.0.1:5432
    nsproxy --netns blue --to 10.0.0.2:80 --listen 0.0.0.0:8080

  The container's address on its podman network "web", exiting after 5 idle minutes:
    nsproxy --container shop --to @web:8080 --exit-idle-time 5min

  What does nsproxy see in there? Units for a container:
    nsproxy check --container test-postgresql --to 127.0.0.1:5432
    nsproxy generate --container test-postgresql --to 127.0.0.1:5432 --listen 5432 --user`,
  },
  {
    title: 'EXIT STATUS',
    body: `  0  stopped by SIGTERM or SIGINT (after draining), or idle for --exit-idle-time
  1  runtime failure: cannot listen, cannot enter the namespace, the target was not ready
     within --ready-timeout, the container is not running, the --pid target exited
  2  bad usage or configuration: options, a --pid or --netns that does not exist, no such
     container, podman/runc missing, a namespace of another user, bad LISTEN_FDS`,
  },
  {
    title: 'ENVIRONMENT',
    body: `  NSPROXY_<OPTION>  every option, e.g. NSPROXY_TO=127.0.0.1:5432, NSPROXY_EXIT_IDLE_TIME=5min,
                    NSPROXY_LOG_CONNECTIONS=1 (repeatable ones: words separated by spaces); the
                    command line wins over the environment. A drop-in sets one option in one
                    line: Environment=NSPROXY_EXIT_IDLE_TIME=5min
  LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES, LISTEN_PIDFDID   sockets passed by systemd (removed
                                                          from the environment once read)
  NOTIFY_SOCKET     Type=notify: READY=1, RELOADING=1, STOPPING=1, STATUS=
  WATCHDOG_USEC, WATCHDOG_PID   WatchdogSec= of the service (pings only when WATCHDOG_PID is
                    unset or names nsproxy)
  JOURNAL_STREAM    when it names stdout, logs are plain lines with syslog priorities; when it
                    names stderr, the final error line gets priority <3>`,
  },
  {
    title: 'SEE ALSO',
    body: `  systemd.socket(5), systemd-socket-proxyd(8), ip-netns(8), podman-inspect(1), podman-exec(1),
  runc-state(8)`,
  },
];

export const EPILOG = SECTIONS.map((section) => `${section.title}\n${section.body}`).join('\n\n');

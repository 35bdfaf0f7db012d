// cli.ts — the command line: options, --help that reads like a man page, exit statuses.
import { closeSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { quickParse, type OptionSpec, type ParsedArgs } from './args';
import { buildConfig, LOG_LEVELS, type RawOptions } from './config';
import { runDaemon } from './daemon';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, NsproxyError } from './errors';
import { createLogger, isJournalStream } from './log';
import { loadNative } from './native';

const DESCRIPTION = `Forward connections from host sockets into another network namespace: a container's,
a process's, or one made by ip netns add. For each connection nsproxy creates a socket inside the
target namespace and splices bytes both ways in native threads; the service needs no published
port, and nsproxy needs no helper process inside the container.`;

const EPILOG = `READINESS AND RESTARTS
  Before accepting anything nsproxy probes the target from inside its namespace (TCP connect)
  until it answers or --ready-timeout passes; clients wait in the kernel backlog meanwhile. With
  --container, when the container's process exits nsproxy stops accepting, finds the container
  again (new PID, new namespace), waits until it answers and resumes; open connections end
  naturally. With --pid, nsproxy exits (status 1) when the process does.

SOCKET ACTIVATION
  Run as ExecStart= of a service activated by a .socket unit: the sockets systemd passes
  (LISTEN_FDS, checked against LISTEN_PID and LISTEN_PIDFDID) are used, and then no default
  listener is opened; --to NAME=... picks the target of the socket named NAME
  (FileDescriptorName=). Type=notify works: READY=1, STATUS= with live counters, RELOADING=1
  around a container restart, STOPPING=1, WATCHDOG=1 (WatchdogSec=). Half-closes are
  forwarded (a client may shut down its sending side and still read the answer); resets too.

ROOTLESS
  As root nsproxy enters any namespace. As an ordinary user it reaches the namespaces of that
  user's rootless containers with no capabilities, through a helper process (nsproxy-helper)
  that joins the container's user namespace; other users' namespaces are refused.

EXAMPLES
  Forward 127.0.0.1:5432 on the host to PostgreSQL in the podman container test-postgresql:
    nsproxy --container test-postgresql --to 127.0.0.1:5432

  The same as ExecStart= of postgresql-activator.service (Type=notify), activated by a .socket
  unit with ListenStream=5432, in the user's own manager next to a rootless container:
    ExecStart=/usr/local/bin/nsproxy --container test-postgresql --to 127.0.0.1:5432

  Into the namespace of process 4242, or of "ip netns add blue", from every host address:
    nsproxy --pid 4242 --to 127.0.0.1:5432
    nsproxy --netns blue --to 10.0.0.2:80 --listen 0.0.0.0:8080

  The container's address on its podman network "web", exiting after 5 idle minutes:
    nsproxy --container shop --to @web:8080 --exit-idle-time 5min

EXIT STATUS
  0  stopped by SIGTERM or SIGINT (after draining), or idle for --exit-idle-time
  1  runtime failure: cannot listen, cannot enter the namespace, the target did not answer
     within --ready-timeout, the container is not running, the --pid target exited
  2  bad usage or configuration: options, a --pid or --netns that does not exist, no such
     container, podman/runc missing, a namespace of another user, bad LISTEN_FDS

ENVIRONMENT
  LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES, LISTEN_PIDFDID   sockets passed by systemd (removed
                                                          from the environment once read)
  NOTIFY_SOCKET, WATCHDOG_USEC   Type=notify and WatchdogSec= of the service
  JOURNAL_STREAM    when it names stdout, logs are plain lines with syslog priorities
  NSPROXY_DEBUG=1   same as --debug

SEE ALSO
  systemd.socket(5), systemd-socket-proxyd(8), ip-netns(8), podman-inspect(1), runc-state(8)`;

function packageVersion(): string {
  const manifest = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version: string };
  return manifest.version;
}

/** The options, in --help order: read by yargs, and by quickParse() for the common case. */
export const OPTIONS: Record<string, OptionSpec> = {
  container: { type: 'string', requiresArg: true, description: 'Target a container by NAME or ID, resolved with --runtime; followed across restarts' },
  runtime: { type: 'string', requiresArg: true, description: 'How --container is resolved: podman (podman inspect, the default) or runc (runc state)' },
  'runc-root': { type: 'string', requiresArg: true, description: 'runc state directory (runc --root), for --runtime runc' },
  pid: { type: 'string', requiresArg: true, description: 'Target the network namespace of process PID (/proc/PID/ns/net); nsproxy exits when PID does' },
  netns: { type: 'string', requiresArg: true, description: 'Target a bind-mounted namespace: a NAME under /run/netns (ip netns add NAME), or a PATH' },
  to: { type: 'string', requiresArg: true, description: 'Where to connect inside the namespace: 127.0.0.1:5432, [::1]:5432, or @NETWORK:PORT (the container\'s address on a podman network). NAME=... applies to the systemd socket NAME (FileDescriptorName=); repeatable' },
  listen: { type: 'string', requiresArg: true, description: 'Host address to accept on, repeatable; PORT alone means 127.0.0.1:PORT, port 0 lets the kernel choose. Default: 127.0.0.1:<port of --to>, unless systemd passed sockets' },
  'connections-max': { type: 'string', requiresArg: true, description: 'At most N connections at once (default 4096); at the limit nsproxy stops accepting and the kernel backlog holds the rest' },
  backlog: { type: 'string', requiresArg: true, description: 'listen(2) backlog of --listen sockets (default 128)' },
  threads: { type: 'string', requiresArg: true, description: 'Engine threads (default 1)' },
  'ready-timeout': { type: 'string', requiresArg: true, description: 'How long to wait for the target to accept a connection before forwarding, and after a container restart (default 60s)' },
  'exit-idle-time': { type: 'string', requiresArg: true, description: 'Exit 0 after no connection was open for this long (default: never); the .socket unit starts nsproxy again' },
  'drain-timeout': { type: 'string', requiresArg: true, description: 'On SIGTERM, let open connections finish for up to this long (default 10s)' },
  'log-level': { type: 'string', requiresArg: true, description: `One of ${LOG_LEVELS.join(', ')} (default info; debug logs every connection)` },
  debug: { type: 'boolean', description: 'Log level debug, and stack traces on errors (also NSPROXY_DEBUG=1)' },
};

/** yargs proper, loaded only when quickParse() cannot answer: --help, --version, bad usage. */
export function yargsFor(argv: string[]) {
  // require(), not import(): a dynamic import() would load yargs' ESM build, whose help wraps differently.
  const yargs = require('yargs') as typeof import('yargs');
  return yargs(argv)
    .scriptName('nsproxy')
    .usage(`Usage: nsproxy (--container NAME | --pid PID | --netns NAME|PATH) --to ADDR:PORT [options]\n\n${DESCRIPTION}`)
    .options(OPTIONS)
    .version(packageVersion())
    .help()
    .alias('help', 'h')
    .epilog(EPILOG)
    .strict()
    .parserConfiguration({ 'camel-case-expansion': true, 'duplicate-arguments-array': true })
    .wrap(Math.min(100, process.stdout.columns || 100))
    .exitProcess(false)
    .showHelpOnFail(false)
    .fail((message, err) => {
      throw err ?? new NsproxyError('NSPROXY_ERR_USAGE', `${message}; see nsproxy --help`);
    });
}

export async function parseWithYargs(argv: string[]): Promise<ParsedArgs & { help?: boolean; version?: boolean }> {
  return yargsFor(argv).parseAsync();
}

/** Runs nsproxy with `argv` (without node and the script); resolves to the exit status. */
export async function main(argv: string[]): Promise<number> {
  const debug = argv.includes('--debug') || ['1', 'true', 'yes'].includes(process.env['NSPROXY_DEBUG'] ?? '');
  try {
    const parsed = (quickParse(argv, OPTIONS, 'nsproxy') ?? (await parseWithYargs(argv))) as RawOptions & ParsedArgs & { help?: boolean; version?: boolean };
    if (parsed.help || parsed.version || argv.includes('--help') || argv.includes('-h') || argv.includes('--version')) return EXIT_OK;
    if (parsed._.length > 0) throw new NsproxyError('NSPROXY_ERR_USAGE', `unexpected argument '${parsed._[0]}'; options start with -- (see nsproxy --help)`);
    const config = buildConfig({ ...parsed, debug: debug || parsed.debug });
    const log = createLogger(config.logLevel, isJournalStream(process.env));
    return await runDaemon(config, {
      native: loadNative(),
      log,
      env: process.env,
      pid: process.pid,
      closeFd: closeSync,
      euid: process.geteuid?.() ?? 0,
      ownUsernsInode: String(statSync('/proc/self/ns/user').ino),
      onStopSignal: (handler) => {
        process.on('SIGTERM', handler);
        process.on('SIGINT', handler);
      },
    });
  } catch (err) {
    const known = err instanceof NsproxyError;
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`nsproxy: ${message.split('\n')[0]}\n`);
    if (debug && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    return known ? err.exitCode : err instanceof Error && err.name === 'YError' ? EXIT_USAGE : EXIT_FAILURE;
  }
}

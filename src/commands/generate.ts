// commands/generate.ts — `nsproxy generate`: the unit files for forwarding into a container
// (units.ts), to stdout or into --output-dir. Every daemon option given is validated as the
// daemon would, then written into ExecStart=; --listen becomes the socket's ListenStream=.
import { accessSync, constants, mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { formatEndpoint } from '../address';
import { buildConfig, single, type RawOptions } from '../config';
import { EXIT_OK, NsproxyError } from '../errors';
import { COMMAND_USAGES } from '../help';
import { DAEMON_OPTIONS, type OptionSpec } from '../options';
import { containerRuntime } from '../runtimes';
import { generateUnits, type UnitsInput } from '../units';
import { packageVersion } from '../version';
import { parseCommand } from './parse';

/** Daemon options that go into ExecStart= as given. */
const PASSED_ON = ['runtime', 'runc-root', 'ready-exec', 'ready', 'ready-timeout', 'connections-max', 'threads', 'exit-idle-time', 'drain-timeout', 'log-connections', 'log-level'];

export const OPTIONS: OptionSpec[] = [
  ...DAEMON_OPTIONS.filter((o) => ['container', 'to', 'listen', ...PASSED_ON].includes(o.name)).map((o) =>
    o.name === 'listen' ? { ...o, description: "The socket unit's ListenStream=, repeatable: ADDR:PORT, or PORT for 127.0.0.1:PORT (default 127.0.0.1:<port of --to>)" } : o,
  ),
  { name: 'user', type: 'boolean', description: 'Units for a user manager (systemctl --user, rootless podman): hardening that works there, ~/.config paths in the instructions' },
  { name: 'scale-to-zero', type: 'boolean', description: 'nsproxy exits when idle (--exit-idle-time, default 5min) and the container unit gets StopWhenUnneeded=yes' },
  { name: 'quadlet', type: 'boolean', description: 'Also a quadlet CONTAINER.container (podman >= 4.4), with Image= from --image or the existing container' },
  { name: 'image', type: 'string', value: 'IMAGE', description: 'Image= of the quadlet (default: the image of the existing container)' },
  { name: 'name', type: 'string', value: 'UNIT', description: 'Base name of the units (default nsproxy-CONTAINER): UNIT.socket, UNIT.service' },
  { name: 'container-unit', type: 'string', value: 'UNIT', description: "The container's unit, Required= and After= (default CONTAINER.service, as quadlet names it; none for no such unit)" },
  { name: 'nsproxy', type: 'string', value: 'PATH', description: 'nsproxy in ExecStart= (default: this nsproxy as found in PATH, else its own path)' },
  { name: 'output-dir', type: 'string', value: 'DIR', description: 'Write the files there (unit files, drop-in directories, the quadlet) instead of to stdout' },
];

export const DESCRIPTION = `Unit files for nsproxy in front of a container: NAME.socket (ListenStream= from --listen)
and NAME.service (Type=notify, ExecReload=, Requires=/After= the container unit, watchdog,
restart policy, the hardening that works for that manager), and with --scale-to-zero and
--quadlet the drop-in and quadlet that go with them. Ready for daemon-reload; the service's
header says how to install them and how to retire an older activator.`;

/** The nsproxy ExecStart= names: an `nsproxy` in PATH that is this one, else this script. */
function nsproxyPath(): string {
  const self = realpathSync(process.argv[1] ?? '');
  for (const dir of (process.env['PATH'] ?? '').split(':')) {
    if (!dir.startsWith('/')) continue;
    const candidate = join(dir, 'nsproxy');
    try {
      accessSync(candidate, constants.X_OK);
      if (realpathSync(candidate) === self) return candidate;
    } catch {
      // not there
    }
  }
  return self;
}

/** The daemon's words for the options to pass on, in the order of the option table. */
function passedOn(raw: Record<string, unknown>, skip: string[]): string[] {
  const words: string[] = [];
  for (const option of DAEMON_OPTIONS.filter((o) => PASSED_ON.includes(o.name) && !skip.includes(o.name))) {
    const key = option.name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    const value = raw[key];
    if (value === undefined || value === false) continue;
    if (option.type === 'boolean') words.push(`--${option.name}`);
    else for (const one of Array.isArray(value) ? value : [value]) words.push(`--${option.name}`, String(one));
  }
  return words;
}

export async function runGenerate(argv: string[]): Promise<number> {
  const parsed = await parseCommand('generate', argv, COMMAND_USAGES[1] as string, DESCRIPTION, OPTIONS);
  if (parsed.help) return EXIT_OK;
  if (parsed.positionals.length > 0) throw new NsproxyError('NSPROXY_ERR_USAGE', `unexpected argument '${parsed.positionals[0]}'; options start with -- (see nsproxy generate --help)`);
  const raw = parsed.options as RawOptions & Record<string, unknown>;
  const container = single('container', raw.container);
  if (container === undefined) throw new NsproxyError('NSPROXY_ERR_USAGE', 'generate needs --container NAME; units for --pid or --netns targets are written by hand (see systemd/nsproxy-blue.service)');
  // validated as the daemon will see it
  const config = buildConfig(raw);
  if (config.routes.length !== 1 || config.routes[0]?.name !== undefined) {
    throw new NsproxyError('NSPROXY_ERR_USAGE', 'generate takes one --to without NAME=; for several sockets, add FileDescriptorName= and --to NAME=... to the units by hand');
  }
  const to = single('to', raw.to) as string;
  const listen = (config.listen.length > 0 ? config.listen : [config.defaultListen]).map(formatEndpoint);
  if (config.listen.some((l) => l.port === 0)) throw new NsproxyError('NSPROXY_ERR_USAGE', '--listen with port 0: a socket unit needs a fixed port; give the port to listen on, e.g. --listen 127.0.0.1:5432');
  // scale to zero: the idle time goes into Environment= (one line a drop-in can override)
  const scaleToZero = raw['scaleToZero'] ? (single('exit-idle-time', raw.exitIdleTime) ?? '5min') : undefined;
  const containerUnitOption = single('container-unit', raw['containerUnit'] as string | undefined);
  const containerUnit = containerUnitOption === 'none' ? undefined : (containerUnitOption ?? `${container}.service`);
  const name = single('name', raw['name'] as string | undefined) ?? `nsproxy-${container}`;
  if (!/^[A-Za-z0-9:_.\\-]+$/.test(name)) throw new NsproxyError('NSPROXY_ERR_USAGE', `--name '${name}': not a unit name; use letters, digits and - _ . : only`);
  let quadletImage: string | undefined;
  if (raw['quadlet']) {
    quadletImage = single('image', raw['image'] as string | undefined);
    if (!quadletImage) {
      const state = await containerRuntime(config.target.kind === 'container' ? config.target.runtime : 'podman', process.env).inspect(container).catch(() => undefined);
      quadletImage = state?.image;
      if (!quadletImage) throw new NsproxyError('NSPROXY_ERR_USAGE', `--quadlet: no container '${container}' to take the image from; give --image IMAGE`);
    }
  }
  const readyTimeoutMs = config.readyTimeoutMs;
  const nsproxy = single('nsproxy', raw['nsproxy'] as string | undefined) ?? nsproxyPath();
  if (!nsproxy.startsWith('/')) throw new NsproxyError('NSPROXY_ERR_USAGE', `--nsproxy '${nsproxy}': give an absolute path`);

  const input: UnitsInput = {
    name,
    container,
    containerUnit,
    listen,
    to,
    extraArgs: passedOn(raw, scaleToZero ? ['exit-idle-time'] : []),
    nsproxy,
    user: Boolean(raw['user']),
    scaleToZero,
    timeoutStart: readyTimeoutMs === Infinity ? 'infinity' : `${Math.ceil(readyTimeoutMs / 1000) + 30}s`,
    quadletImage,
    version: packageVersion(),
  };
  const files = generateUnits(input);
  const outputDir = single('output-dir', raw['outputDir'] as string | undefined);
  if (outputDir === undefined) {
    process.stdout.write(files.map((f) => f.text).join('\n'));
    return EXIT_OK;
  }
  for (const file of files) {
    const path = join(outputDir, file.path);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, file.text, { mode: 0o644 });
    process.stdout.write(`wrote ${path}\n`);
  }
  return EXIT_OK;
}

// Static checks of everything in systemd/: `systemd-analyze verify` of each socket and
// service unit together with its drop-ins (no unknown key, no bad value, no missing
// dependency), the quadlet files' promises (Network=none, no PublishPort=, no [Install]),
// a header comment on every file, and systemd/README.md describing every file.
// The units run for real in systemd-user.test.ts.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { runCommand } from './helpers/procs';
import { SHIPPED_DIR, SHIPPED_NSPROXY } from './helpers/systemd-user';

/** Every file under systemd/, relative to it. */
function shippedFiles(dir = SHIPPED_DIR, rel = ''): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const r = path.join(rel, e.name);
    if (e.isDirectory()) out.push(...shippedFiles(path.join(dir, e.name), r));
    else out.push(r);
  }
  return out.sort();
}

/** INI sections of a unit or quadlet file: section -> list of [key, value]. */
function sections(text: string): Map<string, Array<[string, string]>> {
  const map = new Map<string, Array<[string, string]>>();
  let cur = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) {
      cur = s[1];
      if (!map.has(cur)) map.set(cur, []);
      continue;
    }
    const i = line.indexOf('=');
    if (i > 0) map.get(cur)?.push([line.slice(0, i).trim(), line.slice(i + 1).trim()]);
  }
  return map;
}

function values(text: string, section: string, key: string): string[] {
  return (sections(text).get(section) ?? []).filter(([k]) => k === key).map(([, v]) => v);
}

t.test('every shipped file starts with a header comment and is described in systemd/README.md', async (t) => {
  const files = shippedFiles();
  const readme = fs.readFileSync(path.join(SHIPPED_DIR, 'README.md'), 'utf8');
  for (const f of files) {
    if (f === 'README.md') continue;
    const text = fs.readFileSync(path.join(SHIPPED_DIR, f), 'utf8');
    if (f.endsWith('.json')) {
      t.doesNotThrow(() => JSON.parse(text), `${f} is valid JSON`);
    } else {
      t.match(text.split('\n')[0], new RegExp(`^# (\\S*/)?${path.basename(f).replace(/[.]/g, '\\.')} — `), `${f}: header comment naming the file`);
      t.match(text, /Needs:/, `${f}: says what it needs`);
    }
    t.ok(readme.includes(path.basename(f)), `README.md describes ${f}`);
  }
});

t.test('systemd-analyze verify: units and drop-ins load without a warning', async (t) => {
  // a scratch copy: the nsproxy path must exist for verify, the container units come from
  // quadlet (or podman generate systemd) on a real machine, so stubs stand in for them
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsproxy-units-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const units = shippedFiles().filter((f) => !f.includes('/') && /\.(socket|service)$/.test(f));
  t.ok(units.length >= 7, `units: ${units.join(', ')}`);
  for (const u of units) {
    fs.writeFileSync(path.join(dir, u), fs.readFileSync(path.join(SHIPPED_DIR, u), 'utf8').split(SHIPPED_NSPROXY).join('/usr/bin/true'));
  }
  for (const stub of ['test-postgresql.service', 'pgadmin.service']) {
    fs.writeFileSync(path.join(dir, stub), '[Service]\nExecStart=/usr/bin/true\n');
  }
  const check = async (label: string, args: string[]): Promise<void> => {
    const r = await runCommand('systemd-analyze', ['verify', '--man=no', ...args], { cwd: dir, timeoutMs: 60000, env: { ...process.env, SYSTEMD_LOG_LEVEL: 'notice' } });
    t.equal(r.code, 0, `${label}: systemd-analyze verify exits 0`, { stderr: r.stderr });
    t.equal(r.stderr.trim(), '', `${label}: no warning`, { stderr: r.stderr });
  };
  await check('the shipped units', units);

  // each drop-in directory (hardened/, scale-to-zero/) next to a copy of its unit
  for (const variant of ['hardened', 'scale-to-zero']) {
    for (const d of fs.readdirSync(path.join(SHIPPED_DIR, variant))) {
      const unit = d.replace(/\.d$/, '');
      fs.cpSync(path.join(SHIPPED_DIR, variant, d), path.join(dir, d), { recursive: true });
      for (const conf of fs.readdirSync(path.join(dir, d))) {
        const p = path.join(dir, d, conf);
        fs.writeFileSync(p, fs.readFileSync(p, 'utf8').split(SHIPPED_NSPROXY).join('/usr/bin/true'));
      }
      await check(`${variant}/${d}`, [unit]);
      fs.rmSync(path.join(dir, d), { recursive: true });
    }
  }
});

t.test('the activator units say what the lab promises', async (t) => {
  const read = (f: string): string => fs.readFileSync(path.join(SHIPPED_DIR, f), 'utf8');
  const act = read('postgresql-activator.service');
  t.same(values(act, 'Service', 'Type'), ['notify'], 'Type=notify');
  t.same(values(act, 'Service', 'ExecStart'), ["/usr/local/bin/nsproxy --container test-postgresql --to 127.0.0.1:5432 --ready-exec 'pg_isready -h 127.0.0.1'"], 'ExecStart= is nsproxy alone, waiting for pg_isready inside the container');
  t.same(values(act, 'Service', 'ExecStartPre'), [], 'no ExecStartPre= (no podman inspect, no pg_isready loop)');
  t.match(values(act, 'Unit', 'Requires').join(' '), /test-postgresql\.service/, 'Requires= the container unit');
  t.match(values(act, 'Unit', 'After').join(' '), /test-postgresql\.service/, 'After= the container unit');
  t.same(values(read('postgresql-activator.socket'), 'Socket', 'ListenStream'), ['5432'], 'ListenStream=5432');
  t.same(values(read('postgresql-activator-unix.socket'), 'Socket', 'Service'), ['postgresql-activator.service'], 'the Unix socket feeds the same service');
  const stz = read('scale-to-zero/postgresql-activator.service.d/50-scale-to-zero.conf');
  t.same(values(stz, 'Service', 'ExecStart'), [], 'scale-to-zero: ExecStart= is not restated (later edits to the unit stay in force)');
  t.same(values(stz, 'Service', 'Environment'), ['NSPROXY_EXIT_IDLE_TIME=5min'], 'scale-to-zero: one option, one line');
  t.same(values(read('scale-to-zero/test-postgresql.service.d/50-scale-to-zero.conf'), 'Unit', 'StopWhenUnneeded'), ['yes'], 'scale-to-zero: StopWhenUnneeded=yes');
  const hard = read('hardened/postgresql-activator.service.d/50-hardening.conf');
  t.same(values(hard, 'Service', 'NoNewPrivileges'), ['yes'], 'hardened: NoNewPrivileges=yes');
  t.same(values(hard, 'Service', 'RestrictAddressFamilies'), ['AF_UNIX AF_INET AF_INET6'], 'hardened: RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6');
  for (const bad of ['RestrictNamespaces', 'PrivateUsers', 'MemoryDenyWriteExecute', 'CapabilityBoundingSet', 'ProtectSystem', 'ProtectHome', 'PrivateTmp']) {
    t.same(values(hard, 'Service', bad), [], `hardened: no ${bad}= (breaks nsproxy or podman, or does nothing, under a user manager: see README.md)`);
  }
});

t.test('every shipped service reloads with SIGHUP', async (t) => {
  for (const f of shippedFiles().filter((x) => !x.includes('/') && x.endsWith('.service'))) {
    const text = fs.readFileSync(path.join(SHIPPED_DIR, f), 'utf8');
    t.same(values(text, 'Service', 'ExecReload'), ['kill -HUP $MAINPID'], `${f}: ExecReload=kill -HUP $MAINPID`);
    t.same(values(text, 'Service', 'Type'), ['notify'], `${f}: Type=notify (RELOADING=1 ... READY=1 around the reload)`);
  }
});

t.test('the hardened system unit example: an unprivileged user with CAP_SYS_ADMIN only', async (t) => {
  const text = fs.readFileSync(path.join(SHIPPED_DIR, 'hardened/nsproxy-blue.service.d/50-hardening.conf'), 'utf8');
  t.same(values(text, 'Service', 'User'), ['nsproxy']);
  t.same(values(text, 'Service', 'AmbientCapabilities'), ['CAP_SYS_ADMIN']);
  t.same(values(text, 'Service', 'CapabilityBoundingSet'), ['CAP_SYS_ADMIN']);
  t.same(values(text, 'Service', 'RestrictNamespaces'), ['net'], 'setns(CLONE_NEWNET) only');
  t.same(values(text, 'Service', 'MemoryDenyWriteExecute'), [], "no MemoryDenyWriteExecute= (V8's JIT)");
});

t.test('the quadlet files: no network, no published port, started on demand only', async (t) => {
  for (const f of ['test-postgresql.container', 'pgadmin.container']) {
    const text = fs.readFileSync(path.join(SHIPPED_DIR, f), 'utf8');
    const s = sections(text);
    t.same(values(text, 'Container', 'Network'), ['none'], `${f}: Network=none`);
    t.same(values(text, 'Container', 'PublishPort'), [], `${f}: no PublishPort=`);
    t.equal(values(text, 'Container', 'ContainerName').length, 1, `${f}: ContainerName= (nsproxy --container names it)`);
    t.notOk(s.has('Install'), `${f}: no [Install] (a socket starts it)`);
  }
  const pg = fs.readFileSync(path.join(SHIPPED_DIR, 'test-postgresql.container'), 'utf8');
  t.same(values(pg, 'Container', 'HealthCmd'), ['pg_isready -h 127.0.0.1'], 'test-postgresql.container: HealthCmd=pg_isready, the modern form of the gate');
  t.match(pg, /^#Notify=healthy$/m, 'Notify=healthy noted for podman >= 5');
  t.same(values(pg, 'Service', 'ExecStartPost'), [], 'no ExecStartPost= gate any more: nsproxy waits for readiness itself, after restarts too');
  const pgadmin = fs.readFileSync(path.join(SHIPPED_DIR, 'pgadmin.container'), 'utf8');
  t.ok(values(pgadmin, 'Container', 'Volume').includes('%t/postgresql:/run/postgresql'), 'pgadmin.container mounts the Unix socket directory');
  // quadlet itself (podman >= 4.4), when the machine has it
  const quadlet = ['/usr/libexec/podman/quadlet', '/usr/lib/podman/quadlet'].find((p) => fs.existsSync(p));
  if (!quadlet) {
    t.comment('no quadlet binary here (podman < 4.4): the .container files were checked statically only');
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsproxy-quadlet-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const f of ['test-postgresql.container', 'pgadmin.container']) fs.copyFileSync(path.join(SHIPPED_DIR, f), path.join(dir, f));
  const r = await runCommand(quadlet, ['-dryrun', '-user'], { env: { ...process.env, QUADLET_UNIT_DIRS: dir }, timeoutMs: 30000 });
  t.equal(r.code, 0, 'quadlet -dryrun accepts both files', { stderr: r.stderr });
  t.match(r.stdout, /---test-postgresql\.service---/, 'and generates test-postgresql.service');
});

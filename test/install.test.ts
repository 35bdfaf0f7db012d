// Install as the README says: `npm pack`, then `npm install -g` of the tarball into a prefix
// outside any home directory (here a temporary one; /usr/local or /opt/nsproxy for real). The
// addon is built by the package's install script, `nsproxy` lands in PREFIX/bin, the man page
// nsproxy(1) in PREFIX/share/man/man1, and an ordinary user (a lingering user's manager) can
// run it. The installed copy then forwards a connection, so the addon it built works.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { requireProduct } from './helpers/checks';
import { echoPingPong } from './helpers/client';
import { packageVersion, REPO_ROOT } from './helpers/env';
import { startUnshareServer } from './helpers/namespaces';
import { startNsproxy } from './helpers/nsproxy';
import { runCommand } from './helpers/procs';
import { testUser } from './helpers/users';

// npm install -g compiles the addon: about 1 min here, more on a loaded machine (.taprc: 240 s)
t.setTimeout(600_000);

t.test('npm pack, npm install -g into a prefix: the command, the addon, the man page', async (t) => {
  if (!requireProduct(t)) return;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsproxy-t-install-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.chmodSync(dir, 0o755);
  // --ignore-scripts: dist/ is built already (npm test's pretest); rebuilding it here would
  // rewrite files other test files are running
  const pack = await runCommand('npm', ['pack', '--ignore-scripts', '--pack-destination', dir], { cwd: REPO_ROOT, timeoutMs: 120000 });
  t.equal(pack.code, 0, 'npm pack', { stderr: pack.stderr });
  const tarball = path.join(dir, `nsproxy-${packageVersion()}.tgz`);
  t.ok(fs.existsSync(tarball), path.basename(tarball));
  const list = await runCommand('tar', ['tzf', tarball]);
  for (const f of ['package/dist/main.js', 'package/dist/man/nsproxy.1', 'package/binding.gyp', 'package/native/addon.cc', 'package/systemd/postgresql-activator.service']) {
    t.ok(list.stdout.split('\n').includes(f), `the tarball has ${f}`);
  }

  const prefix = path.join(dir, 'prefix');
  const install = await runCommand('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', '--allow-scripts=nsproxy', tarball], { cwd: dir, timeoutMs: 200000 });
  t.equal(install.code, 0, 'npm install -g of the tarball (builds the addon)', { stderr: install.stderr.slice(-3000) });
  const bin = path.join(prefix, 'bin', 'nsproxy');
  t.ok(fs.existsSync(path.join(prefix, 'lib', 'node_modules', 'nsproxy', 'build', 'Release', 'nsproxy.node')), 'the addon was built');
  const man = path.join(prefix, 'share', 'man', 'man1', 'nsproxy.1');
  t.ok(fs.existsSync(man), 'the man page is installed as PREFIX/share/man/man1/nsproxy.1');
  const where = await runCommand('man', ['-w', 'nsproxy'], { env: { ...process.env, MANPATH: path.join(prefix, 'share', 'man') } });
  t.equal(where.stdout.trim(), fs.realpathSync(man), 'man finds it');

  const user = await testUser(t, 'nsproxy-inst');
  const version = await runCommand(user.asUser[0] as string, [...user.asUser.slice(1), bin, '--version']);
  t.equal(version.stdout.trim(), packageVersion(), 'an ordinary user runs the installed nsproxy (no 203/EXEC: nothing under a home directory)', { stderr: version.stderr });

  const server = await startUnshareServer(t, 'echo', ['127.0.0.1:7400']);
  const px = await startNsproxy(t, ['--pid', String(server.pid), '--to', '127.0.0.1:7400', '--listen', '127.0.0.1:0'], { mainJs: fs.realpathSync(bin) });
  t.same((await echoPingPong(px.listening[0]?.port as number, '127.0.0.1', ['installed\n'])).replies, ['installed\n'], 'the installed copy forwards');
  t.equal(await px.stop(), 0);
});

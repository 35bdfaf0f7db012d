// The man page nsproxy(1) is written from the --help text at build time (scripts/man.js): it
// must exist, format without a warning, and say everything --help says (every option, every
// section), and package.json must install it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { requireProduct } from './helpers/checks';
import { REPO_ROOT } from './helpers/env';
import { runNsproxy } from './helpers/nsproxy';
import { runCommand } from './helpers/procs';
import { SECTIONS } from '../src/help';
import { DAEMON_OPTIONS } from '../src/options';
import { OPTIONS as CHECK_OPTIONS } from '../src/commands/check';
import { OPTIONS as GENERATE_OPTIONS } from '../src/commands/generate';

const PAGE = path.join(REPO_ROOT, 'dist', 'man', 'nsproxy.1');

t.test('nsproxy(1): built, well-formed, complete, installed', async (t) => {
  if (!requireProduct(t)) return;
  t.ok(fs.existsSync(PAGE), 'dist/man/nsproxy.1 exists after the build');
  const lint = await runCommand('groff', ['-man', '-Tutf8', '-ww', '-z', PAGE]);
  t.equal(lint.code, 0, 'groff formats it');
  t.equal(lint.stderr.trim(), '', 'without a warning', { stderr: lint.stderr });
  const rendered = await runCommand('man', ['-l', PAGE], { env: { ...process.env, MANWIDTH: '120', MAN_KEEP_FORMATTING: '0' } });
  const text = rendered.stdout.replace(/.\x08/g, '');
  for (const option of [...DAEMON_OPTIONS, ...CHECK_OPTIONS, ...GENERATE_OPTIONS]) t.match(text, `--${option.name}`, `--${option.name}`);
  for (const section of SECTIONS) t.match(text, section.title, `section ${section.title}`);
  const help = await runNsproxy(['--help']);
  for (const section of SECTIONS) t.match(help.stdout, section.title, `--help has ${section.title} too`);
  for (const option of DAEMON_OPTIONS) t.match(help.stdout, `--${option.name}`, `--help has --${option.name}`);
  const manifest = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { man?: string[]; files?: string[] };
  t.same(manifest.man, ['./dist/man/nsproxy.1'], 'package.json installs it (npm links it into PREFIX/share/man/man1)');
  t.ok(manifest.files?.includes('dist/'), 'and packs it');
  const checkHelp = await runNsproxy(['check', '--help']);
  t.equal(checkHelp.code, 0);
  t.match(checkHelp.stdout, /--ready-exec/);
  const generateHelp = await runNsproxy(['generate', '--help']);
  t.equal(generateHelp.code, 0);
  t.match(generateHelp.stdout, /--scale-to-zero/);
});

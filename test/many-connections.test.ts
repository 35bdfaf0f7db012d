// 9 000 connections open at once through one nsproxy, from one client process, with traffic
// both ways on every one, every byte checked, then a clean close of each. The hard fd limit here
// is 20 000 and nsproxy needs 2 per connection (socket-proxyd needs 6, and stops near 3 300).
import * as path from 'node:path';

import t from 'tap';

import { requireProduct } from './helpers/checks';
import { REPO_ROOT, childEnv } from './helpers/env';
import { Proc, runCommand } from './helpers/procs';

const HOLD_PY = path.join(REPO_ROOT, 'test', 'fuzz', 'hold.py');

t.test('9 000 concurrent connections with traffic: all intact', async (t) => {
  if (!requireProduct(t)) return;
  const proc = new Proc('hold.py', 'python3', [HOLD_PY, '--connections', '9000', '--bytes', '16384'], { env: childEnv() });
  t.teardown(async () => {
    await proc.stop('SIGKILL', 1000);
    await runCommand('ip', ['netns', 'del', `nsproxy-fuzz-${proc.pid}`]);
  });
  const timer = setTimeout(() => proc.signal('SIGKILL'), 200_000);
  const exit = await proc.closed;
  clearTimeout(timer);
  t.comment(proc.stderr.lines.filter((l) => l.startsWith('#')).join('; '));
  // On a failure, everything hold.py and nsproxy said (the traceback, the proxy's last lines).
  if (exit.code !== 0) t.comment(proc.stderr.lines.slice(-40).join('\n'));
  const result = JSON.parse(proc.stdout.lines.filter((l) => l.startsWith('{')).pop() ?? '{}') as Record<string, unknown> & { health?: { error?: string } };
  t.equal(exit.code, 0, 'hold.py: every connection intact');
  t.equal(result['intact_ends'], 18_000, 'all 18 000 ends received their 16 KiB, byte for byte, while all were open');
  t.equal(result['open_after_traffic'], 9000, 'none had ended');
  t.ok(Number(result['proxy_sockets']) >= 18_000, `nsproxy held ${String(result['proxy_sockets'])} sockets (2 per connection)`);
  t.equal(result['clean_closes'], 9000, 'each closed cleanly: FIN both ways, EOF at both ends');
  t.equal(result.health?.error, undefined, 'nsproxy stopped cleanly with no connection left');
});

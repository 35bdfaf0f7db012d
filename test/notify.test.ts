// sd_notify: READY=1 once forwarding starts, STOPPING=1 on SIGTERM, to a path or an abstract
// socket, as systemd's Type=notify expects. The receiver is a real AF_UNIX datagram socket.
import * as path from 'node:path';
import * as os from 'node:os';
import * as fs from 'node:fs';

import t from 'tap';

import { assertCleanStop, requireProduct } from './helpers/checks';
import { makeNetns, startServerInNetns } from './helpers/namespaces';
import { startNsproxy } from './helpers/nsproxy';
import { datagrams, notifyReceiver } from './helpers/notify';
import { waitForStdoutLine } from './helpers/procs';

for (const kind of ['path', 'abstract'] as const) {
  t.test(`READY=1 and STOPPING=1 reach a ${kind} NOTIFY_SOCKET`, async (t) => {
    if (!requireProduct(t)) return;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsproxy-notify-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const address = kind === 'path' ? path.join(dir, 'notify') : `@nsproxy-notify-${process.pid}-${Date.now()}`;
    const receiver = await notifyReceiver(t, address);

    const ns = await makeNetns(t);
    await startServerInNetns(t, ns, 'echo', ['127.0.0.1:7000']);
    const px = await startNsproxy(t, ['--netns', ns, '--to', '127.0.0.1:7000', '--listen', '127.0.0.1:0'], { env: { NOTIFY_SOCKET: address } });
    await px.ready();
    const ready = await waitForStdoutLine(receiver, (l) => l.includes('READY=1'), 10000, 'READY=1');
    t.match(JSON.parse(ready) as string, /STATUS=forwarding 127\.0\.0\.1:\d+ to 127\.0\.0\.1:7000 in netns /, 'READY=1 comes with a STATUS= line');

    await assertCleanStop(t, px);
    await waitForStdoutLine(receiver, (l) => l.includes('STOPPING=1'), 10000, 'STOPPING=1');
    t.same(
      datagrams(receiver).map((d) => d.split('\n')[0]),
      ['READY=1', 'STOPPING=1'],
      'exactly READY=1 then STOPPING=1',
    );
  });
}

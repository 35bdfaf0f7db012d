import t from 'tap';

import { credentialsOf, hasCapability, hasCapSysAdmin, mapInside, parseIdMap, parseTcpTable, readStatus } from '../../src/procfs';

const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000    70        0 123456 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1538 0100007F:C350 01 00000000:00000000 00:00000000 00000000    70        0 123457 1 0000000000000000 20 4 30 10 -1
   2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1 0000000000000000 100 0 0 10 0
`;
const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1538 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000    70        0 555 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 556 1 0000000000000000 100 0 0 10 0
   2: 0000000000000000FFFF00000100007F:0051 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 557 1 0000000000000000 100 0 0 10 0
   3: 000080FE00000000FF005450B6AD1DFE:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 558 1 0000000000000000 100 0 0 10 0
`;

t.test('/proc/net/tcp rows: addresses, ports, states, owners, inodes', async (t) => {
  const rows = parseTcpTable(TCP);
  t.same(rows.map((r) => [r.local, r.state, r.uid, r.inode]), [
    ['127.0.0.1:5432', 'LISTEN', 70, 123456],
    ['127.0.0.1:5432', 'ESTABLISHED', 70, 123457],
    ['0.0.0.0:8080', 'LISTEN', 0, 99],
  ]);
  t.same(parseTcpTable(TCP6).map((r) => r.local), ['[::1]:5432', '[::]:80', '[::ffff:127.0.0.1]:81', '[fe80::5054:ff:fe1d:adb6]:22']);
  t.same(parseTcpTable(''), []);
});

t.test('uid maps: outside ids as seen inside', async (t) => {
  const map = parseIdMap('         0       1000          1\n         1     100000      65536\n');
  t.same(map, [{ inside: 0, outside: 1000, count: 1 }, { inside: 1, outside: 100000, count: 65536 }]);
  t.equal(mapInside(1000, map), 0);
  t.equal(mapInside(100069, map), 70);
  t.equal(mapInside(999, map), undefined);
  t.equal(mapInside(165536, map), undefined);
});

t.test('capabilities: by bit, and CAP_SYS_ADMIN decides privilege', async (t) => {
  t.ok(hasCapability('000001ffffffffff', 21));
  t.notOk(hasCapability('0000000000000000', 21));
  t.ok(hasCapability('0000000000200000', 21));
  t.notOk(hasCapability('00000000001fffff', 21));
  t.equal(hasCapSysAdmin(new Map([['CapEff', '0000000000200000']])), true, 'a non-root user with ambient CAP_SYS_ADMIN is privileged');
  t.equal(hasCapSysAdmin(new Map([['CapEff', '0000000000000000']])), false);
  t.equal(hasCapSysAdmin(readStatus('self')), process.getuid?.() === 0, 'this test process (root in CI) has it');
});

t.test('credentials of a process', async (t) => {
  const c = credentialsOf(process.pid);
  t.equal(c.uid, process.geteuid?.());
  t.equal(c.gid, process.getegid?.());
  t.match(c.capabilities.bounding, /^[0-9a-f]{16}$/);
  t.type(c.noNewPrivs, 'boolean');
});

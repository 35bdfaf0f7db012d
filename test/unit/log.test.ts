import { openSync, closeSync, fstatSync } from 'node:fs';

import t from 'tap';

import { isJournalStream, journalLine } from '../../src/log';
import { prettyLine } from '../../src/log-pretty';

t.test('journal lines carry the syslog priority of the pino level', async (t) => {
  t.equal(journalLine({ level: 40, time: 1, pid: 2, msg: 'connect failed', to: '127.0.0.1:5432', code: 'ECONNREFUSED' }), '<4>connect failed to=127.0.0.1:5432 code=ECONNREFUSED\n');
  t.equal(journalLine({ level: 30, msg: 'ready' }), '<6>ready\n');
  t.equal(journalLine({ level: 50, msg: 'x' }).slice(0, 3), '<3>');
  t.equal(journalLine({ level: 20, msg: 'x' }).slice(0, 3), '<7>');
  t.equal(journalLine({ level: 30, msg: 'm', status: 'two words' }), '<6>m status="two words"\n');
});

t.test('JOURNAL_STREAM must name the very file behind the fd', async (t) => {
  const dir = t.testdir({ f: '' });
  const fd = openSync(`${dir}/f`, 'r');
  t.teardown(() => closeSync(fd));
  const st = fstatSync(fd);
  t.equal(isJournalStream({ JOURNAL_STREAM: `${st.dev}:${st.ino}` }, fd), true);
  t.equal(isJournalStream({ JOURNAL_STREAM: `${st.dev}:${st.ino + 1}` }, fd), false);
  t.equal(isJournalStream({}, fd), false);
  t.equal(isJournalStream({ JOURNAL_STREAM: 'garbage' }, fd), false);
});

t.test('a terminal gets one readable line per record: time, level, message, fields', async (t) => {
  const record = { level: 40, time: '2026-11-30T14:20:58.123Z', msg: 'connect failed', to: '127.0.0.1:5432', code: 'ECONNREFUSED', skipped: undefined };
  t.equal(prettyLine(record, false), '14:20:58.123  WARN connect failed to=127.0.0.1:5432 code=ECONNREFUSED\n');
  t.equal(prettyLine({ level: 30, time: '2026-11-30T14:20:58.123Z', msg: 'ready', target: 'container db' }, false), '14:20:58.123  INFO ready target="container db"\n');
  t.equal(prettyLine({ level: 50, time: '2026-11-30T14:20:58.123Z', msg: 'x' }, true), '14:20:58.123 \x1b[31mERROR\x1b[0m x\n', 'errors in red on a colour terminal');
});

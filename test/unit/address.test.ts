import t from 'tap';

import { formatEndpoint, parseEndpoint } from '../../src/address';
import { NsproxyError } from '../../src/errors';

t.test('parses numeric IPv4 and bracketed IPv6', async (t) => {
  t.same(parseEndpoint('127.0.0.1:5432', { option: '--to' }), { address: '127.0.0.1', port: 5432, family: 4 });
  t.same(parseEndpoint('[::1]:5432', { option: '--to' }), { address: '::1', port: 5432, family: 6 });
  t.same(parseEndpoint('[fd00::2]:80', { option: '--to' }), { address: 'fd00::2', port: 80, family: 6 });
});

t.test('PORT alone and port 0 only where allowed', async (t) => {
  t.same(parseEndpoint('8080', { option: '--listen', portOnly: true }), { address: '127.0.0.1', port: 8080, family: 4 });
  t.same(parseEndpoint('127.0.0.1:0', { option: '--listen', portZero: true }).port, 0);
  t.throws(() => parseEndpoint('8080', { option: '--to' }), /--to '8080': missing port/);
  t.throws(() => parseEndpoint('127.0.0.1:0', { option: '--to' }), /port 0 is out of range; use a port from 1 to 65535/);
});

t.test('rejects what is not ADDR:PORT, with the option and the fix in one line', async (t) => {
  const cases: [string, RegExp][] = [
    ['127.0.0.1', /missing port/],
    ['127.0.0.1:', /missing port/],
    ['127.0.0.1:65536', /port 65536 is out of range; use a port from 1 to 65535/],
    ['127.0.0.1:http', /'http' is not a port number/],
    ['nonsense:80', /'nonsense' is not a numeric IP address/],
    ['1.2.3:80', /'1.2.3' is not a numeric IP address/],
    ['::1', /an IPv6 address needs brackets; write \[ADDRESS\]:PORT/],
    ['[::1]', /missing port/],
    ['[127.0.0.1]:80', /not a numeric IP address/],
  ];
  for (const [text, pattern] of cases) {
    try {
      parseEndpoint(text, { option: '--to' });
      t.fail(`accepted ${text}`);
    } catch (err) {
      t.type(err, NsproxyError);
      t.match((err as NsproxyError).message, pattern, text);
      t.notMatch((err as NsproxyError).message, /\n/);
      t.equal((err as NsproxyError).exitCode, 2);
    }
  }
});

t.test('formats back', async (t) => {
  t.equal(formatEndpoint({ address: '::1', port: 1, family: 6 }), '[::1]:1');
  t.equal(formatEndpoint({ address: '10.0.0.2', port: 80, family: 4 }), '10.0.0.2:80');
});

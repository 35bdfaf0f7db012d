#!/usr/bin/env node
// scripts/code-cache.js — makes dist/nsproxy.js.cache (run by scripts/bundle.js). V8's code cache
// holds the functions compiled so far, so it is taken after one real start-up: nsproxy forwards
// from 127.0.0.1:<any port> to a TCP server of this process, inside this process's own network
// namespace (entering it needs root; as another user the run stops at the namespace check and
// the cache holds what ran until then), and exits idle. Logs go nowhere.
'use strict';
const fs = require('node:fs');
const net = require('node:net');
const { loadBundle, CODE_CACHE } = require('../dist/bundle.js');

const server = net.createServer((socket) => socket.destroy()).listen(0, '127.0.0.1', () => {
  const loaded = loadBundle();
  if (!loaded) throw new Error('dist/nsproxy.js is missing: run scripts/bundle.js');
  const argv = ['--netns', '/proc/self/ns/net', '--to', `127.0.0.1:${server.address().port}`, '--listen', '127.0.0.1:0', '--exit-idle-time', '1ms'];
  loaded.cli.main(argv).then((code) => {
    fs.writeFileSync(`${CODE_CACHE}.tmp`, loaded.script.createCachedData());
    fs.renameSync(`${CODE_CACHE}.tmp`, CODE_CACHE);
    server.close();
    if (code !== 0) process.stderr.write(`code-cache: the training run ended with status ${code}; the cache covers what ran until then\n`);
  });
});

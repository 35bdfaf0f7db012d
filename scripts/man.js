#!/usr/bin/env node
// scripts/man.js — writes dist/man/nsproxy.1, the man page, from the same text as --help
// (dist/help.js, dist/options.js and the subcommands' option tables), so that the two never
// disagree. Run by `npm run build`; package.json's "man" installs it with the package.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const dist = path.join(__dirname, '..', 'dist');
const help = require(path.join(dist, 'help.js'));
const { DAEMON_OPTIONS } = require(path.join(dist, 'options.js'));
const check = require(path.join(dist, 'commands', 'check.js'));
const generate = require(path.join(dist, 'commands', 'generate.js'));
const { packageVersion } = require(path.join(dist, 'version.js'));

/** Text for roff: backslashes and hyphens escaped, no line starting with a control character. */
function esc(text) {
  return text
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .split('\n')
    .map((line) => (/^[.']/.test(line) ? `\\&${line}` : line))
    .join('\n');
}

function options(list) {
  return list
    .map((o) => `.TP\n${o.value ? `.BI "\\-\\-${esc(o.name)} " "${esc(o.value)}"` : `.B \\-\\-${esc(o.name)}`}\n${esc(o.description)}`)
    .join('\n');
}

/** A --help section: laid out with spaces, so kept as it is (no fill). */
function preformatted(body) {
  const lines = body.split('\n').map((l) => l.replace(/^ {2}/, ''));
  return `.nf\n${esc(lines.join('\n'))}\n.fi`;
}

const page = [
  `.TH NSPROXY 1 "" "nsproxy ${packageVersion()}" "User Commands"`,
  '.SH NAME',
  "nsproxy \\- forward a host socket into a container's network namespace",
  '.SH SYNOPSIS',
  '.nf',
  esc(help.USAGE),
  ...help.COMMAND_USAGES.map(esc),
  '.fi',
  '.SH DESCRIPTION',
  esc(help.DESCRIPTION.replace(/\n/g, ' ')),
  '.SH OPTIONS',
  options(DAEMON_OPTIONS),
  '.TP\n.B \\-\\-help\nShow the help and exit.\n.TP\n.B \\-\\-version\nShow the version and exit.',
  '.SH "NSPROXY CHECK"',
  esc(check.DESCRIPTION.replace(/\n/g, ' ')),
  options(check.OPTIONS),
  '.SH "NSPROXY GENERATE"',
  esc(generate.DESCRIPTION.replace(/\n/g, ' ')),
  options(generate.OPTIONS),
  ...help.SECTIONS.flatMap((s) => [`.SH "${s.title}"`, preformatted(s.body)]),
  '',
].join('\n');

const out = path.join(dist, 'man', 'nsproxy.1');
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, page);

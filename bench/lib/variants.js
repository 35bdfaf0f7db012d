// @ts-check
// variants.js — the nsproxy peers of a run: the same build run with different extra options
// (--variants 'NAME=OPTIONS;…', by default one per engine), and optionally another checkout's
// build (--baseline DIR) for a before/after comparison in one interleaved run.
'use strict';

/** The default table: the default engine, then each engine forced. */
const DEFAULT_VARIANTS = 'auto=;sockmap=--engine sockmap;splice=--engine splice';

/**
 * @typedef {object} Variant
 * @property {string} name e.g. auto, sockmap, baseline
 * @property {string} peerId nsproxy for auto, nsproxy-NAME otherwise
 * @property {string} label nsproxy (NAME)
 * @property {string[]} options extra nsproxy command-line words
 * @property {'current'|'baseline'} build this tree's dist/ and addon, or --baseline's
 * @property {string} [dir] the baseline's checkout
 * @property {boolean} fromDefaultTable the default table's (not asked for by --variants)
 */

/**
 * Parse a variant table: `NAME=OPTIONS` entries separated by ';', OPTIONS split on blanks (no
 * quoting; may be empty). NAME `auto` is peer `nsproxy`, any other NAME peer `nsproxy-NAME`.
 * @param {string} spec
 * @param {boolean} [fromDefaultTable]
 * @returns {Variant[]}
 */
function parseVariants(spec, fromDefaultTable = false) {
  /** @type {Variant[]} */
  const out = [];
  for (const raw of spec.split(';')) {
    const entry = raw.trim();
    if (!entry) continue;
    const eq = entry.indexOf('=');
    if (eq < 0) throw new Error(`--variants: '${entry}' is not NAME=OPTIONS (e.g. 'threads2=--threads 2', or 'auto=' for no extra option)`);
    const name = entry.slice(0, eq).trim();
    if (!/^[a-z0-9][a-z0-9_.-]*$/i.test(name)) throw new Error(`--variants: bad name '${name}': letters, digits, '_', '.', '-'`);
    if (name === 'baseline') throw new Error("--variants: the name 'baseline' is --baseline DIR's");
    if (out.some((v) => v.name === name)) throw new Error(`--variants: '${name}' twice`);
    const options = entry.slice(eq + 1).trim().split(/\s+/).filter(Boolean);
    out.push({ name, peerId: name === 'auto' ? 'nsproxy' : `nsproxy-${name}`, label: `nsproxy (${name})`, options, build: 'current', fromDefaultTable });
  }
  if (!out.length) throw new Error("--variants: no variant given (e.g. 'auto=' for the plain nsproxy)");
  return out;
}

/**
 * The baseline peer: another checkout's built nsproxy, with no extra option.
 * @param {string} dir
 * @returns {Variant}
 */
function baselineVariant(dir) {
  return { name: 'baseline', peerId: 'nsproxy-baseline', label: 'nsproxy (baseline)', options: [], build: 'baseline', dir, fromDefaultTable: false };
}

/**
 * Did nsproxy refuse the variant's options as unknown (exit 2, "Unknown argument/option")?
 * That is a build older than the option (e.g. before --engine), not a broken variant.
 * @param {{exitCode?: number | null, output?: string}} err
 */
function isUnknownOption(err) {
  return err.exitCode === 2 && /unknown (argument|option)/i.test(err.output || '');
}

module.exports = { DEFAULT_VARIANTS, parseVariants, baselineVariant, isUnknownOption };

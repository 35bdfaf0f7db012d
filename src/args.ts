// args.ts — the common case of the command line without loading yargs. yargs builds its whole
// help, validation and locale machinery when it loads (about 40 % of nsproxy's start-up), but a
// daemon's command line is nearly always plain --option value pairs. quickParse() runs the
// parser yargs itself uses (yargs-parser), configured exactly as yargs configures it for our
// option table, and answers only when yargs could not say anything else: no --help/--version,
// no unknown option, no positional argument, no missing value. Anything else returns undefined
// and the caller asks yargs proper, so errors and --help read exactly as before.
import yargsParser from 'yargs-parser';

/** One entry of the option table: what cli.ts hands to yargs' .options() as well. */
export interface OptionSpec {
  type: 'string' | 'boolean';
  /** the option needs a value (yargs' requiresArg) */
  requiresArg?: boolean;
  description: string;
}

/** What both parsers return: the options by name (dashed and camelCase), and the positionals. */
export interface ParsedArgs {
  [name: string]: unknown;
  _: (string | number)[];
}

/** yargs' own options and settings: --help/-h and --version, and cli.ts' parserConfiguration. */
const BUILT_IN_BOOLEANS = ['version', 'help'];
const ALIASES = { help: ['h'] };
const CONFIGURATION = {
  'camel-case-expansion': true,
  'duplicate-arguments-array': true,
  'parse-positional-numbers': false,
  'populate--': true,
};

function camelCase(name: string): string {
  return name.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

function isString(value: unknown): boolean {
  return typeof value === 'string' || (Array.isArray(value) && value.every((item) => typeof item === 'string'));
}

/**
 * The parsed options, as yargs would give them for `argv` with `options`, when yargs would accept
 * `argv` without printing anything; undefined when yargs has to decide.
 */
export function quickParse(argv: string[], options: Record<string, OptionSpec>, scriptName: string): ParsedArgs | undefined {
  const names = Object.keys(options);
  const strings = names.filter((name) => options[name]!.type === 'string');
  const narg: Record<string, number> = {};
  for (const name of names) if (options[name]!.requiresArg) narg[name] = NaN;  // as yargs' requiresArg
  const parsed = yargsParser.detailed(argv, {
    key: Object.fromEntries([...names, ...BUILT_IN_BOOLEANS].map((name) => [name, true])),  // aliases both ways, as yargs
    string: strings,
    boolean: [...names.filter((name) => options[name]!.type === 'boolean'), ...BUILT_IN_BOOLEANS],
    narg,
    alias: ALIASES,
    configuration: CONFIGURATION,
  } as yargsParser.Options);
  const args = parsed.argv;
  if (parsed.error || args._.length > 0 || (args['--'] ?? []).length > 0) return undefined;
  delete args['--'];

  const known = new Map<string, OptionSpec>();
  for (const name of names) {
    known.set(name, options[name]!);
    known.set(camelCase(name), options[name]!);
  }
  for (const [key, value] of Object.entries(args)) {
    if (key === '_') continue;
    const spec = known.get(key);
    if (spec === undefined) return undefined;  // unknown, or --help/-h/--version: yargs answers
    if (spec.type === 'string' ? !isString(value) : typeof value !== 'boolean') return undefined;
  }
  return { ...args, $0: scriptName } as ParsedArgs;
}

// cli.ts — the command line: options, --help that reads like a man page, exit statuses.
import { quickParse, type OptionSpec as ParserSpec, type ParsedArgs } from './args';
import { buildConfig, type RawOptions } from './config';
import { runDaemon } from './daemon';
import { attributeToEnvironment, envArguments, scanArguments } from './env-options';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, NsproxyError } from './errors';
import { DESCRIPTION, EPILOG, USAGE } from './help';
import { hostDeps } from './host';
import { createLogger, isJournalStream, isTerminal } from './log';
import { DAEMON_OPTIONS } from './options';
import { packageVersion } from './version';

/** The option table (options.ts) as both parsers take it: yargs' .options(), and quickParse(). */
export const OPTIONS: Record<string, ParserSpec> = Object.fromEntries(
  DAEMON_OPTIONS.map((option) => [option.name, { type: option.type, requiresArg: option.type === 'string', description: option.description }]),
);

/** yargs proper, loaded only when quickParse() cannot answer: --help, --version, bad usage, a free word. */
export function yargsFor(argv: string[]) {
  // require(), not import(): a dynamic import() would load yargs' ESM build, whose help wraps differently.
  const yargs = require('yargs') as typeof import('yargs');
  return yargs(argv)
    .scriptName('nsproxy')
    .usage(`Usage: ${USAGE}\n       nsproxy check|generate ... (see COMMANDS)\n\n${DESCRIPTION}`)
    .options(OPTIONS)
    .version(packageVersion())
    .help()
    .alias('help', 'h')
    .epilog(EPILOG)
    .strictOptions()  // a free word is socket-proxyd's ADDR:PORT (positionalTo)
    .parserConfiguration({ 'camel-case-expansion': true, 'duplicate-arguments-array': true })
    .wrap(Math.min(100, process.stdout.columns || 100))
    .exitProcess(false)
    .showHelpOnFail(false)
    .fail((message, err) => {
      throw err ?? new NsproxyError('NSPROXY_ERR_USAGE', `${message}; see nsproxy --help`);
    });
}

export async function parseWithYargs(argv: string[]): Promise<ParsedArgs & { help?: boolean; version?: boolean }> {
  return yargsFor(argv).parseAsync();
}

/** The parsed command line: by yargs-parser alone when that is enough (a daemon's start), else by yargs. */
async function parse(argv: string[]): Promise<RawOptions & ParsedArgs & { help?: boolean; version?: boolean }> {
  const parsed = quickParse(argv, OPTIONS, 'nsproxy') ?? (await parseWithYargs(argv));
  return parsed as RawOptions & ParsedArgs & { help?: boolean; version?: boolean };
}

/** The one free word of the command line, socket-proxyd's ADDR:PORT, as --to. */
function positionalTo(parsed: RawOptions & { _: (string | number)[] }): RawOptions {
  if (parsed._.length === 0) return parsed;
  const [first, second] = parsed._.map(String);
  if (second !== undefined) throw new NsproxyError('NSPROXY_ERR_USAGE', `unexpected argument '${second}'; give one ADDR:PORT, and options with -- (see nsproxy --help)`);
  if (parsed.to !== undefined) throw new NsproxyError('NSPROXY_ERR_USAGE', `'${first}' and --to both given; give the target address once`);
  return { ...parsed, to: first };
}

/** Runs nsproxy with `argv` (without node and the script); resolves to the exit status. */
export async function main(argv: string[]): Promise<number> {
  const debug = argv.includes('--debug') || ['1', 'true', 'yes'].includes(process.env['NSPROXY_DEBUG'] ?? '');
  let sources = new Map<string, string>();
  try {
    if (argv[0] === 'check') return await (await import('./commands/check.js')).runCheck(argv.slice(1));
    if (argv[0] === 'generate') return await (await import('./commands/generate.js')).runGenerate(argv.slice(1));
    const scanned = scanArguments(argv, DAEMON_OPTIONS);
    if (scanned.positionals.length > 0) scanned.given.add('to');
    const fromEnv = envArguments(process.env, DAEMON_OPTIONS, scanned.given);
    sources = fromEnv.sources;
    const parsed = await parse([...fromEnv.args, ...argv]);  // before argv: never after a `--`
    if (parsed.help || parsed.version || argv.includes('--help') || argv.includes('-h') || argv.includes('--version')) return EXIT_OK;
    const config = buildConfig({ ...positionalTo(parsed), debug: debug || parsed.debug });
    const log = createLogger(config.logLevel, isJournalStream(process.env) ? 'journal' : isTerminal(1) ? 'pretty' : 'json');
    return await runDaemon(config, {
      ...hostDeps(process.env),
      log,
      pid: process.pid,
      onStopSignal: (handler) => {
        process.on('SIGTERM', handler);
        process.on('SIGINT', handler);
      },
      onReloadSignal: (handler) => process.on('SIGHUP', handler),
    });
  } catch (err) {
    const known = err instanceof NsproxyError;
    const message = attributeToEnvironment(err instanceof Error ? err.message : String(err), sources);
    // Under systemd with stderr on the journal, the line gets priority err instead of info.
    const priority = isJournalStream(process.env, 2) ? '<3>' : '';
    process.stderr.write(`${priority}nsproxy: ${message.split('\n')[0]}\n`);
    if (debug && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    return known ? err.exitCode : err instanceof Error && err.name === 'YError' ? EXIT_USAGE : EXIT_FAILURE;
  }
}

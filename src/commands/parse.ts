// commands/parse.ts — the command line of a subcommand (check, generate): the same yargs set-up
// as the daemon's (strict, one-line errors, no exit from inside yargs), its own options.
import yargs from 'yargs';

import { NsproxyError } from '../errors';
import type { OptionSpec } from '../options';

export interface Parsed {
  help: boolean;
  options: Record<string, unknown>;
  positionals: string[];
}

export async function parseCommand(name: string, argv: string[], usage: string, description: string, options: OptionSpec[]): Promise<Parsed> {
  let cli = yargs(argv)
    .scriptName(`nsproxy ${name}`)
    .usage(`Usage: ${usage}\n\n${description}`);
  for (const option of options) {
    cli = cli.option(option.name, { type: option.type, requiresArg: option.type === 'string', description: option.description });
  }
  const parsed = (await cli
    .help()
    .alias('help', 'h')
    .version(false)
    .strict()
    .parserConfiguration({ 'camel-case-expansion': true, 'duplicate-arguments-array': true })
    .wrap(Math.min(100, process.stdout.columns || 100))
    .exitProcess(false)
    .showHelpOnFail(false)
    .fail((message, err) => {
      throw err ?? new NsproxyError('NSPROXY_ERR_USAGE', `${message}; see nsproxy ${name} --help`);
    })
    .parseAsync()) as Record<string, unknown> & { _: (string | number)[] };
  return {
    help: argv.includes('--help') || argv.includes('-h'),
    options: parsed,
    positionals: parsed._.map(String),
  };
}

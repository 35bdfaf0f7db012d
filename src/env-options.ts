// env-options.ts — every option from the environment: NSPROXY_EXIT_IDLE_TIME=5min is
// --exit-idle-time 5min, so that a systemd drop-in sets one option in one line
// (Environment=NSPROXY_EXIT_IDLE_TIME=5min) without restating ExecStart=. The command line wins
// over the environment; an NSPROXY_ variable that names no option is an error, so a typo is
// not silently ignored.
import { NsproxyError } from './errors';
import { envName, type OptionSpec } from './options';

export interface EnvArguments {
  /** extra command-line words for the options the environment sets */
  args: string[];
  /** option name -> the variable it came from, for error messages */
  sources: Map<string, string>;
}

const TRUE = ['1', 'true', 'yes', 'on'];
const FALSE = ['0', 'false', 'no', 'off'];

/** The options given on the command line, and its words that are not options (positionals). */
export function scanArguments(argv: string[], options: OptionSpec[]): { given: Set<string>; positionals: string[] } {
  const given = new Set<string>();
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i] as string;
    if (word === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (word.startsWith('--')) {
      const [name = '', inline] = word.slice(2).split(/=(.*)/s);
      const bare = name.replace(/^no-/, '');
      given.add(bare);
      const spec = options.find((option) => option.name === bare);
      if (spec?.type === 'string' && inline === undefined) i++;
    } else if (!word.startsWith('-') || word === '-') {
      positionals.push(word);
    }
  }
  return { given, positionals };
}

/**
 * The command-line words for every NSPROXY_<OPTION> in `env` whose option `given` does not
 * have already. Empty values count as unset (Environment=NSPROXY_X= in a later drop-in resets).
 */
export function envArguments(env: NodeJS.ProcessEnv, options: OptionSpec[], given: Set<string>): EnvArguments {
  const args: string[] = [];
  const sources = new Map<string, string>();
  const byVariable = new Map(options.map((option) => [envName(option.name), option]));
  for (const [variable, value] of Object.entries(env)) {
    if (!variable.startsWith('NSPROXY_') || value === undefined) continue;
    const option = byVariable.get(variable);
    if (!option) {
      throw new NsproxyError('NSPROXY_ERR_USAGE', `${variable} is set, but nsproxy has no option it would set; unset it, or use one of the variables in nsproxy --help (ENVIRONMENT)`);
    }
    if (value.trim() === '' || given.has(option.name)) continue;
    sources.set(option.name, variable);
    if (option.type === 'boolean') {
      const word = value.trim().toLowerCase();
      if (TRUE.includes(word)) args.push(`--${option.name}`);
      else if (!FALSE.includes(word)) throw new NsproxyError('NSPROXY_ERR_USAGE', `${variable}='${value}': not a boolean; write 1 or 0`);
      continue;
    }
    const values = option.repeatable ? value.trim().split(/\s+/) : [value];
    for (const one of values) args.push(`--${option.name}=${one}`);
  }
  return { args, sources };
}

/**
 * Says where an option's bad value came from: "--ready-timeout 'soon': ..." becomes
 * "--ready-timeout 'soon' (from NSPROXY_READY_TIMEOUT): ...".
 */
export function attributeToEnvironment(message: string, sources: Map<string, string>): string {
  for (const [name, variable] of sources) {
    const match = new RegExp(`^--${name}( '[^']*')?(?=[ :])`).exec(message);
    if (match) return `${match[0]} (from ${variable})${message.slice(match[0].length)}`;
  }
  return message;
}

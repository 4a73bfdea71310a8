import { Option, type Command } from 'commander';
import type { DeployOptions } from '../actions/deploy.js';
import { parseDuration } from '../core/duration.js';
import { ConfigError } from '../errors.js';
import type { RenderFlags, TargetOptions } from '../stages/release-inputs.js';

/**
 * The flags several commands share, each set defined once (a function adding
 * it to a command) beside the typed read of its values, and the one place
 * commander's parsed values get a type.
 */

/**
 * A command's parsed flag values, read with the type each flag was defined
 * with. commander types them `any`; a value of another type here is a bug in a
 * flag's definition, reported as an internal error.
 */
export class ParsedFlags {
  private constructor(private readonly values: Readonly<Record<string, unknown>>) {}

  static of(cmd: Command): ParsedFlags {
    return new ParsedFlags(cmd.opts<Record<string, unknown>>());
  }

  string(key: string): string | undefined {
    return this.read(key, 'a string', (v): v is string => typeof v === 'string');
  }
  strings(key: string): string[] | undefined {
    return this.read(key, 'a list of strings', (v): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string'));
  }
  number(key: string): number | undefined {
    return this.read(key, 'a number', (v): v is number => typeof v === 'number');
  }
  boolean(key: string): boolean | undefined {
    return this.read(key, 'true or false', (v): v is boolean => typeof v === 'boolean');
  }
  /** A flag restricted to `choices` (commander refuses others). */
  choice<C extends string>(key: string, choices: readonly C[]): C | undefined {
    return this.read(key, choices.join(' or '), (v): v is C => choices.some((c) => c === v));
  }
  /** The value of a flag defined with a default, so always set. */
  static defaulted<T>(value: T | undefined, key: string): T {
    if (value === undefined) throw new Error(`flag ${key} has no value, though it has a default`);
    return value;
  }

  private read<T>(key: string, what: string, is: (v: unknown) => v is T): T | undefined {
    const value = this.values[key];
    if (value === undefined) return undefined;
    if (!is(value)) throw new Error(`flag ${key} is ${JSON.stringify(value)}, not ${what}`);
    return value;
  }
}

/** A set of flags: added to a command once, read back typed. */
export interface FlagSet<T> {
  add(cmd: Command): Command;
  read(flags: ParsedFlags): T;
}

/** The parser of a duration flag: "90s", "5m", "1h" to milliseconds. */
export const duration = (flag: string) => (v: string) => {
  const ms = parseDuration(v);
  if (ms === undefined) throw new ConfigError(`${flag} "${v}" is not a duration; use e.g. 90s, 5m, 1h`);
  return ms;
};
const collect = (v: string, prev: string[] = []) => [...prev, v];
export const integer = (v: string) => Number.parseInt(v, 10);

export interface GlobalFlags {
  output: 'text' | 'json';
  verbose?: boolean;
  dir?: string;
}

/** -o/--output, -v/--verbose and -C/--dir: every command's, given before or after it. */
export const globalFlags: FlagSet<GlobalFlags> = {
  add: (cmd) =>
    cmd
      .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
      .option('-v, --verbose', 'show more detail (push progress, debug lines)')
      .option('-C, --dir <path>', 'run as if started in <path>'),
  read: (f) => ({
    output: ParsedFlags.defaulted(f.choice('output', ['text', 'json'] as const), 'output'),
    verbose: f.boolean('verbose'),
    dir: f.string('dir'),
  }),
};

/** The flags of TargetOptions: what they set is what the actions read. */
export type TargetFlags = Pick<TargetOptions, 'namespace' | 'kubeContext' | 'kubeconfig' | 'dev' | 'registry'>;

/** Which release and cluster an environment command works on (render, lint, deploy, ship, history, status, rollback, diff, dismiss). */
export const targetFlags: FlagSet<TargetFlags> = {
  add: (cmd) =>
    cmd
      .option('--namespace <ns>', 'namespace (overrides environments.<env>.namespace)')
      .option('--kube-context <name>', 'kubeconfig context (overrides environments.<env>.kubeContext)')
      .option('--kubeconfig <file>', 'kubeconfig file (default: KUBECONFIG, ~/.kube/config or in-cluster)')
      .option('--dev', 'use the working tree instead of HEAD')
      .option('--registry <prefix>', 'image repository prefix (overrides skiff.yaml)'),
  read: (f) => ({
    namespace: f.string('namespace'),
    kubeContext: f.string('kubeContext'),
    kubeconfig: f.string('kubeconfig'),
    dev: f.boolean('dev'),
    registry: f.string('registry'),
  }),
};

/** -f/--values and --set: the values a render starts from (render, lint, diff, deploy, ship). */
export const valuesFlags: FlagSet<RenderFlags> = {
  add: (cmd) =>
    cmd
      .option('-f, --values <file>', 'extra values file (repeatable, later wins)', collect)
      .option('--set <key=value>', 'set a value, e.g. --set replicas=3 (repeatable)', collect),
  read: (f) => ({ valuesFiles: f.strings('values'), set: f.strings('set') }),
};

/** --timeout: how long a rollout is tracked (deploy, ship, rollback). */
export const timeoutFlag: FlagSet<Pick<DeployOptions, 'timeoutMs'>> = {
  add: (cmd) => cmd.option('--timeout <duration>', 'how long to wait for readiness (default: deploy.timeout, 5m)', duration('--timeout')),
  read: (f) => ({ timeoutMs: f.number('timeout') }),
};

/** --lock-timeout, its default shown as it would be typed ("5m"), not in milliseconds (deploy, ship, rollback, dismiss). */
export const lockTimeoutFlag: FlagSet<Required<Pick<TargetOptions, 'lockTimeoutMs'>>> = {
  add: (cmd) =>
    cmd.addOption(
      new Option('--lock-timeout <duration>', 'how long to wait for another deploy of this release')
        .argParser(duration('--lock-timeout'))
        .default(5 * 60_000, '5m'),
    ),
  read: (f) => ({ lockTimeoutMs: ParsedFlags.defaulted(f.number('lockTimeout'), 'lockTimeout') }),
};

/** --force-conflicts (deploy, ship, rollback). */
export const forceConflictsFlag: FlagSet<Pick<DeployOptions, 'forceConflicts'>> = {
  add: (cmd) => cmd.option('--force-conflicts', 'take over fields owned by another field manager'),
  read: (f) => ({ forceConflicts: f.boolean('forceConflicts') }),
};

/** Everything deploy and ship do with a render, after the target flags. */
export const deployFlags: FlagSet<Omit<DeployOptions, 'env' | keyof TargetFlags>> = {
  add: (cmd) => {
    for (const set of [valuesFlags, timeoutFlag, lockTimeoutFlag]) set.add(cmd);
    cmd
      .option('--auto-rollback', 'roll back to the last deployed revision on failure (default in CI)')
      .option('--no-auto-rollback', 'never roll back automatically');
    return forceConflictsFlag
      .add(cmd)
      .option('--adopt', "take over rendered objects that exist as another release's, Helm's or werf's, or made by hand (else refused)")
      .option('--allowed-restarts <n>', 'container restarts tolerated before a crash loop fails the deploy', integer)
      .option('--strict', 'lint warnings stop the deploy too')
      .option('--allow-older', 'deploy a commit older than the one the release runs (else refused, exit 2)');
  },
  read: (f) => ({
    ...valuesFlags.read(f),
    ...timeoutFlag.read(f),
    ...lockTimeoutFlag.read(f),
    ...forceConflictsFlag.read(f),
    autoRollback: f.boolean('autoRollback'),
    adopt: f.boolean('adopt'),
    allowedRestarts: f.number('allowedRestarts'),
    strict: f.boolean('strict'),
    allowOlder: f.boolean('allowOlder'),
  }),
};

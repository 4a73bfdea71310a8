// The command-line boundary: shared flag sets read back as the actions' typed options, and the exit
// codes of the help's table, diff --exit-code and the errors from one table.
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { ParsedFlags, deployFlags, globalFlags, lockTimeoutFlag, targetFlags, valuesFlags, type FlagSet } from '../../src/cli/flags.js';
import { exitCodesHelp, failureExitCode, flagExitHelp } from '../../src/cli/exit-codes.js';
import { ConfigError, ExitCode, InfrastructureError, WorkFailedError } from '../../src/errors.js';

function parse(sets: Array<FlagSet<unknown>>, argv: string[]): ParsedFlags {
  const cmd = new Command('t').exitOverride();
  for (const set of sets) set.add(cmd);
  cmd.parse(argv, { from: 'user' });
  return ParsedFlags.of(cmd);
}

describe('flag sets', () => {
  it('read the target, values and deploy flags as DeployOptions', () => {
    const argv = [
      '--namespace',
      'ns',
      '--kube-context',
      'kc',
      '--kubeconfig',
      '/k',
      '--dev',
      '--registry',
      'r',
      '-f',
      'a.yaml',
      '-f',
      'b.yaml',
      '--set',
      'x=1',
    ];
    const more = ['--timeout', '2m', '--lock-timeout', '30s', '--no-auto-rollback', '--force-conflicts', '--allowed-restarts', '3', '--strict'];
    const flags = parse([targetFlags, deployFlags], [...argv, ...more]);
    expect({ ...targetFlags.read(flags), ...deployFlags.read(flags) }).toEqual({
      namespace: 'ns',
      kubeContext: 'kc',
      kubeconfig: '/k',
      dev: true,
      registry: 'r',
      valuesFiles: ['a.yaml', 'b.yaml'],
      set: ['x=1'],
      timeoutMs: 120_000,
      lockTimeoutMs: 30_000,
      autoRollback: false,
      forceConflicts: true,
      adopt: undefined,
      allowedRestarts: 3,
      strict: true,
    });
  });

  it('fill in the defaults: text output, a 5m lock timeout; an unset flag is undefined', () => {
    const flags = parse([globalFlags, valuesFlags, lockTimeoutFlag], []);
    expect(globalFlags.read(flags)).toEqual({ output: 'text', verbose: undefined, dir: undefined });
    expect(lockTimeoutFlag.read(flags)).toEqual({ lockTimeoutMs: 5 * 60_000 });
    expect(valuesFlags.read(flags)).toEqual({ valuesFiles: undefined, set: undefined });
  });

  it('refuse a duration that is not one: bad input, naming the flag', () => {
    expect(() => parse([lockTimeoutFlag], ['--lock-timeout', '5min'])).toThrow(ConfigError);
    expect(() => parse([lockTimeoutFlag], ['--lock-timeout', '5min'])).toThrow('--lock-timeout "5min" is not a duration; use e.g. 90s, 5m, 1h');
  });

  it('a value of another type than the flag was defined with is a bug, not a value', () => {
    const cmd = new Command('t').option('--namespace <ns>', 'namespace', (v) => v.length);
    cmd.parse(['--namespace', 'ns'], { from: 'user' });
    expect(() => targetFlags.read(ParsedFlags.of(cmd))).toThrow('flag namespace is 2, not a string');
  });
});

describe('exit codes', () => {
  it("the help's table lists every code but a flag's own, as before", () => {
    expect(exitCodesHelp()).toBe(
      [
        'Exit codes:',
        '  0  success',
        '  1  the work failed (build step, test, rollout)',
        '  2  bad input or configuration; nothing was touched',
        '  3  Docker, registry or cluster unreachable, or access denied',
        '  130 interrupted',
      ].join('\n'),
    );
    expect(flagExitHelp('changes')).toBe('exit 1 when there are changes');
  });

  it("a failure's code is its error's, 1 for a bug, 130 once interrupted", () => {
    expect(failureExitCode(new ConfigError('x'), false)).toBe(ExitCode.badInput);
    expect(failureExitCode(new InfrastructureError('x'), false)).toBe(3);
    expect(failureExitCode(new WorkFailedError('deploy', 'x'), false)).toBe(1);
    expect(failureExitCode(new TypeError('bug'), false)).toBe(1);
    expect(failureExitCode(new InfrastructureError('x'), true)).toBe(130);
  });
});

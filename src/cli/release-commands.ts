import { Option, type Command } from 'commander';
import type { DeployOptions, DeployResult } from '../actions/deploy.js';
import type { RunContext } from '../context.js';
import { parseDuration } from '../core/duration.js';
import { ConfigError, WorkFailedError } from '../errors.js';
import { formatDeploySummary, formatHistory, formatLint, formatStatus } from './format.js';
import { printJson, run } from './session.js';

const duration = (flag: string) => (v: string) => {
  const ms = parseDuration(v);
  if (ms === undefined) throw new ConfigError(`${flag} "${v}" is not a duration; use e.g. 90s, 5m, 1h`);
  return ms;
};
const collect = (v: string, prev: string[] = []) => [...prev, v];
/** --lock-timeout, its default shown as it would be typed ("5m"), not in milliseconds. */
const lockTimeoutOption = () =>
  new Option('--lock-timeout <duration>', 'how long to wait for another deploy of this release')
    .argParser(duration('--lock-timeout'))
    .default(5 * 60_000, '5m');

interface DeployFlags {
  dev?: boolean;
  registry?: string;
  namespace?: string;
  kubeContext?: string;
  kubeconfig?: string;
  values?: string[];
  set?: string[];
  timeout?: number;
  lockTimeout?: number;
  autoRollback?: boolean;
  forceConflicts?: boolean;
  adopt?: boolean;
  allowedRestarts?: number;
  strict?: boolean;
}

function targetOptions(cmd: Command): Command {
  return cmd
    .option('--namespace <ns>', 'namespace (overrides environments.<env>.namespace)')
    .option('--kube-context <name>', 'kubeconfig context (overrides environments.<env>.kubeContext)')
    .option('--kubeconfig <file>', 'kubeconfig file (default: KUBECONFIG, ~/.kube/config or in-cluster)')
    .option('--dev', 'use the working tree instead of HEAD')
    .option('--registry <prefix>', 'image repository prefix (overrides skiff.yaml)');
}

function deployOptions(cmd: Command): Command {
  return targetOptions(cmd)
    .option('-f, --values <file>', 'extra values file (repeatable, later wins)', collect)
    .option('--set <key=value>', 'set a value, e.g. --set replicas=3 (repeatable)', collect)
    .option('--timeout <duration>', 'how long to wait for readiness (default: deploy.timeout, 5m)', duration('--timeout'))
    .addOption(lockTimeoutOption())
    .option('--auto-rollback', 'roll back to the last deployed revision on failure (default in CI)')
    .option('--no-auto-rollback', 'never roll back automatically')
    .option('--force-conflicts', 'take over fields owned by another field manager')
    .option('--adopt', "take over rendered objects that exist as another release's, Helm's or werf's, or made by hand (else refused)")
    .option('--allowed-restarts <n>', 'container restarts tolerated before a crash loop fails the deploy', (v) => Number.parseInt(v, 10))
    .option('--strict', 'lint warnings stop the deploy too');
}

/** commander's parsed target and render flags, as an action's options (lint, deploy, ship). */
function renderOpts(env: string, o: DeployFlags) {
  return {
    env,
    dev: o.dev,
    registry: o.registry,
    namespace: o.namespace,
    kubeContext: o.kubeContext,
    kubeconfig: o.kubeconfig,
    valuesFiles: o.values,
    set: o.set,
    strict: o.strict,
  };
}

/** commander's parsed flags of deploy and ship, as the action's options. */
function deployOpts(env: string, o: DeployFlags): DeployOptions {
  return {
    ...renderOpts(env, o),
    timeoutMs: o.timeout,
    lockTimeoutMs: o.lockTimeout,
    autoRollback: o.autoRollback,
    forceConflicts: o.forceConflicts,
    adopt: o.adopt,
    allowedRestarts: o.allowedRestarts,
  };
}

/** Prints a deploy's verdict; a failed deploy becomes the error that sets the exit code. */
function reportDeploy(ctx: RunContext, json: boolean, result: DeployResult) {
  if (json) printJson(result);
  const summary = formatDeploySummary(result);
  if (result.status === 'deployed') return ctx.reporter.info(summary.join('\n'));
  if (!json) for (const line of summary) process.stderr.write(`${line}\n`);
  const error = new WorkFailedError(
    'deploy',
    `release ${result.release} revision ${result.revision} failed: ${result.description}${result.rolledBack ? `; rolled back (revision ${result.rolledBack.revision})` : ''}`,
  );
  error.resultPrinted = json;
  throw error;
}

/** A command that works on one environment's release: `skiff <name> <env>` with the target flags. */
function envCommand(program: Command, name: string, description: string, flags: (cmd: Command) => Command): Command {
  return flags(program.command(name)).description(description).argument('<env>', 'environment from skiff.yaml');
}

export function addReleaseCommands(program: Command) {
  envCommand(program, 'render', 'render .kube/ for an environment with the exact image references', targetOptions)
    .option('-f, --values <file>', 'extra values file (repeatable)', collect)
    .option('--set <key=value>', 'set a value (repeatable)', collect)
    .option('--output-dir <dir>', 'write one file per object into <dir> instead of printing')
    .option('--show-secrets', 'print Secret values instead of masking them')
    .addHelpText('after', '\nExamples:\n  skiff render staging\n  skiff render production --set replicas=3 --output-dir out/')
    .action((env: string, o) =>
      run(program, async ({ ctx, json }) => {
        const { runRender } = await import('../actions/render.js');
        const { manifestsToYaml } = await import('./yaml-output.js');
        const r = await runRender(ctx, {
          env,
          dev: o.dev,
          registry: o.registry,
          namespace: o.namespace,
          valuesFiles: o.values,
          set: o.set,
          outputDir: o.outputDir,
          showSecrets: o.showSecrets,
        });
        if (json) printJson({ release: r.release, namespace: r.namespace, images: r.images, objects: r.manifests.map((m) => m.object) });
        else if (!o.outputDir) process.stdout.write(manifestsToYaml(r.manifests));
        else ctx.reporter.info(`wrote ${r.manifests.length} objects to ${o.outputDir}`);
        if (r.masked && !json) ctx.reporter.info('secret values are masked as (masked sha256:…); --show-secrets prints them');
      }),
    );

  envCommand(program, 'lint', 'render an environment and check the objects for mistakes the cluster accepts silently', targetOptions)
    .option('-f, --values <file>', 'extra values file (repeatable)', collect)
    .option('--set <key=value>', 'set a value (repeatable)', collect)
    .option('--strict', 'warnings are errors too')
    .option('--adopt', 'as deploy --adopt: objects of another release or tool are not refused')
    .addHelpText(
      'after',
      `
The cluster is only read (the namespace's pods, workloads, Services,
ConfigMaps and Secrets count); unreachable, the rendered objects are linted
alone. Silence a check on one object with the annotation
skiff.io/lint-skip: <check>,<check>. Exit 2 on errors (with --strict, on warnings).

Examples:
  skiff lint staging
  skiff lint production --strict -o json`,
    )
    .action((env: string, o) =>
      run(program, async ({ ctx, json }) => {
        const { runLint } = await import('../actions/lint.js');
        const r = await runLint(ctx, { ...renderOpts(env, o), adopt: o.adopt });
        if (json) printJson(r);
        else for (const line of formatLint(r)) process.stdout.write(`${line}\n`);
        if (r.errors) {
          const error = new ConfigError(
            `${r.errors} lint error${r.errors === 1 ? '' : 's'} in ${r.release}; fix them, or silence a check on an object with the annotation skiff.io/lint-skip`,
          );
          error.resultPrinted = json;
          throw error;
        }
      }),
    );

  envCommand(program, 'deploy', 'render, validate, apply and follow the rollout of an environment', deployOptions)
    .addHelpText(
      'after',
      '\nThe images must already be in the registry (skiff build --push), or use "skiff ship".\n\nExamples:\n  skiff deploy staging\n  skiff deploy production --timeout 10m --auto-rollback',
    )
    .action((env: string, o) =>
      run(program, async ({ ctx, json }) => {
        const { runDeploy } = await import('../actions/deploy.js');
        reportDeploy(ctx, json, await runDeploy(ctx, deployOpts(env, o)));
      }),
    );

  envCommand(program, 'ship', 'build, test, push and deploy in one go', deployOptions)
    .option('--skip-tests', 'do not run the tests of skiff.yaml')
    .addHelpText('after', '\nExamples:\n  skiff ship staging')
    .action((env: string, o) =>
      run(program, async ({ ctx, json }) => {
        const { runShip } = await import('../actions/ship.js');
        reportDeploy(ctx, json, await runShip(ctx, { ...deployOpts(env, o), skipTests: o.skipTests }));
      }),
    );

  envCommand(program, 'history', 'list the revisions of a release', targetOptions).action((env: string, o) =>
    run(program, async ({ json, ctx }) => {
      const { runHistory } = await import('../actions/history.js');
      const records = await runHistory(ctx, { env, ...o });
      if (json) printJson(records.map(({ manifests, ...r }) => ({ ...r, objects: manifests.length })));
      else process.stdout.write(records.length ? `${formatHistory(records)}\n` : 'no revisions\n');
    }),
  );

  envCommand(program, 'status', 'the current revision of a release and the live readiness of its objects', targetOptions).action((env: string, o) =>
    run(program, async ({ json, ctx }) => {
      const { runStatus } = await import('../actions/status.js');
      const s = await runStatus(ctx, { env, ...o });
      if (json) printJson(s);
      else process.stdout.write(`${formatStatus(s)}\n`);
    }),
  );

  envCommand(program, 'rollback', 're-apply an earlier revision as a new revision, with full tracking', targetOptions)
    .option('--to <revision>', 'revision to roll back to (default: the previous deployed one)', (v) => Number.parseInt(v, 10))
    .option('--timeout <duration>', 'how long to wait for readiness', duration('--timeout'))
    .addOption(lockTimeoutOption())
    .option('--force-conflicts', 'take over fields owned by another field manager')
    .addHelpText('after', '\nExamples:\n  skiff rollback production\n  skiff rollback staging --to 3')
    .action((env: string, o) =>
      run(program, async ({ ctx, json }) => {
        const { runRollback } = await import('../actions/rollback.js');
        const r = await runRollback(ctx, { env, ...o, timeoutMs: o.timeout, lockTimeoutMs: o.lockTimeout });
        if (json) printJson(r);
        else ctx.reporter.info(`release ${r.release} revision ${r.revision}: ${r.description}`);
      }),
    );

  envCommand(program, 'diff', 'what a deploy would change: server-side dry run against the live objects', targetOptions)
    .option('-f, --values <file>', 'extra values file (repeatable)', collect)
    .option('--set <key=value>', 'set a value (repeatable)', collect)
    .option('--exit-code', 'exit 1 when there are changes')
    .option('--adopt', 'show objects of another release or tool as deploy --adopt would take them over (else refused, exit 2)')
    .action((env: string, o) =>
      run(program, async ({ ctx, json }) => {
        const { runDiff } = await import('../actions/diff.js');
        const d = await runDiff(ctx, { env, ...o, valuesFiles: o.values });
        if (json) printJson(d);
        else if (d.changes.length === 0) process.stdout.write('no changes\n');
        else for (const c of d.changes) process.stdout.write(`# ${c.change} ${c.object}\n${c.diff}\n`);
        if (o.exitCode && d.changes.length) process.exitCode = 1;
      }),
    );

  envCommand(program, 'dismiss', "delete a release's objects (and with --with-history its records)", targetOptions)
    .option('--with-history', 'also delete the release records')
    .option('--with-namespace', 'also delete the namespace skiff created for the release (and with it the records)')
    .addHelpText(
      'after',
      `
Without a checkout (a GitLab stop job with GIT_STRATEGY: none) the release is
found in the cluster by the environment's slug (CI_ENVIRONMENT_SLUG); nothing to
dismiss is not an error.

Examples:
  skiff dismiss staging
  skiff dismiss review/$CI_COMMIT_REF_SLUG --with-namespace`,
    )
    .addOption(lockTimeoutOption())
    .action((env: string, o) =>
      run(program, async ({ ctx, json }) => {
        const { runDismiss } = await import('../actions/dismiss.js');
        const r = await runDismiss(ctx, { env, ...o, lockTimeoutMs: o.lockTimeout });
        if (json) printJson(r);
        else ctx.reporter.info(r.summary);
      }),
    );

  program
    .command('cleanup')
    .description('delete from the registry the images no release revision and no recent commit needs')
    .option('--keep-commits <n>', 'keep the images of this many newest commits of every branch and tag', (v) => Number.parseInt(v, 10), 10)
    .addOption(new Option('--min-age <duration>', 'keep images built more recently than this').argParser(duration('--min-age')).default(60 * 60_000, '1h'))
    .option('--dry-run', 'list what would be deleted, delete nothing')
    .option('--registry <prefix>', 'image repository prefix (overrides skiff.yaml)')
    .option('--kubeconfig <file>', 'kubeconfig to read the release histories with (default: KUBECONFIG, ~/.kube/config)')
    .addHelpText(
      'after',
      `
The clusters of every environment are read first: images referenced by any
stored skiff revision in any namespace are kept, so every rollback still works
(this needs to list Secrets cluster-wide). Tags that are branch or Git tag
names, or that skiff did not make, are never removed; nor images younger than
--min-age. A shallow clone is refused. The registry frees the space in its own
garbage collection (registry garbage-collect).

Examples:
  skiff cleanup --dry-run
  skiff cleanup --keep-commits 20`,
    )
    .action((o) =>
      run(program, async ({ ctx, json }) => {
        const { runCleanup } = await import('../actions/cleanup.js');
        const r = await runCleanup(ctx, { ...o, minAgeMs: o.minAge });
        if (json) printJson(r);
        else ctx.reporter.info(`${r.dryRun ? 'would delete' : 'deleted'} ${r.deleted.length} images; kept ${r.kept}`);
      }),
    );
}

import { type Command, Option } from 'commander';
import { parseDuration } from '../core/duration.js';
import { ConfigError } from '../errors.js';
import type { RunContext } from '../context.js';

type Run = (program: Command, body: (s: { ctx: RunContext; json: boolean }) => Promise<void>) => Promise<void>;

const duration = (flag: string) => (v: string) => {
  const ms = parseDuration(v);
  if (ms === undefined) throw new ConfigError(`${flag} "${v}" is not a duration; use e.g. 90s, 5m, 1h`);
  return ms;
};
const collect = (v: string, prev: string[] = []) => [...prev, v];

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
    .option('--lock-timeout <duration>', 'how long to wait for another deploy of this release', duration('--lock-timeout'), 5 * 60_000)
    .option('--auto-rollback', 'roll back to the last deployed revision on failure (default in CI)')
    .option('--no-auto-rollback', 'never roll back automatically')
    .option('--force-conflicts', 'take over fields owned by another field manager')
    .option('--allowed-restarts <n>', 'container restarts tolerated before a crash loop fails the deploy', (v) => Number.parseInt(v, 10));
}

function deployOpts(env: string, o: Record<string, any>) { // eslint-disable-line @typescript-eslint/no-explicit-any
  return {
    env,
    dev: o.dev,
    registry: o.registry,
    namespace: o.namespace,
    kubeContext: o.kubeContext,
    kubeconfig: o.kubeconfig,
    valuesFiles: o.values,
    set: o.set,
    timeoutMs: o.timeout,
    lockTimeoutMs: o.lockTimeout,
    autoRollback: o.autoRollback,
    forceConflicts: o.forceConflicts,
    allowedRestarts: o.allowedRestarts,
  };
}

async function reportDeploy(ctx: RunContext, json: boolean, result: import('../actions/deploy.js').DeployResult) {
  const { formatDiagnosis } = await import('../stages/track.js');
  const { WorkFailedError } = await import('../errors.js');
  if (json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  if (result.status === 'deployed') {
    ctx.reporter.info(`release ${result.release} revision ${result.revision} deployed in ${(result.durationMs / 1000).toFixed(1)}s${result.pruned.length ? `; pruned ${result.pruned.join(', ')}` : ''}`);
    return;
  }
  if (!json) {
    for (const f of result.failures) process.stderr.write(`\n${formatDiagnosis(f)}\n`);
    if (result.rolledBack) ctx.reporter.info(`rolled back: revision ${result.rolledBack.revision} restores revision ${result.revision - 1 > 0 ? 'the last deployed' : ''} (${result.rolledBack.description})`);
  }
  const error = new WorkFailedError('deploy', `release ${result.release} revision ${result.revision} failed: ${result.description}${result.rolledBack ? `; rolled back (revision ${result.rolledBack.revision})` : ''}`);
  error.resultPrinted = json;
  throw error;
}

export function addReleaseCommands(program: Command, run: Run) {
  targetOptions(program.command('render'))
    .description('render .kube/ for an environment with the exact image references')
    .argument('<env>', 'environment from skiff.yaml')
    .option('-f, --values <file>', 'extra values file (repeatable)', collect)
    .option('--set <key=value>', 'set a value (repeatable)', collect)
    .option('--output-dir <dir>', 'write one file per object into <dir> instead of printing')
    .option('--show-secrets', 'print Secret values instead of masking them')
    .addHelpText('after', '\nExamples:\n  skiff render staging\n  skiff render production --set replicas=3 --output-dir out/')
    .action((env: string, o) =>
      run(program, async ({ ctx, json }) => {
        const { runRender, manifestsToYaml } = await import('../actions/release-actions.js');
        const r = await runRender(ctx, { env, dev: o.dev, registry: o.registry, namespace: o.namespace, valuesFiles: o.values, set: o.set, outputDir: o.outputDir, showSecrets: o.showSecrets });
        if (json) process.stdout.write(`${JSON.stringify({ release: r.release, namespace: r.namespace, images: r.images, objects: r.manifests.map((m) => m.object) }, null, 2)}\n`);
        else if (!o.outputDir) process.stdout.write(manifestsToYaml(r.manifests));
        else ctx.reporter.info(`wrote ${r.manifests.length} objects to ${o.outputDir}`);
      }),
    );

  deployOptions(program.command('deploy'))
    .description('render, validate, apply and follow the rollout of an environment')
    .argument('<env>', 'environment from skiff.yaml')
    .addHelpText('after', '\nThe images must already be in the registry (skiff build --push), or use "skiff ship".\n\nExamples:\n  skiff deploy staging\n  skiff deploy production --timeout 10m --auto-rollback')
    .action((env: string, o) =>
      run(program, async ({ ctx, json }) => {
        const { runDeploy } = await import('../actions/deploy.js');
        await reportDeploy(ctx, json, await runDeploy(ctx, deployOpts(env, o)));
      }),
    );

  deployOptions(program.command('ship'))
    .description('build, test, push and deploy in one go')
    .argument('<env>', 'environment from skiff.yaml')
    .option('--skip-tests', 'do not run the tests of skiff.yaml')
    .addHelpText('after', '\nExamples:\n  skiff ship staging')
    .action((env: string, o) =>
      run(program, async ({ ctx, json }) => {
        const { loadProject } = await import('../project.js');
        const { planImages } = await import('../stages/image-plan.js');
        const { buildPlanned } = await import('../actions/build.js');
        const { testProject } = await import('../actions/test.js');
        const { runDeploy } = await import('../actions/deploy.js');
        const { WorkFailedError } = await import('../errors.js');
        const project = await loadProject(ctx, o);
        const { resolveTarget } = await import('../stages/release-inputs.js');
        resolveTarget(project, env, o);
        if (!project.registry) throw new ConfigError(`nothing to push to: set "registry" in ${project.config.file}, SKIFF_REGISTRY or --registry`);
        await buildPlanned(ctx, project, await planImages(project), { push: true });
        let tests;
        if (!o.skipTests) {
          const t = await testProject(ctx, project, {});
          tests = t.tests.map((r) => ({ test: r.test, passed: r.passed, exitCode: r.exitCode, durationMs: r.durationMs }));
          if (!t.passed) throw new WorkFailedError('test', `tests failed (${t.tests.filter((r) => !r.passed).map((r) => r.test).join(', ')}); not deploying`);
        }
        await reportDeploy(ctx, json, await runDeploy(ctx, deployOpts(env, o), { project, tests }));
      }),
    );

  targetOptions(program.command('history'))
    .description('list the revisions of a release')
    .argument('<env>', 'environment from skiff.yaml')
    .action((env: string, o) =>
      run(program, async ({ json, ctx }) => {
        const { runHistory, formatHistory } = await import('../actions/release-actions.js');
        const records = await runHistory(ctx, { env, ...o });
        if (json) process.stdout.write(`${JSON.stringify(records.map(({ manifests, ...r }) => ({ ...r, objects: manifests.length })), null, 2)}\n`);
        else process.stdout.write(records.length ? `${formatHistory(records)}\n` : 'no revisions\n');
      }),
    );

  targetOptions(program.command('status'))
    .description('the current revision of a release and the live readiness of its objects')
    .argument('<env>', 'environment from skiff.yaml')
    .action((env: string, o) =>
      run(program, async ({ json, ctx }) => {
        const { runStatus } = await import('../actions/release-actions.js');
        const s = await runStatus(ctx, { env, ...o });
        if (json) return void process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
        process.stdout.write(`release ${s.release} in ${s.namespace}: ${s.revision ? `revision ${s.revision} ${s.status}` : s.status}\n`);
        for (const obj of s.objects) process.stdout.write(`  ${obj.object.padEnd(40)} ${obj.state.padEnd(12)} ${obj.message}\n`);
      }),
    );

  targetOptions(program.command('rollback'))
    .description('re-apply an earlier revision as a new revision, with full tracking')
    .argument('<env>', 'environment from skiff.yaml')
    .option('--to <revision>', 'revision to roll back to (default: the previous deployed one)', (v) => Number.parseInt(v, 10))
    .option('--timeout <duration>', 'how long to wait for readiness', duration('--timeout'))
    .option('--lock-timeout <duration>', 'how long to wait for another deploy of this release', duration('--lock-timeout'), 5 * 60_000)
    .option('--force-conflicts', 'take over fields owned by another field manager')
    .addHelpText('after', '\nExamples:\n  skiff rollback production\n  skiff rollback staging --to 3')
    .action((env: string, o) =>
      run(program, async ({ ctx, json }) => {
        const { runRollback } = await import('../actions/release-actions.js');
        const r = await runRollback(ctx, { env, ...o, timeoutMs: o.timeout, lockTimeoutMs: o.lockTimeout });
        if (json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
        else ctx.reporter.info(`release ${r.release} revision ${r.revision}: ${r.description}`);
      }),
    );

  targetOptions(program.command('diff'))
    .description('what a deploy would change: server-side dry run against the live objects')
    .argument('<env>', 'environment from skiff.yaml')
    .option('-f, --values <file>', 'extra values file (repeatable)', collect)
    .option('--set <key=value>', 'set a value (repeatable)', collect)
    .option('--exit-code', 'exit 1 when there are changes')
    .action((env: string, o) =>
      run(program, async ({ ctx, json }) => {
        const { runDiff } = await import('../actions/release-actions.js');
        const d = await runDiff(ctx, { env, ...o, valuesFiles: o.values });
        if (json) process.stdout.write(`${JSON.stringify(d, null, 2)}\n`);
        else if (d.changes.length === 0) process.stdout.write('no changes\n');
        else for (const c of d.changes) process.stdout.write(`# ${c.change} ${c.object}\n${c.diff}\n`);
        if (o.exitCode && d.changes.length) process.exitCode = 1;
      }),
    );

  targetOptions(program.command('dismiss'))
    .description("delete a release's objects (and with --with-history its records)")
    .argument('<env>', 'environment from skiff.yaml')
    .option('--with-history', 'also delete the release records')
    .option('--lock-timeout <duration>', 'how long to wait for another deploy of this release', duration('--lock-timeout'), 5 * 60_000)
    .action((env: string, o) =>
      run(program, async ({ ctx, json }) => {
        const { runDismiss } = await import('../actions/release-actions.js');
        const r = await runDismiss(ctx, { env, ...o, lockTimeoutMs: o.lockTimeout });
        if (json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
        else ctx.reporter.info(`release ${r.release}: deleted ${r.deleted.length} objects${r.historyDeleted ? ' and its history' : ''}`);
      }),
    );

  program
    .command('cleanup')
    .description('delete from the registry the images no release revision and no recent commit needs')
    .option('--keep-commits <n>', 'keep the images of this many newest commits of every branch and tag', (v) => Number.parseInt(v, 10), 10)
    .option('--min-age <duration>', 'keep images built more recently than this', duration('--min-age'), 60 * 60_000)
    .option('--dry-run', 'list what would be deleted, delete nothing')
    .option('--registry <prefix>', 'image repository prefix (overrides skiff.yaml)')
    .option('--kubeconfig <file>', 'kubeconfig to read the release histories with (default: KUBECONFIG, ~/.kube/config)')
    .addHelpText('after', `
The clusters of every environment are read first: images referenced by any
stored skiff revision in any namespace are kept, so every rollback still works
(this needs to list Secrets cluster-wide). Tags that are branch or Git tag
names, or that skiff did not make, are never removed; nor images younger than
--min-age. A shallow clone is refused. The registry frees the space in its own
garbage collection (registry garbage-collect).

Examples:
  skiff cleanup --dry-run
  skiff cleanup --keep-commits 20`)
    .action((o) =>
      run(program, async ({ ctx, json }) => {
        const { runCleanup } = await import('../actions/cleanup.js');
        const r = await runCleanup(ctx, { ...o, minAgeMs: o.minAge });
        if (json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
        else ctx.reporter.info(`${r.dryRun ? 'would delete' : 'deleted'} ${r.deleted.length} images; kept ${r.kept}`);
      }),
    );
  void Option;
}

import type { Command } from 'commander';
import type { DeployResult } from '../actions/deploy.js';
import type { RunContext } from '../context.js';
import { ConfigError, ExitCode, WorkFailedError, type ExitCodeName } from '../errors.js';
import { flagExitHelp } from './exit-codes.js';
import { ParsedFlags, deployFlags, forceConflictsFlag, integer, lockTimeoutFlag, targetFlags, timeoutFlag, valuesFlags } from './flags.js';
import { formatDeploySummary, formatHistory, formatLint, formatStatus } from './format.js';
import { printJson, run, type Session } from './session.js';

/** `skiff <name> <env>`: a command on one environment's release, with the target flags. */
function envCommand(program: Command, name: string, description: string): Command {
  return targetFlags.add(program.command(name)).description(description).argument('<env>', 'environment from skiff.yaml');
}

/** What an environment command does: with its session, its <env> and its parsed flags; returns a code other than success. */
type EnvAction = (session: Session, env: string, flags: ParsedFlags) => Promise<ExitCodeName | void>;

function onEnv(program: Command, cmd: Command, action: EnvAction): void {
  cmd.action((env: string) => run(program, (session) => action(session, env, ParsedFlags.of(cmd))));
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

function addRenderCommand(program: Command) {
  const cmd = valuesFlags
    .add(envCommand(program, 'render', 'render .kube/ for an environment with the exact image references'))
    .option('--output-dir <dir>', 'write one file per object into <dir> instead of printing')
    .option('--show-secrets', 'print Secret values instead of masking them')
    .addHelpText('after', '\nExamples:\n  skiff render staging\n  skiff render production --set replicas=3 --output-dir out/');
  onEnv(program, cmd, async ({ ctx, json }, env, flags) => {
    const { runRender } = await import('../actions/render.js');
    const { manifestsToYaml } = await import('./yaml-output.js');
    // Render reads no cluster: of the target flags, only those that change the objects.
    const { namespace, dev, registry } = targetFlags.read(flags);
    const outputDir = flags.string('outputDir');
    const r = await runRender(ctx, { env, namespace, dev, registry, ...valuesFlags.read(flags), outputDir, showSecrets: flags.boolean('showSecrets') });
    if (json) printJson({ release: r.release, namespace: r.namespace, images: r.images, objects: r.manifests.map((m) => m.object) });
    else if (!outputDir) process.stdout.write(manifestsToYaml(r.manifests));
    else ctx.reporter.info(`wrote ${r.manifests.length} objects to ${outputDir}`);
    if (r.masked && !json) ctx.reporter.info('secret values are masked as (masked sha256:…); --show-secrets prints them');
  });
}

function addLintCommand(program: Command) {
  const cmd = valuesFlags
    .add(envCommand(program, 'lint', 'render an environment and check the objects for mistakes the cluster accepts silently'))
    .option('--strict', 'warnings are errors too')
    .option('--adopt', 'as deploy --adopt: objects of another release or tool are not refused')
    .addHelpText(
      'after',
      `
The cluster is only read (the namespace's pods, workloads, Services,
ConfigMaps and Secrets count); unreachable, the rendered objects are linted
alone. Silence a check on one object with the annotation
skiff.io/lint-skip: <check>,<check>. Exit ${ExitCode.badInput} on errors (with --strict, on warnings).

Examples:
  skiff lint staging
  skiff lint production --strict -o json`,
    );
  onEnv(program, cmd, async ({ ctx, json }, env, flags) => {
    const { runLint } = await import('../actions/lint.js');
    const r = await runLint(ctx, {
      env,
      ...targetFlags.read(flags),
      ...valuesFlags.read(flags),
      strict: flags.boolean('strict'),
      adopt: flags.boolean('adopt'),
    });
    if (json) printJson(r);
    else for (const line of formatLint(r)) process.stdout.write(`${line}\n`);
    if (r.errors) {
      const error = new ConfigError(
        `${r.errors} lint error${r.errors === 1 ? '' : 's'} in ${r.release}; fix them, or silence a check on an object with the annotation skiff.io/lint-skip`,
      );
      error.resultPrinted = json;
      throw error;
    }
  });
}

function addDeployCommands(program: Command) {
  const deploy = deployFlags
    .add(envCommand(program, 'deploy', 'render, validate, apply and follow the rollout of an environment'))
    .option('--plan <file>', `apply a saved plan (skiff plan) only if nothing changed since it was made (else exit ${ExitCode.badInput}, nothing applied)`)
    .addHelpText(
      'after',
      '\nThe images must already be in the registry (skiff build --push), or use "skiff ship".\n\nExamples:\n  skiff deploy staging\n  skiff deploy production --timeout 10m --auto-rollback\n  skiff deploy production --plan .skiff/plan/production.json',
    );
  onEnv(program, deploy, async ({ ctx, json }, env, flags) => {
    const { runDeploy } = await import('../actions/deploy.js');
    reportDeploy(ctx, json, await runDeploy(ctx, { env, ...targetFlags.read(flags), ...deployFlags.read(flags), plan: flags.string('plan') }));
  });

  const ship = deployFlags
    .add(envCommand(program, 'ship', 'build, test, push and deploy in one go'))
    .option('--skip-tests', 'do not run the tests of skiff.yaml')
    .option('--rerun', 'run every test, also one that passed before on the same image and test definition')
    .option('--sign', 'sign each pushed image digest with cosign (key in SKIFF_COSIGN_KEY, its password in COSIGN_PASSWORD)')
    .addHelpText('after', '\nExamples:\n  skiff ship staging');
  onEnv(program, ship, async ({ ctx, json }, env, flags) => {
    const { runShip } = await import('../actions/ship.js');
    const opts = {
      env,
      ...targetFlags.read(flags),
      ...deployFlags.read(flags),
      skipTests: flags.boolean('skipTests'),
      rerun: flags.boolean('rerun'),
      sign: flags.boolean('sign'),
    };
    reportDeploy(ctx, json, await runShip(ctx, opts));
  });
}

function addReadCommands(program: Command) {
  const history = envCommand(program, 'history', 'list the revisions of a release').option(
    '--html',
    'write the revisions over time, each linking its report when at hand, to .skiff/report/<env>/history.html',
  );
  onEnv(program, history, async ({ json, ctx }, env, flags) => {
    if (flags.boolean('html')) {
      const { runHistoryHtml } = await import('../actions/report.js');
      const r = await runHistoryHtml(ctx, { env, ...targetFlags.read(flags) });
      if (json) printJson(r);
      else process.stdout.write(`${r.file}\n`);
      return;
    }
    const { runHistory } = await import('../actions/history.js');
    const records = await runHistory(ctx, { env, ...targetFlags.read(flags) });
    if (json) printJson(records.map(({ manifests, ...r }) => ({ ...r, objects: manifests.length })));
    else process.stdout.write(records.length ? `${formatHistory(records)}\n` : 'no revisions\n');
  });

  const report = envCommand(program, 'report', "write a revision's release report from the history to .skiff/report/<env>/<revision>.html").option(
    '--revision <n>',
    'the revision (default: the latest)',
    integer,
  );
  report.addHelpText('after', '\nA deploy, rollback or plan writes its own report to .skiff/report/<env>.html; this one is made from what the history keeps.');
  onEnv(program, report, async ({ json, ctx }, env, flags) => {
    const { runReport } = await import('../actions/report.js');
    const r = await runReport(ctx, { env, ...targetFlags.read(flags), revision: flags.number('revision') });
    if (json) printJson(r);
    else process.stdout.write(`${r.file}${r.kept ? " (the run's own report, kept)" : ''}\n`);
  });

  const status = envCommand(program, 'status', 'the current revision of a release and the live readiness of its objects');
  onEnv(program, status, async ({ json, ctx }, env, flags) => {
    const { runStatus } = await import('../actions/status.js');
    const s = await runStatus(ctx, { env, ...targetFlags.read(flags) });
    if (json) printJson(s);
    else process.stdout.write(`${formatStatus(s)}\n`);
  });
}

function addRollbackCommand(program: Command) {
  const cmd = envCommand(program, 'rollback', 're-apply an earlier revision as a new revision, with full tracking').option(
    '--to <revision>',
    'revision to roll back to (default: the previous deployed one)',
    integer,
  );
  for (const set of [timeoutFlag, lockTimeoutFlag, forceConflictsFlag]) set.add(cmd);
  cmd.addHelpText('after', '\nExamples:\n  skiff rollback production\n  skiff rollback staging --to 3');
  onEnv(program, cmd, async ({ ctx, json }, env, flags) => {
    const { runRollback } = await import('../actions/rollback.js');
    const r = await runRollback(ctx, {
      env,
      ...targetFlags.read(flags),
      to: flags.number('to'),
      ...timeoutFlag.read(flags),
      ...lockTimeoutFlag.read(flags),
      ...forceConflictsFlag.read(flags),
    });
    if (json) printJson(r);
    else ctx.reporter.info(`release ${r.release} revision ${r.revision}: ${r.description}`);
  });
}

function addDiffCommand(program: Command) {
  const cmd = valuesFlags
    .add(envCommand(program, 'diff', 'what a deploy would change: server-side dry run against the live objects'))
    .option('--exit-code', flagExitHelp('changes'))
    .option('--adopt', `show objects of another release or tool as deploy --adopt would take them over (else refused, exit ${ExitCode.badInput})`);
  onEnv(program, cmd, async ({ ctx, json }, env, flags) => {
    const { runDiff } = await import('../actions/diff.js');
    const d = await runDiff(ctx, { env, ...targetFlags.read(flags), ...valuesFlags.read(flags), adopt: flags.boolean('adopt') });
    if (json) printJson(d);
    else {
      for (const c of d.charts) process.stdout.write(`# chart ${c.chart}: ${c.from ?? '(none)'} -> ${c.to ?? '(removed)'}\n`);
      if (d.changes.length === 0) process.stdout.write('no changes\n');
      else for (const c of d.changes) process.stdout.write(`# ${c.change} ${c.object}\n${c.diff}\n`);
    }
    if (flags.boolean('exitCode') && d.changes.length) return 'changes';
  });
}

function addPlanCommand(program: Command) {
  const cmd = valuesFlags
    .add(envCommand(program, 'plan', 'save what a deploy would change, for skiff deploy --plan to apply exactly that'))
    .option('--out <file>', 'where the plan goes (default: .skiff/plan/<env>.json); the readable plan goes beside it as .txt')
    .option('--adopt', `take over objects of another release or tool, as deploy --adopt (else refused, exit ${ExitCode.badInput})`)
    .option('--allow-older', 'plan a commit older than the one the release runs (deploy --plan needs --allow-older too)')
    .addHelpText(
      'after',
      `
Renders, lints and dry-runs like diff, and writes the plan (JSON) and its
readable text beside it (.txt): every create, update (with its changed fields)
and delete, masked as diff masks it, with the commit, the cluster, the release
revision and the digest of the rendered objects it was planned against. Exit 0
with or without changes. "skiff deploy <env> --plan <file>" applies it only if
the commit, the rendered objects, the release's revision and the live objects
the plan changes are as planned; else exit ${ExitCode.badInput}, nothing applied.

Examples:
  skiff plan production
  skiff deploy production --plan .skiff/plan/production.json
  skiff plan staging --set replicas=3 --out /tmp/staging-plan.json -o json`,
    );
  onEnv(program, cmd, async ({ ctx, json }, env, flags) => {
    const { runPlan } = await import('../actions/plan.js');
    const { deployCommand } = await import('../release/plan-file.js');
    const r = await runPlan(ctx, {
      env,
      ...targetFlags.read(flags),
      ...valuesFlags.read(flags),
      out: flags.string('out'),
      adopt: flags.boolean('adopt'),
      allowOlder: flags.boolean('allowOlder'),
    });
    if (json) printJson(r.plan);
    else process.stdout.write(r.text);
    ctx.reporter.info(`plan written to ${r.file} (readable: ${r.textFile}); apply it with: ${deployCommand(r.plan, r.file)}`);
  });
}

function addDismissCommand(program: Command) {
  const cmd = envCommand(program, 'dismiss', "delete a release's objects (and with --with-history its records)")
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
    );
  onEnv(program, lockTimeoutFlag.add(cmd), async ({ ctx, json }, env, flags) => {
    const { runDismiss } = await import('../actions/dismiss.js');
    const r = await runDismiss(ctx, {
      env,
      ...targetFlags.read(flags),
      withHistory: flags.boolean('withHistory'),
      withNamespace: flags.boolean('withNamespace'),
      ...lockTimeoutFlag.read(flags),
    });
    if (json) printJson(r);
    else ctx.reporter.info(r.summary);
  });
}

/** The commands on one environment's release: render, lint, deploy, ship, history, status, rollback, diff, plan, dismiss. */
export function addReleaseCommands(program: Command) {
  addRenderCommand(program);
  addLintCommand(program);
  addDeployCommands(program);
  addReadCommands(program);
  addRollbackCommand(program);
  addDiffCommand(program);
  addPlanCommand(program);
  addDismissCommand(program);
}

import { Option, type Command } from 'commander';
import { ParsedFlags, duration, integer } from './flags.js';
import { formatBuildResult, formatTestTable } from './format.js';
import { printJson, run } from './session.js';

/** The commands on the project's images: build, test, and cleanup of the registry. */

export function addBuildCommand(program: Command) {
  const cmd = program
    .command('build')
    .description('build images from the Git commit, tagged by content; skip the ones that exist')
    .argument('[image...]', 'images to build (default: all), with their dependencies')
    .option('--push', 'push to the registry (and skip images it already has)')
    .option('--dev', 'build the working tree (tracked + untracked, not ignored) instead of HEAD')
    .option('--why', 'say for each image why it is or is not rebuilt')
    .option('--registry <prefix>', 'image repository prefix, e.g. 127.0.0.1:5000/hello (overrides skiff.yaml)')
    .option('--parallel <n>', 'images built at once', integer, 2)
    .option('--sign', 'with --push: sign each pushed image digest with cosign (key in SKIFF_COSIGN_KEY, its password in COSIGN_PASSWORD)')
    .option(
      '--platform <list>',
      'build only these of the configured platforms, comma-separated (e.g. linux/arm64); a different image, with its own content tag',
    )
    .addHelpText(
      'after',
      `
Examples:
  skiff build                 build every image of skiff.yaml from HEAD
  skiff build --platform linux/arm64   only the arm64 variant of images with platforms:
  skiff build app --push      build app (and what it depends on) and push
  skiff build --push --sign   push, and sign each image's digest with cosign
  skiff build --dev --why     build the working tree and explain each rebuild`,
    );
  cmd.action((images: string[]) =>
    run(program, async ({ ctx, json }) => {
      const { runBuild } = await import('../actions/build.js');
      const flags = ParsedFlags.of(cmd);
      const why = flags.boolean('why');
      const opts = {
        images,
        push: flags.boolean('push'),
        dev: flags.boolean('dev'),
        why,
        registry: flags.string('registry'),
        parallel: flags.number('parallel'),
        platform: flags.string('platform'),
        sign: flags.boolean('sign'),
      };
      const result = await runBuild(ctx, opts);
      if (json) return printJson(result);
      for (const line of formatBuildResult(result, Boolean(why))) ctx.reporter.info(line);
    }),
  );
}

export function addTestCommand(program: Command) {
  const cmd = program
    .command('test')
    .description('run the tests of skiff.yaml inside the built images')
    .argument('[test...]', 'tests to run (default: all)')
    .option('--dev', 'use images of the working tree instead of HEAD')
    .option('--registry <prefix>', 'image repository prefix (overrides skiff.yaml)')
    .option('--parallel <n>', 'tests run at once', integer, 2)
    .option('--rerun', 'run every test, also one that passed before on the same image and test definition')
    .addHelpText(
      'after',
      `
Reports listed under tests.<name>.reports are copied to .skiff/reports/<name>/;
.skiff/reports/junit.xml has one testcase per test (GitLab's artifacts:reports:junit).

A test that passed on the same image digest with the same definition (command,
image, env, workdir, network, timeout, reports) is skipped and reported as
passed before: each pass is recorded in the registry beside its image (a tag
sha256-<image digest>.test-<definition hash>). Images only local: all run.

Examples:
  skiff test                  run every test
  skiff test unit             run one test
  skiff test --rerun          run every test, passed before or not`,
    );
  cmd.action((tests: string[]) =>
    run(program, async ({ ctx, json }) => {
      const { runTest } = await import('../actions/test.js');
      const { testsFailed } = await import('../stages/run-tests.js');
      const flags = ParsedFlags.of(cmd);
      const result = await runTest(ctx, {
        tests,
        dev: flags.boolean('dev'),
        registry: flags.string('registry'),
        parallel: flags.number('parallel'),
        rerun: flags.boolean('rerun'),
      });
      if (json) printJson(result);
      else if (result.tests.length) process.stderr.write(`\n${formatTestTable(result.tests)}\n`);
      if (!result.passed) {
        const error = testsFailed(result);
        error.resultPrinted = json; // stdout already holds the result as one JSON document
        throw error;
      }
    }),
  );
}

export function addCleanupCommand(program: Command) {
  const cmd = program
    .command('cleanup')
    .description('delete from the registry the images no release revision and no recent commit needs')
    .option('--keep-commits <n>', 'keep the images of this many newest commits of every branch and tag', integer, 10)
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
--min-age. The records of passed tests (skiff test) go with their image. A shallow clone is refused. The registry frees the space in its own
garbage collection (registry garbage-collect).

Examples:
  skiff cleanup --dry-run
  skiff cleanup --keep-commits 20`,
    );
  cmd.action(() =>
    run(program, async ({ ctx, json }) => {
      const { runCleanup } = await import('../actions/cleanup.js');
      const flags = ParsedFlags.of(cmd);
      const r = await runCleanup(ctx, {
        keepCommits: flags.number('keepCommits'),
        minAgeMs: flags.number('minAge'),
        dryRun: flags.boolean('dryRun'),
        registry: flags.string('registry'),
        kubeconfig: flags.string('kubeconfig'),
      });
      if (json) printJson(r);
      else {
        const records = r.deletedTestRecords.length ? ` and ${r.deletedTestRecords.length} test records` : '';
        ctx.reporter.info(`${r.dryRun ? 'would delete' : 'deleted'} ${r.deleted.length} images${records}; kept ${r.kept}`);
      }
    }),
  );
}

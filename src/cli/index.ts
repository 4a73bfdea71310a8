import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { ExitCode } from '../errors.js';
import { formatBuildResult, formatTestTable } from './format.js';
import { addReleaseCommands } from './release-commands.js';
import { addSecretCommands } from './secret-commands.js';
import { printJson, run } from './session.js';

// Commands are imported when they run, so `skiff --version` and `--help` start fast.
const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

function buildProgram(): Command {
  const program = new Command('skiff')
    .description('From a Git commit to a running Kubernetes release: build, test, push, render, deploy, track, roll back.')
    .version(version, '-V, --version')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .option('-v, --verbose', 'show more detail (push progress, debug lines)')
    .option('-C, --dir <path>', 'run as if started in <path>')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText(
      'after',
      `
Exit codes:
  0  success
  1  the work failed (build step, test, rollout)
  2  bad input or configuration; nothing was touched
  3  Docker, registry or cluster unreachable, or access denied
  130 interrupted

Examples:
  skiff build --push          build changed images from HEAD and push them
  skiff test                  run the tests of skiff.yaml in the built images
  skiff deploy staging        render .kube/ for staging, apply, track until ready
  skiff ship production       build, test, push and deploy in one go`,
    );

  program
    .command('build')
    .description('build images from the Git commit, tagged by content; skip the ones that exist')
    .argument('[image...]', 'images to build (default: all), with their dependencies')
    .option('--push', 'push to the registry (and skip images it already has)')
    .option('--dev', 'build the working tree (tracked + untracked, not ignored) instead of HEAD')
    .option('--why', 'say for each image why it is or is not rebuilt')
    .option('--registry <prefix>', 'image repository prefix, e.g. 127.0.0.1:5000/hello (overrides skiff.yaml)')
    .option('--parallel <n>', 'images built at once', (v) => Number.parseInt(v, 10), 2)
    .addHelpText(
      'after',
      `
Examples:
  skiff build                 build every image of skiff.yaml from HEAD
  skiff build app --push      build app (and what it depends on) and push
  skiff build --dev --why     build the working tree and explain each rebuild`,
    )
    .action((images: string[], opts) =>
      run(program, async ({ ctx, json }) => {
        const { runBuild } = await import('../actions/build.js');
        const result = await runBuild(ctx, { ...opts, images });
        if (json) return printJson(result);
        for (const line of formatBuildResult(result, Boolean(opts.why))) ctx.reporter.info(line);
      }),
    );

  program
    .command('test')
    .description('run the tests of skiff.yaml inside the built images')
    .argument('[test...]', 'tests to run (default: all)')
    .option('--dev', 'use images of the working tree instead of HEAD')
    .option('--registry <prefix>', 'image repository prefix (overrides skiff.yaml)')
    .option('--parallel <n>', 'tests run at once', (v) => Number.parseInt(v, 10), 2)
    .addHelpText(
      'after',
      `
Reports listed under tests.<name>.reports are copied to .skiff/reports/<name>/;
.skiff/reports/junit.xml has one testcase per test (GitLab's artifacts:reports:junit).

Examples:
  skiff test                  run every test
  skiff test unit             run one test`,
    )
    .action((tests: string[], opts) =>
      run(program, async ({ ctx, json }) => {
        const { runTest } = await import('../actions/test.js');
        const { testsFailed } = await import('../stages/test.js');
        const result = await runTest(ctx, { ...opts, tests });
        if (json) printJson(result);
        else if (result.tests.length) process.stderr.write(`\n${formatTestTable(result.tests)}\n`);
        if (!result.passed) {
          const error = testsFailed(result);
          error.resultPrinted = json; // stdout already holds the result as one JSON document
          throw error;
        }
      }),
    );

  program
    .command('init')
    .description('write skiff.yaml, a .kube/ skeleton and .gitlab-ci.yml (existing files are kept)')
    .option('--project <name>', 'project name (default: the repository folder name)')
    .option('--registry <prefix>', 'image repository prefix (default: 127.0.0.1:5000/<project>)')
    .action((opts) =>
      run(program, async ({ ctx, json }) => {
        const { runInit } = await import('../actions/init.js');
        const r = await runInit(ctx, opts);
        if (json) return printJson(r);
        for (const f of r.written) ctx.reporter.info(`wrote ${f}`);
        for (const f of r.kept) ctx.reporter.info(`kept ${f} (already there)`);
        for (const n of r.notes) ctx.reporter.info(n);
      }),
    );

  addReleaseCommands(program);
  addSecretCommands(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  program.exitOverride((err) => {
    // commander's own usage errors are bad input: exit 2.
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') process.exit(0);
    process.exit(ExitCode.badInput);
  });
  await program.parseAsync(argv);
}

await main(process.argv);

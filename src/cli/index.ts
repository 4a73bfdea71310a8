import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { SkiffError } from '../errors.js';
import { exitAfterCommander, exitCodesHelp, exitWhenWritten } from './exit-codes.js';
import { ParsedFlags, globalFlags } from './flags.js';
import { addBuildCommand, addCleanupCommand, addTestCommand } from './image-commands.js';
import { addReleaseCommands } from './release-commands.js';
import { addSecretCommands } from './secret-commands.js';
import { addChartCommands } from './chart-commands.js';
import { printJson, reportFailure, run } from './session.js';

// Commands are imported when they run, so `skiff --version` and `--help` start fast.
const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

function addInitCommand(program: Command) {
  const cmd = program
    .command('init')
    .description('write skiff.yaml, a .kube/ skeleton and .gitlab-ci.yml (existing files are kept)')
    .option('--project <name>', 'project name (default: the repository folder name)')
    .option('--registry <prefix>', 'image repository prefix (default: 127.0.0.1:5000/<project>)');
  cmd.action(() =>
    run(program, async ({ ctx, json }) => {
      const { runInit } = await import('../actions/init.js');
      const flags = ParsedFlags.of(cmd);
      const r = await runInit(ctx, { project: flags.string('project'), registry: flags.string('registry') });
      if (json) return printJson(r);
      for (const f of r.written) ctx.reporter.info(`wrote ${f}`);
      for (const f of r.kept) ctx.reporter.info(`kept ${f} (already there)`);
      for (const n of r.notes) ctx.reporter.info(n);
    }),
  );
}

function buildProgram(): Command {
  const program = globalFlags
    .add(
      new Command('skiff')
        .description('From a Git commit to a running Kubernetes release: build, test, push, render, deploy, track, roll back.')
        .version(version, '-V, --version'),
    )
    .showHelpAfterError('(run with --help for usage)')
    // Before the commands are added: each inherits it, so their usage errors are bad input too.
    .exitOverride(exitAfterCommander)
    .addHelpText(
      'after',
      `
${exitCodesHelp()}

Examples:
  skiff build --push          build changed images from HEAD and push them
  skiff test                  run the tests of skiff.yaml in the built images
  skiff deploy staging        render .kube/ for staging, apply, track until ready
  skiff ship production       build, test, push and deploy in one go`,
    );
  addBuildCommand(program);
  addTestCommand(program);
  addInitCommand(program);
  addReleaseCommands(program);
  addCleanupCommand(program);
  addSecretCommands(program);
  addChartCommands(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    // A flag value its parser refused (--timeout 5 minutes): bad input, reported as a command's failure.
    if (!(e instanceof SkiffError)) throw e;
    reportFailure(e, globalFlags.read(ParsedFlags.of(program)).output === 'json', false);
  }
  await exitWhenWritten();
}

await main(process.argv);

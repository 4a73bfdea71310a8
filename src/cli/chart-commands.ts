import type { Command } from 'commander';
import { printJson, run } from './session.js';

/** skiff charts: the Helm charts a release deploys beside .kube/. */
export function addChartCommands(program: Command) {
  const charts = program
    .command('charts')
    .description('Helm charts deployed with the release (charts: in skiff.yaml, .helm/)')
    .addHelpText(
      'after',
      `
Charts of skiff.yaml are deployed exactly as skiff.lock pins them (version and
digest); deploy, render, diff and lint refuse a missing or stale lock.

Examples:
  skiff charts update && git add skiff.lock && git commit -m "charts: update"`,
    );
  charts
    .command('update')
    .description('resolve every chart to an exact version and digest and write skiff.lock')
    .action(() =>
      run(program, async ({ ctx, json }) => {
        const { runChartsUpdate } = await import('../actions/charts-update.js');
        const r = await runChartsUpdate(ctx, {});
        if (json) return printJson(r);
        process.stdout.write(r.charts.length ? `${r.charts.map((c) => `${c.name}\t${c.version}\t${c.digest}`).join('\n')}\n` : 'no charts to lock\n');
        process.stdout.write(`wrote ${r.lock}\n`);
      }),
    );
}

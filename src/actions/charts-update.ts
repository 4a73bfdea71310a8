import type { RunContext } from '../context.js';
import { replaceInside } from '../adapters/repo-files.js';
import { resolveChart } from '../charts/chart-fetch.js';
import { formatLock, LOCK_FILE, type ChartLock, type LockedChart } from '../charts/lock-file.js';
import { loadProject, type ProjectOptions } from '../project.js';
import { readRepoFolder } from '../charts/chart-files.js';
import { resolveDependencies } from '../charts/own-chart.js';
import { hasOwnChart, OWN_CHART_DIR } from '../charts/render-charts.js';

export interface ChartsUpdateResult {
  /** The lock file written, repository-relative. */
  lock: string;
  charts: Array<{ name: string; chart: string; requested: string; version: string; digest: string; previous?: string }>;
}

/**
 * skiff charts update: resolves every chart of skiff.yaml from a registry or
 * chart repository to the highest version its range allows, downloads it
 * into the cache, and writes skiff.lock with each version and digest (folder
 * charts are pinned by the commit and need no entry), and likewise the own
 * chart's registry dependencies at the versions .helm/Chart.lock pins. Nothing is written
 * unless every chart resolved.
 */
export async function runChartsUpdate(ctx: RunContext, opts: ProjectOptions): Promise<ChartsUpdateResult> {
  // The working tree, as skiff.yaml is read from it: .helm/Chart.lock may not be committed yet.
  const project = await loadProject(ctx, { ...opts, dev: true, readOnly: true });
  const lock: ChartLock = { charts: {} };
  const out: ChartsUpdateResult['charts'] = [];
  for (const c of Object.values(project.config.charts)) {
    if (c.source.kind === 'folder') continue;
    const requested = c.version!;
    ctx.reporter.info(`chart ${c.name}: resolving ${c.chart} ${requested}`);
    const { version, digest } = await resolveChart(ctx, c.name, c.source, requested);
    const entry: LockedChart = { chart: c.chart, requested, version, digest };
    lock.charts[c.name] = entry;
    out.push({ name: c.name, ...entry });
  }
  if (await hasOwnChart(project)) {
    lock.dependencies = await resolveDependencies(ctx, await readRepoFolder(project, OWN_CHART_DIR));
    for (const [name, d] of Object.entries(lock.dependencies)) out.push({ name: `${OWN_CHART_DIR}/${name}`, ...d });
  }
  await replaceInside(project.root, LOCK_FILE, formatLock(lock));
  for (const c of out) ctx.reporter.info(`chart ${c.name}: ${c.version} ${c.digest}`);
  return { lock: LOCK_FILE, charts: out };
}

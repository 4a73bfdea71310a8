import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { readCommitFile } from '../adapters/git.js';
import type { ChartConfig, ChartSource } from '../config/project-config.js';
import type { RunContext } from '../context.js';
import { ConfigError } from '../errors.js';
import type { ClusterCapabilities } from '../kube/kube-client.js';
import type { Project } from '../project.js';
import type { ChartRecord } from '../release/release-record.js';
import type { ParsedManifest, RenderedFile } from '../render/render-release.js';
import { parseValuesFile } from '../render/values.js';
import { copyVerified, fetchLockedChart } from './chart-fetch.js';
import { fileText, folderDigest, OWN_CHART_DIR, readRepoFolder, writeChartFiles, type ChartFile } from './chart-files.js';
import { helmTemplate, findHelm } from './helm.js';
import { chartObjects, splitHelmOutput } from './helm-output.js';
import { lockedCharts, LOCK_FILE, parseLock, type LockedChart } from './lock-file.js';
import { vendorDependencies } from './own-chart.js';
import { privateTempBase } from '../core/paths.js';

/** The project's own chart, in dapp's and werf's layout. */
export { OWN_CHART_DIR };

export type { ChartRecord };

/** What the charts stage needs of the release being rendered. */
export interface ChartRenderInput {
  release: string;
  namespace: string;
  /** The declared environment's name (`review` for review/x): charts' `environments:` name these. */
  environment: string;
  env: string;
  slug: string;
  url?: string;
  images: Record<string, string>;
  /** skiff's merged values (values files, skiff.yaml, secret values, --values, --set). */
  values: Record<string, unknown>;
  /** Chart values files rendered with EJS, by path. */
  chartValues: Map<string, RenderedFile>;
  capabilities?: ClusterCapabilities;
}

export interface RenderedCharts {
  parsed: ParsedManifest[];
  charts: ChartRecord[];
  /** For the caller to print, masked: a warning can quote a rendered name made of a secret value. */
  warnings: string[];
}

/** The charts of skiff.yaml deployed to this environment. */
export function chartsFor(project: Project, environment: string): ChartConfig[] {
  return Object.values(project.config.charts).filter((c) => !c.environments || c.environments.includes(environment));
}

/** Whether the project has its own chart (.helm/Chart.yaml) at the commit (or in the working tree with --dev). */
export async function hasOwnChart(project: Project): Promise<boolean> {
  const path = `${OWN_CHART_DIR}/Chart.yaml`;
  if (project.mode === 'commit') return (await readCommitFile(project.repo, project.git.commit, path)) !== undefined;
  return readFile(join(project.root, path)).then(
    () => true,
    () => false,
  );
}

/**
 * Renders the release's charts with Helm: each chart of skiff.yaml for this
 * environment, as skiff.lock pins it, and the project's own .helm/ chart.
 * Nothing is rendered, and helm is not needed, when there are none. Helm
 * works in a private temporary folder (0700, in memory where there is some)
 * that is removed afterwards, on Ctrl-C (helm is stopped), and on process
 * exit should skiff be made to exit first (a second Ctrl-C).
 */
export async function renderCharts(ctx: RunContext, project: Project, input: ChartRenderInput): Promise<RenderedCharts> {
  const charts = chartsFor(project, input.environment);
  const own = await hasOwnChart(project);
  if (!charts.length && !own) return { parsed: [], charts: [], warnings: [] };
  const { locked, dependencies } = await readLock(project);
  const helm = await findHelm(ctx.env, own ? `${OWN_CHART_DIR}/Chart.yaml` : `the charts in ${project.config.file}`);
  const work = await mkdtemp(join(privateTempBase(), 'skiff-charts-'));
  const cleanup = () => rmSync(work, { recursive: true, force: true });
  process.once('exit', cleanup);
  try {
    const out: RenderedCharts = { parsed: [], charts: [], warnings: [] };
    const warnings = out.warnings;
    const run = async (label: string, release: string, chart: string, valuesFiles: string[], fromRegistry = false) => {
      const stdout = await helmTemplate({
        helm,
        release,
        namespace: input.namespace,
        chart,
        valuesFiles,
        capabilities: input.capabilities,
        label,
        home: join(work, 'helm-home'),
        env: ctx.env,
        signal: ctx.signal,
      });
      out.parsed.push(...chartObjects(splitHelmOutput(stdout, label), warnings, fromRegistry));
    };
    for (const c of charts) {
      const { path, record } = await chartArchive(ctx, project, c, locked[c.name], work);
      // "chart-": a chart may be named "own", and own.values.json is the own chart's.
      const valuesFile = join(work, `chart-${c.name}.values.json`);
      await writeFile(valuesFile, JSON.stringify(chartValuesOf(c, input)), { mode: 0o600, flag: 'wx' });
      await run(`chart ${c.name}`, c.name, path, [valuesFile], c.source.kind !== 'folder');
      out.charts.push(record);
    }
    if (own) out.charts.push(...(await renderOwnChart(ctx, project, input, work, run, dependencies)));
    return out;
  } finally {
    process.off('exit', cleanup);
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * skiff.lock (the file beside skiff.yaml): its charts checked against skiff.yaml (none when every chart is a
 * folder), and the own chart's pinned registry dependencies.
 */
async function readLock(project: Project): Promise<{ locked: Record<string, LockedChart>; dependencies?: Record<string, LockedChart> }> {
  const remote = Object.values(project.config.charts).some((c) => c.source.kind !== 'folder');
  // Beside skiff.yaml, read from where skiff.yaml is read.
  const text = await readFile(join(project.root, LOCK_FILE), 'utf8').catch(() => undefined);
  if (text === undefined) return { locked: remote ? lockedCharts({ charts: project.config.charts, file: project.config.file }, undefined) : {} };
  const lock = parseLock(text, LOCK_FILE);
  return { locked: lockedCharts({ charts: project.config.charts, file: project.config.file }, lock), dependencies: lock.dependencies };
}

/** A chart ready for helm: a cached archive for a registry chart, a folder copied from the commit otherwise. */
async function chartArchive(
  ctx: RunContext,
  project: Project,
  c: ChartConfig,
  locked: LockedChart | undefined,
  work: string,
): Promise<{ path: string; record: ChartRecord }> {
  const source: ChartSource = c.source;
  if (source.kind !== 'folder') {
    if (!locked) throw new ConfigError(`chart ${c.name}: not in ${LOCK_FILE}; run "skiff charts update" and commit ${LOCK_FILE}`);
    const path = join(work, `chart-${c.name}.tgz`);
    await copyVerified(c.name, await fetchLockedChart(ctx, c.name, source, locked), locked.digest, path);
    return { path, record: { name: c.name, chart: c.chart, version: locked.version, digest: locked.digest } };
  }
  const files = await readRepoFolder(project, source.path);
  const version = chartVersion(files, `${source.path}/Chart.yaml`, `chart ${c.name}`);
  if (c.version !== undefined && c.version !== version) {
    throw new ConfigError(`chart ${c.name}: ${project.config.file} asks for version ${c.version}, ${source.path}/Chart.yaml has ${version}; make them agree`);
  }
  const dir = join(work, 'folders', c.name);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeChartFiles(dir, files);
  return { path: dir, record: { name: c.name, chart: c.chart, version, digest: folderDigest(files) } };
}

/** The version a chart's Chart.yaml gives; a ConfigError when it has none (or no Chart.yaml). */
export function chartVersion(files: ChartFile[], where: string, who: string): string {
  const text = fileText(files, 'Chart.yaml');
  if (text === undefined) throw new ConfigError(`${who}: ${where} does not exist; a chart folder has a Chart.yaml (apiVersion: v2, name, version)`);
  let chart: unknown;
  try {
    chart = parse(text);
  } catch (e) {
    throw new ConfigError(`${where}: invalid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  const version = (chart as { version?: unknown } | null)?.version;
  if (typeof version !== 'string' && typeof version !== 'number') throw new ConfigError(`${where}: has no version; add version: 0.1.0`);
  return String(version);
}

/** A chart's values: its values file as rendered with EJS (none: the chart's defaults). */
function chartValuesOf(c: ChartConfig, input: ChartRenderInput): unknown {
  if (c.values === undefined) return {};
  const rendered = input.chartValues.get(c.values);
  if (!rendered) throw new ConfigError(`chart ${c.name}: values file ${c.values} does not exist; add it, or drop charts.${c.name}.values`);
  return parseValuesFile(rendered.file, rendered.text);
}

/**
 * The project's own chart: .helm/ copied from the commit, its dependencies
 * vendored as Chart.lock pins their versions and skiff.lock their digests, rendered with Helm's values.yaml, then
 * .helm/values.<env>.yaml, then skiff's merged values with the images,
 * environment and namespace under `skiff` (and `werf`, so werf's charts run
 * unchanged).
 */
async function renderOwnChart(
  ctx: RunContext,
  project: Project,
  input: ChartRenderInput,
  work: string,
  run: (label: string, release: string, chart: string, valuesFiles: string[]) => Promise<void>,
  dependencies: Record<string, LockedChart> | undefined,
): Promise<ChartRecord[]> {
  const files = await readRepoFolder(project, OWN_CHART_DIR);
  const version = chartVersion(files, `${OWN_CHART_DIR}/Chart.yaml`, OWN_CHART_DIR);
  const dir = join(work, 'own');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeChartFiles(dir, files);
  const fetched = await vendorDependencies(ctx, project, files, dir, dependencies);
  const valuesFiles: string[] = [];
  for (const name of [`values.${input.environment}.yaml`, `values.${input.environment}.yml`]) {
    if (fileText(files, name) !== undefined) valuesFiles.push(join(dir, name));
  }
  const merged = join(work, 'own.values.json');
  await writeFile(merged, JSON.stringify(ownChartValues(input)), { mode: 0o600, flag: 'wx' });
  await run(OWN_CHART_DIR, input.release, dir, [...valuesFiles, merged]);
  const name = (parse(fileText(files, 'Chart.yaml') ?? '') as { name?: unknown } | null)?.name;
  return [
    { name: typeof name === 'string' && name ? helmSanitized(name) : OWN_CHART_DIR, chart: OWN_CHART_DIR, version, digest: folderDigest(files) },
    ...fetched,
  ];
}

/**
 * A Chart.yaml string as Helm reads it (its sanitizeString): white space as a
 * space, anything unprintable dropped; a name shown by history and diff then
 * carries no terminal control sequence.
 */
function helmSanitized(text: string): string {
  return text.replace(/\p{White_Space}/gu, ' ').replace(/[^\p{L}\p{M}\p{N}\p{P}\p{S} ]/gu, '');
}

/** skiff's values for the own chart, with `skiff` and `werf` describing the release. */
export function ownChartValues(input: Pick<ChartRenderInput, 'values' | 'images' | 'env' | 'namespace' | 'release' | 'slug' | 'url'>): Record<string, unknown> {
  const skiff = { images: input.images, env: input.env, namespace: input.namespace, release: input.release, slug: input.slug, url: input.url ?? '' };
  const werf = { image: input.images, env: input.env, namespace: input.namespace, name: input.release };
  const global = { ...(input.values.global as Record<string, unknown> | undefined), env: input.env };
  return { ...input.values, global, skiff, werf };
}

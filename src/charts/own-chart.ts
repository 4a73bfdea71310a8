import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { ChartSource } from '../config/project-config.js';
import type { RunContext } from '../context.js';
import { pathInside } from '../core/paths.js';
import { ConfigError } from '../errors.js';
import type { Project } from '../project.js';
import { copyVerified, fetchLockedChart, resolveChart } from './chart-fetch.js';
import { fileText, OWN_CHART_DIR, readRepoFolder, repoRelative, writeChartFiles, type ChartFile } from './chart-files.js';
import { LOCK_FILE, type LockedChart } from './lock-file.js';
import { parseVersion } from './semver.js';
import type { ChartRecord } from '../release/release-record.js';

interface Dependency {
  name: string;
  version?: string;
  repository?: string;
}

/** Chart.yaml's (or Chart.lock's) `dependencies:`, as far as vendoring needs them. */
function dependencies(text: string | undefined, where: string): Dependency[] {
  if (text === undefined) return [];
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (e) {
    throw new ConfigError(`${where}: invalid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  const list = (doc as { dependencies?: unknown } | null)?.dependencies;
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw new ConfigError(`${where}: dependencies must be a list`);
  return list.map((d: unknown, i) => {
    const dep = d as Record<string, unknown> | null;
    if (typeof dep?.name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(dep.name))
      throw new ConfigError(`${where}: dependencies[${i}] has no valid name`);
    return {
      name: dep.name,
      version: typeof dep.version === 'string' || typeof dep.version === 'number' ? String(dep.version) : undefined,
      repository: typeof dep.repository === 'string' ? dep.repository : undefined,
    };
  });
}

/** Whether charts/ of the chart already holds the dependency (an archive or a folder), as `helm dependency build` leaves it. */
function vendored(files: ChartFile[], name: string): boolean {
  return files.some(
    (f) => f.path === `charts/${name}/Chart.yaml` || (f.path.startsWith(`charts/${name}-`) && f.path.endsWith('.tgz') && !f.path.slice(7).includes('/')),
  );
}

/**
 * Puts the own chart's dependencies into its charts/ folder (in skiff's
 * private copy) as Chart.lock pins them: a folder of this repository
 * (`file://`), or a chart from an OCI registry or a chart repository, fetched
 * and cached as skiff.lock's charts are. Dependencies already in charts/ are
 * used as they are.
 */
export async function vendorDependencies(
  ctx: RunContext,
  project: Project,
  files: ChartFile[],
  dir: string,
  pins: Record<string, LockedChart> | undefined,
): Promise<ChartRecord[]> {
  const wanted = dependencies(fileText(files, 'Chart.yaml'), `${OWN_CHART_DIR}/Chart.yaml`).filter((d) => !vendored(files, d.name));
  if (!wanted.length) return [];
  const charts = join(dir, 'charts');
  await mkdir(charts, { recursive: true, mode: 0o700 });
  const records: ChartRecord[] = [];
  // A chart Helm includes twice under two aliases is vendored once.
  const done = new Set<string>();
  for (const dep of wanted) {
    const where = `${OWN_CHART_DIR}/Chart.yaml: dependency ${dep.name}`;
    const repository = dep.repository ?? '';
    const key = `${dep.name}\0${repository}\0${dep.version ?? ''}`;
    if (done.has(key)) continue;
    done.add(key);
    if (repository.startsWith('file://')) {
      const folder = repoRelative(OWN_CHART_DIR, repository.slice('file://'.length), where);
      const sub = await readRepoFolder(project, folder);
      if (!sub.length) throw new ConfigError(`${where}: ${folder}/ has no files at this commit`);
      const target = pathInside(charts, dep.name, 'dependency');
      await mkdir(target, { recursive: true, mode: 0o700 });
      await inTheWay(writeChartFiles(target, sub), where, `${OWN_CHART_DIR}/charts/${dep.name}/`);
      continue;
    }
    const { source, version } = registryDependency(dep, files, where);
    const pin = pins?.[dep.name];
    if (!pin || pin.chart !== repository || pin.requested !== version) {
      const has = pin ? `, ${LOCK_FILE} has ${pin.chart} ${pin.requested}` : `, ${LOCK_FILE} does not pin it`;
      throw new ConfigError(`${where}: ${OWN_CHART_DIR}/Chart.lock asks for ${repository} ${version}${has}; run "skiff charts update" and commit ${LOCK_FILE}`);
    }
    const path = await fetchLockedChart(ctx, dep.name, source, pin);
    const archive = `${dep.name}-${pin.version}.tgz`;
    await inTheWay(copyVerified(dep.name, path, pin.digest, pathInside(charts, archive, 'dependency')), where, `${OWN_CHART_DIR}/charts/${archive}`);
    records.push({ name: `${OWN_CHART_DIR}/${dep.name}`, chart: repository, version: pin.version, digest: pin.digest });
  }
  return records;
}

/**
 * The own chart's dependencies fetched from a registry or chart repository
 * (not vendored in charts/, not file://), each resolved to the version
 * Chart.lock pins and its archive digest: what `skiff charts update` locks.
 */
export async function resolveDependencies(ctx: RunContext, files: ChartFile[]): Promise<Record<string, LockedChart>> {
  const out: Record<string, LockedChart> = {};
  for (const dep of dependencies(fileText(files, 'Chart.yaml'), `${OWN_CHART_DIR}/Chart.yaml`)) {
    if (vendored(files, dep.name) || (dep.repository ?? '').startsWith('file://') || out[dep.name]) continue;
    const { source, version } = registryDependency(dep, files, `${OWN_CHART_DIR}/Chart.yaml: dependency ${dep.name}`);
    const resolved = await resolveChart(ctx, dep.name, source, version);
    out[dep.name] = { chart: dep.repository ?? '', requested: version, ...resolved };
  }
  return out;
}

/** Where a registry dependency comes from, and the exact version Chart.lock (or Chart.yaml itself) gives it. */
function registryDependency(dep: Dependency, files: ChartFile[], where: string): { source: ChartSource & { kind: 'oci' | 'repo' }; version: string } {
  const repository = dep.repository ?? '';
  const source = dependencySource(repository, dep.name, where);
  const locked = dependencies(fileText(files, 'Chart.lock'), `${OWN_CHART_DIR}/Chart.lock`);
  const pinned = locked.find((l) => l.name === dep.name && (l.repository ?? '') === repository)?.version;
  const version = pinned ?? (dep.version && parseVersion(dep.version) ? dep.version : undefined);
  if (!version) {
    throw new ConfigError(
      `${where} asks for version ${dep.version ?? '(none)'}, and ${OWN_CHART_DIR}/Chart.lock does not pin it; run "helm dependency update ${OWN_CHART_DIR}" and commit ${OWN_CHART_DIR}/Chart.lock (or vendor the chart in ${OWN_CHART_DIR}/charts/)`,
    );
  }
  return { source, version };
}

/** A dependency written where the chart's charts/ (or another dependency) already has files: a ConfigError saying so. */
async function inTheWay(write: Promise<void>, where: string, place: string): Promise<void> {
  try {
    await write;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EEXIST' && code !== 'EISDIR' && code !== 'ENOTDIR') throw e;
    throw new ConfigError(
      `${where}: ${place} is partly there already (in ${OWN_CHART_DIR}/charts/, or from another dependency of that name); vendor the whole chart there, or remove what is there so skiff vendors it`,
      { cause: e },
    );
  }
}

/** Where a dependency comes from: oci://host/path (the chart's name appended, as Helm does) or a chart repository URL. */
function dependencySource(repository: string, name: string, where: string): ChartSource & { kind: 'oci' | 'repo' } {
  if (repository.startsWith('oci://')) return { kind: 'oci', repository: `${repository.slice('oci://'.length).replace(/\/$/, '')}/${name}` };
  if (/^https?:\/\//.test(repository)) return { kind: 'repo', url: repository.replace(/\/$/, ''), name };
  throw new ConfigError(
    `${where}: repository "${repository}" is not one skiff can fetch (oci://, https:// or file:// inside the repository); vendor the chart in ${OWN_CHART_DIR}/charts/ instead`,
  );
}

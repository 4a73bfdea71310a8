import { posix } from 'node:path';
import { isVersionConstraint, parseVersion } from '../charts/semver.js';
import type { ChartConfig, ChartSource, EnvironmentConfig } from './project-config.js';
import { DNS_LABEL, typeName, type ConfigReader, type Plain } from './config-reader.js';

/** Helm's limit for a release name; a chart's name here is as visible: it names where its objects come from. */
const CHART_NAME_MAX = 53;
/** oci://host[:port]/path, the path in lower case as OCI requires; no tag (":1.2") or digest ("@sha256:…"). */
const OCI_REFERENCE = /^[A-Za-z0-9.-]+(:\d+)?(\/[a-z0-9]+([._-][a-z0-9]+)*)+$/;
/** A chart's name in a chart repository (its index.yaml's key). */
const REPO_CHART_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const VALUES_FOLDER = '.kube/charts/';
const VALUES_EXTENSIONS = ['.yaml', '.yml', '.yaml.ejs', '.yml.ejs'];
const REMOTE_FORMS = 'oci://host[:port]/path or https://<chart repository>#<chart>';
const SOURCE_HINT = `use ${REMOTE_FORMS}, or a folder in the repository`;
const RANGE_HINT = 'use an exact version (19.6.4) or a range (^19.6.0, ~19.6, >=19.0.0 <20.0.0)';

/** `charts.<name>`: the charts deployed in the release beside .kube/, where each comes from and which version. */
export function validateCharts(r: ConfigReader, raw: unknown, environments: Record<string, EnvironmentConfig>): Record<string, ChartConfig> {
  const charts: Record<string, ChartConfig> = {};
  for (const [name, value] of Object.entries(r.mapping(raw, 'charts') ?? {})) {
    const path = `charts.${name}`;
    if (!DNS_LABEL.test(name) || name.length > CHART_NAME_MAX)
      r.problem(
        path,
        `chart name "${name}" must be at most ${CHART_NAME_MAX} lower-case letters, digits and "-", starting and ending with a letter or digit (it names where the chart's objects come from in messages, e.g. "chart cache: templates/master.yaml")`,
      );
    charts[name] = validateChart(r, r.mapping(value ?? {}, path) ?? {}, name, environments);
  }
  return charts;
}

function validateChart(r: ConfigReader, c: Plain, name: string, environments: Record<string, EnvironmentConfig>): ChartConfig {
  const path = `charts.${name}`;
  r.knownKeys(c, path, ['chart', 'version', 'values', 'environments']);
  const chart = r.string(c.chart, `${path}.chart`, { required: true, hint: `${SOURCE_HINT}, e.g. chart: oci://registry.example.com/charts/redis` }) ?? '';
  if (chart === '' && typeof c.chart === 'string') r.problem(`${path}.chart`, `${path}.chart is empty: ${SOURCE_HINT}`);
  const source = chart ? chartSource(r, chart, `${path}.chart`) : undefined;
  return {
    name,
    chart,
    source: source ?? { kind: 'folder', path: '' },
    version: source ? chartVersion(r, c.version, `${path}.version`, source) : undefined,
    values: chartValues(r, c.values, `${path}.values`),
    environments: chartEnvironments(r, c.environments, `${path}.environments`, environments),
  };
}

/** Where the chart comes from, by the form of `chart`; undefined (and a problem) when that form is wrong. */
function chartSource(r: ConfigReader, chart: string, path: string): ChartSource | undefined {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(chart)?.[1]?.toLowerCase();
  if (scheme === 'oci') return ociSource(r, chart, path);
  if (scheme === 'https' || scheme === 'http') return repoSource(r, chart, path);
  if (scheme !== undefined) {
    r.problem(path, `${path} "${chart}" is not valid: skiff cannot fetch charts over ${scheme}://; ${SOURCE_HINT}`);
    return undefined;
  }
  return folderSource(r, chart, path);
}

function ociSource(r: ConfigReader, chart: string, path: string): ChartSource | undefined {
  const repository = chart.slice('oci://'.length);
  const slash = repository.indexOf('/');
  const afterHost = slash < 0 ? '' : repository.slice(slash);
  if (afterHost.includes('@') || afterHost.includes(':')) {
    r.problem(
      path,
      `${path} "${chart}" has a tag or digest: name the repository only and put the version in version:, e.g. chart: oci://registry.example.com/charts/redis with version: 19.6.4`,
    );
    return undefined;
  }
  if (!OCI_REFERENCE.test(repository)) {
    r.problem(path, `${path} "${chart}" is not valid: use oci://host[:port]/path with the path in lower case, e.g. oci://registry.example.com/charts/redis`);
    return undefined;
  }
  return { kind: 'oci', repository };
}

function repoSource(r: ConfigReader, chart: string, path: string): ChartSource | undefined {
  const hash = chart.indexOf('#');
  const name = hash < 0 ? '' : chart.slice(hash + 1);
  const url = (hash < 0 ? chart : chart.slice(0, hash)).replace(/\/+$/, '');
  if (!name) {
    r.problem(path, `${path} "${chart}" names a chart repository but not the chart in it: add #<chart>, e.g. https://charts.example.com/stable#redis`);
    return undefined;
  }
  if (!REPO_CHART_NAME.test(name)) {
    r.problem(
      path,
      `${path} "${chart}": "${name}" is not a chart name; use letters, digits, ".", "_" or "-" after the #, e.g. https://charts.example.com/stable#redis`,
    );
    return undefined;
  }
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (!parsed?.hostname || parsed.search) {
    r.problem(path, `${path} "${chart}" is not a chart repository URL: use https://host[/path]#<chart>, e.g. https://charts.example.com/stable#redis`);
    return undefined;
  }
  // skiff.yaml is committed and its values appear in messages: a password belongs with the registry credentials.
  if (parsed.username || parsed.password) {
    r.problem(path, `${path} has credentials in its URL: remove them; skiff reads chart registry credentials from the same places as image pushes`);
    return undefined;
  }
  return { kind: 'repo', url, name };
}

function folderSource(r: ConfigReader, chart: string, path: string): ChartSource | undefined {
  if (posix.isAbsolute(chart) || chart.includes('\\')) {
    r.problem(path, `${path} "${chart}" must be a relative path to a chart folder inside the repository, e.g. charts/cache, or ${REMOTE_FORMS}`);
    return undefined;
  }
  const norm = posix.normalize(chart).replace(/\/+$/, '');
  if (norm === '..' || norm.startsWith('../')) {
    r.problem(path, `${path} "${chart}" points outside the repository; put the chart in a folder of the repository, e.g. charts/cache`);
    return undefined;
  }
  if (norm === '.' || norm === '') {
    r.problem(path, `${path} "${chart}" names the repository's root; put the chart in a folder of its own, e.g. charts/cache`);
    return undefined;
  }
  if (norm === '.kube' || norm.startsWith('.kube/')) {
    r.problem(path, `${path} "${chart}" is inside .kube/, whose files are skiff's templates and chart values; move the chart out, e.g. to charts/cache`);
    return undefined;
  }
  if (norm === '.helm') {
    r.problem(path, `${path} "${chart}" is the project's own chart, which skiff renders without a charts: entry; remove this entry`);
    return undefined;
  }
  return { kind: 'folder', path: norm };
}

/** Required for a fetched chart (exact or a range); for a folder, optional and exact: it must be the folder's Chart.yaml version. */
function chartVersion(r: ConfigReader, v: unknown, path: string, source: ChartSource): string | undefined {
  if (typeof v === 'number') {
    r.problem(path, `${path} must be a string, got a number; quote it (version: "1.0"), as YAML reads 1.0 as the number 1`);
    return undefined;
  }
  const folder = source.kind === 'folder';
  const version = r.string(v, path, { required: !folder, hint: `${RANGE_HINT}, which "skiff charts update" resolves and locks` });
  if (version === undefined) return undefined;
  if (folder && !parseVersion(version)) {
    r.problem(
      path,
      `${path} "${version}" is not an exact version: a folder chart's version is the one in its Chart.yaml; write it exactly (e.g. 1.2.0) or leave version out`,
    );
    return undefined;
  }
  if (!folder && !isVersionConstraint(version)) {
    r.problem(path, `${path} "${version}" is not a version or a range: ${RANGE_HINT}`);
    return undefined;
  }
  return version;
}

/** A values file under .kube/charts/, repository-relative, normalised without "./". */
function chartValues(r: ConfigReader, v: unknown, path: string): string | undefined {
  const values = r.string(v, path);
  if (values === undefined) return undefined;
  const example = `e.g. ${VALUES_FOLDER}cache.values.yaml`;
  if (posix.isAbsolute(values) || values.includes('\\')) {
    r.problem(path, `${path} must be a relative path inside the repository, under ${VALUES_FOLDER}, got "${values}"; ${example}`);
    return undefined;
  }
  if (values.split('/').includes('..')) {
    r.problem(path, `${path} "${values}" has a ".." segment; name the file by its plain path under ${VALUES_FOLDER}, ${example}`);
    return undefined;
  }
  const norm = posix.normalize(values);
  if (!norm.startsWith(VALUES_FOLDER) || norm.length === VALUES_FOLDER.length) {
    r.problem(path, `${path} "${values}" must be a file under ${VALUES_FOLDER} (the folder of chart values, which are never objects of their own), ${example}`);
    return undefined;
  }
  if (!VALUES_EXTENSIONS.some((ext) => norm.endsWith(ext))) {
    r.problem(path, `${path} "${values}" must end in ${VALUES_EXTENSIONS.join(', ')}, ${example}`);
    return undefined;
  }
  return norm;
}

/** Declared environment names, at least one; undefined when the key is absent (every environment). */
function chartEnvironments(r: ConfigReader, v: unknown, path: string, environments: Record<string, EnvironmentConfig>): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) {
    r.problem(path, `${path} must be a list of environment names, got ${typeName(v)}, e.g. environments: [staging, production]`);
    return undefined;
  }
  if (v.length === 0) {
    r.problem(path, `${path} is empty: name at least one environment, or leave environments out to deploy the chart in every one`);
    return undefined;
  }
  const names = r.stringList(v, path);
  const declared = Object.keys(environments);
  names.forEach((env, i) => {
    if (environments[env]) return;
    const known = declared.length > 0 ? `environments: ${declared.join(', ')}` : 'no environments are declared';
    r.problem(`${path}[${i}]`, `${path} names "${env}", which is not an environment in skiff.yaml (${known})`);
  });
  return names;
}

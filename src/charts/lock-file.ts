import { isMap, isPair, isScalar, LineCounter, parseDocument, stringify, type Document } from 'yaml';
import type { ChartConfig } from '../config/project-config.js';
import { ConfigError } from '../errors.js';
import { isVersionConstraint, parseVersion, satisfies } from './semver.js';

/** Beside skiff.yaml, committed: the exact version and archive digest of every chart that is not a folder. */
export const LOCK_FILE = 'skiff.lock';

/** One chart as `skiff charts update` resolved it. */
export interface LockedChart {
  /** `chart` as skiff.yaml wrote it when the lock was made. */
  chart: string;
  /** `version` as skiff.yaml wrote it: an exact version or a range. */
  requested: string;
  /** The exact version it resolved to. */
  version: string;
  /** "sha256:<64 hex>" of the chart archive (.tgz). */
  digest: string;
}

/** skiff.lock; folder charts are never in it (the commit pins them). */
export interface ChartLock {
  charts: Record<string, LockedChart>;
  /**
   * The registry dependencies of the own chart (.helm/Chart.yaml) by name, as .helm/Chart.lock
   * pins their versions: `chart` is the dependency's repository, `requested` Chart.lock's version.
   */
  dependencies?: Record<string, LockedChart>;
}

const HEADER = '# skiff.lock: chart versions and digests resolved by "skiff charts update"; commit it.\n';
const FIELDS = ['chart', 'requested', 'version', 'digest'] as const;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
const UPDATE = 'run skiff charts update';
const UPDATE_AND_COMMIT = `run "skiff charts update" and commit ${LOCK_FILE}`;

/** Reads skiff.lock; anything but what formatLock writes is a ConfigError at its line. */
export function parseLock(text: string, file: string): ChartLock {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const fail = (keys: string[], message: string): never => {
    throw new ConfigError(`${file}:${lineOf(doc, lineCounter, keys)}: ${message}; ${UPDATE}`);
  };
  const first = doc.errors[0];
  if (first) {
    const what = first.message.split('\n')[0]!.replace(/ at line \d+, column \d+.*$/, '');
    throw new ConfigError(`${file}:${lineCounter.linePos(first.pos[0]).line}: invalid YAML: ${what}; ${UPDATE}`);
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    return fail([], `invalid YAML: ${(e as Error).message}`);
  }
  if (!isRecord(raw)) return fail([], raw === null || raw === undefined ? 'the file is empty' : 'the top level must be a mapping with the key "charts"');
  for (const key of Object.keys(raw)) if (key !== 'charts' && key !== 'dependencies') fail([key], `unknown key "${key}" in the top level`);
  const charts = parseEntries(raw, 'charts', 'chart', fail);
  const dependencies = raw.dependencies === undefined ? undefined : parseEntries(raw, 'dependencies', 'dependency', fail);
  return dependencies ? { charts, dependencies } : { charts };
}

/** One section of locked entries (charts, or the own chart's dependencies). */
function parseEntries(
  raw: Record<string, unknown>,
  section: string,
  what: string,
  fail: (keys: string[], message: string) => never,
): Record<string, LockedChart> {
  const entries = raw[section] ?? {};
  if (!isRecord(entries)) return fail([section], `${section} must be a mapping of ${what} names`);
  const out: Record<string, LockedChart> = {};
  for (const [name, entry] of Object.entries(entries)) {
    const who = `${what} ${name}`;
    if (!isRecord(entry)) return fail([section, name], `${who}: must be a mapping of ${FIELDS.join(', ')}`);
    for (const key of Object.keys(entry)) if (!(FIELDS as readonly string[]).includes(key)) fail([section, name, key], `${who}: unknown key "${key}"`);
    const field = (key: (typeof FIELDS)[number]): string => {
      const v = entry[key];
      if (typeof v === 'string' && v !== '') return v;
      return fail([section, name, key], `${who}: ${key} ${v === undefined ? 'is missing' : 'must be a non-empty string'}`);
    };
    const [chart, requested, version, digest] = FIELDS.map(field) as [string, string, string, string];
    const at = (key: string) => [section, name, key];
    if (!isVersionConstraint(requested)) fail(at('requested'), `${who}: requested "${requested}" is not a version or a range`);
    if (!parseVersion(version)) fail(at('version'), `${who}: version "${version}" is not an exact version`);
    if (!satisfies(version, requested)) fail(at('version'), `${who}: version ${version} does not satisfy the requested ${requested}`);
    if (!DIGEST.test(digest)) fail(at('digest'), `${who}: digest "${digest}" is not sha256:<64 hex digits>`);
    out[name] = { chart, requested, version, digest };
  }
  return out;
}

/** skiff.lock's text: the header, charts by name, each entry's keys in one order, so an update diffs only what changed. */
export function formatLock(lock: ChartLock): string {
  const sorted = (entries: Record<string, LockedChart>) => {
    const out: Record<string, LockedChart> = {};
    for (const name of Object.keys(entries).sort()) {
      const c = entries[name]!;
      out[name] = { chart: c.chart, requested: c.requested, version: c.version, digest: c.digest };
    }
    return out;
  };
  const deps = lock.dependencies && Object.keys(lock.dependencies).length ? { dependencies: sorted(lock.dependencies) } : {};
  return HEADER + stringify({ charts: sorted(lock.charts), ...deps }, { lineWidth: 0 });
}

/**
 * The locked entry of every chart of skiff.yaml that is fetched (not a folder), by name. A lock
 * that is missing, lacks a chart, locked another source or version request, or still names a
 * chart skiff.yaml no longer fetches is a ConfigError naming the chart. Pure.
 */
export function lockedCharts(config: { charts: Record<string, ChartConfig>; file: string }, lock: ChartLock | undefined): Record<string, LockedChart> {
  const fetched = Object.values(config.charts).filter((c) => c.source.kind !== 'folder');
  if (fetched.length > 0 && !lock) throw new ConfigError(`${config.file} has charts but no ${LOCK_FILE}: ${UPDATE_AND_COMMIT}`);
  const locked: Record<string, LockedChart> = {};
  const problems: string[] = [];
  for (const c of fetched) {
    const entry = lock?.charts[c.name];
    const asked = `${c.chart} ${c.version ?? ''}`.trim();
    if (!entry) problems.push(`chart ${c.name}: ${config.file} asks for ${asked}, ${LOCK_FILE} does not have it`);
    else if (entry.chart !== c.chart) problems.push(`chart ${c.name}: ${config.file} asks for ${asked}, ${LOCK_FILE} has ${entry.chart} ${entry.requested}`);
    else if (entry.requested !== c.version) problems.push(`chart ${c.name}: ${config.file} asks for ${asked}, ${LOCK_FILE} has ${entry.requested}`);
    else locked[c.name] = entry;
  }
  for (const name of Object.keys(lock?.charts ?? {}).sort()) {
    const c = config.charts[name];
    if (!c) problems.push(`chart ${name} is in ${LOCK_FILE} but not in ${config.file}`);
    else if (c.source.kind === 'folder') problems.push(`chart ${name} is in ${LOCK_FILE} but is a folder in ${config.file}, which the commit pins`);
  }
  const first = problems[0];
  if (first) {
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more chart${problems.length > 2 ? 's' : ''})` : '';
    throw new ConfigError(`${first}${more}; ${UPDATE_AND_COMMIT}`, { detail: problems });
  }
  return locked;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The line of the deepest key of keys that the document has (1 for none). */
function lineOf(doc: Document, lineCounter: LineCounter, keys: string[]): number {
  let node: unknown = doc.contents;
  let line = 1;
  for (const key of keys) {
    if (!isMap(node)) break;
    const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === key);
    const offset = pair && isScalar(pair.key) ? pair.key.range?.[0] : undefined;
    if (!pair || offset === undefined) break;
    line = lineCounter.linePos(offset).line;
    node = pair.value;
  }
  return line;
}

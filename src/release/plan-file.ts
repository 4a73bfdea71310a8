/**
 * A saved plan (`skiff plan <env>`): what a deploy of one commit would change
 * in one environment, as it was reviewed, and what `skiff deploy --plan`
 * checks before it applies it. Version 1 of the format. Pure: reading the
 * file and the cluster is the caller's.
 *
 * A plan holds no secret value, nor the base64 of one: its diffs are masked
 * as `skiff diff` masks them (with the release's salt), and secret values
 * enter its digest only as keyed checksums.
 */
import { ConfigError } from '../errors.js';

export const PLAN_VERSION = 1;

/** How a plan names one object it changes, and what it saw of it. */
export interface PlannedChange {
  /** `Deployment/web`, as diff names it. */
  object: string;
  change: 'create' | 'update' | 'delete';
  apiVersion: string;
  kind: string;
  name: string;
  /** Absent: cluster-scoped. */
  namespace?: string;
  /** The live object's resourceVersion when planned (update, delete). */
  resourceVersion?: string;
  /** The changed field paths (update), e.g. spec.replicas. */
  fields?: string[];
  /** The unified diff, secret values masked as diff masks them. */
  diff: string;
}

/** A chart whose version or digest differs from the deployed revision's (as diff shows it). */
export interface PlannedChart {
  chart: string;
  from?: string;
  to?: string;
}

/** The cluster a plan was made against: a plan applies only there. */
export interface PlannedCluster {
  /** The API server's URL (absent for clients that have none, such as tests' in-memory cluster). */
  server?: string;
  /** The kubeconfig context. */
  context: string;
}

export interface PlanFile {
  version: typeof PLAN_VERSION;
  environment: string;
  release: string;
  namespace: string;
  project: string;
  /** The full commit sha the plan was rendered from. */
  commit: string;
  branch?: string;
  cluster: PlannedCluster;
  /** The release's latest revision when planned; 0 when it had none. */
  revision: number;
  /** ISO 8601. */
  plannedAt: string;
  /** The CI pipeline and job that made the plan, when one did. */
  pipelineId?: number;
  jobId?: number;
  pipelineUrl?: string;
  jobUrl?: string;
  /** Objects of another release or tool are taken over (plan --adopt); the deploy does as planned. */
  adopt: boolean;
  /** Each image's reference, pinned by digest. */
  images: Record<string, string>;
  /** sha256 of the rendered objects in a canonical form (stages/plan-check.ts). */
  digest: string;
  /** Each rendered object's digest, by `<group>/<kind>/<namespace>/<name>`: which object differs when the digest does. */
  objectDigests: Record<string, string>;
  charts: PlannedChart[];
  changes: PlannedChange[];
}

/** `make a new plan` in every refusal: the way out. */
export function againHint(env: string): string {
  return `run skiff plan ${env} again`;
}

type Check = (v: unknown) => boolean;
/**
 * What a plan's messages may quote of it: no control characters (a forged
 * plan could write over the CI log's lines, or fake a section), no
 * bidirectional overrides, and short: names, URLs and versions are.
 */
// eslint-disable-next-line no-control-regex -- refusing control characters is the point
const PRINTABLE = /^[^\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]{1,1024}$/;
const str: Check = (v) => typeof v === 'string' && PRINTABLE.test(v);
const optStr: Check = (v) => v === undefined || str(v);
/** Free text: only a plan's own readable text shows it (diffs). */
const text: Check = (v) => typeof v === 'string';
const optId: Check = (v) => v === undefined || (typeof v === 'number' && Number.isSafeInteger(v) && v > 0);
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const stringMap: Check = (v) => isRecord(v) && Object.entries(v).every(([k, x]) => str(k) && str(x));
const SHA256 = /^sha256:[0-9a-f]{64}$/;

/** The top-level fields and what each must be. */
const FIELDS: Record<string, [Check, string]> = {
  environment: [str, 'an environment name'],
  release: [str, 'a release name'],
  namespace: [str, 'a namespace'],
  project: [str, 'a project name'],
  commit: [(v) => typeof v === 'string' && /^[0-9a-f]{40}([0-9a-f]{24})?$/.test(v), 'a full commit sha'],
  branch: [optStr, 'a branch name'],
  cluster: [(v) => isRecord(v) && str(v.context) && optStr(v.server), 'a cluster ({server, context})'],
  revision: [(v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0, 'a revision number'],
  plannedAt: [(v) => str(v) && !Number.isNaN(Date.parse(v as string)), 'a time'],
  pipelineId: [optId, 'a pipeline id'],
  jobId: [optId, 'a job id'],
  pipelineUrl: [optStr, 'a URL'],
  jobUrl: [optStr, 'a URL'],
  adopt: [(v) => typeof v === 'boolean', 'true or false'],
  images: [stringMap, 'image references by name'],
  digest: [(v) => typeof v === 'string' && SHA256.test(v), 'a sha256 digest'],
  objectDigests: [(v) => stringMap(v) && Object.values(v as Record<string, string>).every((d) => SHA256.test(d)), 'object digests by object'],
  charts: [(v) => Array.isArray(v) && v.every((c) => isRecord(c) && str(c.chart) && optStr(c.from) && optStr(c.to)), 'a list of chart changes'],
  changes: [(v) => Array.isArray(v), 'a list of changes'],
};

const CHANGES = new Set(['create', 'update', 'delete']);

/** What is wrong with one change, or undefined. */
function changeProblem(c: unknown): string | undefined {
  if (!isRecord(c)) return 'is not an object';
  if (!str(c.object) || !str(c.apiVersion) || !str(c.kind) || !str(c.name) || !optStr(c.namespace)) return 'does not name its object';
  if (typeof c.change !== 'string' || !CHANGES.has(c.change)) {
    return `has change ${str(c.change) && String(c.change).length <= 20 ? JSON.stringify(c.change) : 'of another kind'}, not create, update or delete`;
  }
  if (!text(c.diff)) return 'has no diff';
  if (c.change !== 'create' && !str(c.resourceVersion)) return `is an ${c.change} without the resourceVersion it saw`;
  if (c.change === 'create' && c.resourceVersion !== undefined) return 'is a create with a resourceVersion';
  if (c.fields !== undefined && !(Array.isArray(c.fields) && c.fields.every(text))) return 'has fields that are not a list of paths';
  return undefined;
}

/**
 * A plan file's text, parsed and checked field by field; anything else is
 * exit 2 in one line naming the file (`shown`) and the way out. `env` is the
 * environment the command was given (for the hint).
 */
export function parsePlanFile(text: string, shown: string, env: string): PlanFile {
  const refuse = (problem: string) => new ConfigError(`plan ${shown} ${problem}; ${againHint(env)}`);
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    // Not the parser's message: it quotes the text, and a path given by mistake can name a file that holds a secret.
    const message = e instanceof Error ? e.message : '';
    const at = /position (\d+)/.exec(message)?.[1];
    const where = /end of JSON/.test(message) ? 'it ends early' : at === undefined ? 'an unexpected character' : `at character ${at}`;
    throw refuse(`is not JSON (${where}): not a plan file, or cut short`);
  }
  if (!isRecord(data)) throw refuse('is not a plan file (a JSON object with version, environment, commit, digest, changes…)');
  if (data.version !== PLAN_VERSION) {
    throw refuse(
      typeof data.version === 'number'
        ? `has format version ${data.version}; this skiff reads version ${PLAN_VERSION}`
        : 'is not a plan file (no "version": a JSON object with version, environment, commit, digest, changes…)',
    );
  }
  for (const [key, [check, what]] of Object.entries(FIELDS)) {
    if (!check(data[key])) throw refuse(`is damaged: "${key}" is ${data[key] === undefined ? 'missing' : `not ${what}`}`);
  }
  const changes = data.changes as unknown[];
  for (const [i, c] of changes.entries()) {
    const problem = changeProblem(c);
    if (problem) throw refuse(`is damaged: changes[${i}] ${problem}`);
  }
  return data as unknown as PlanFile;
}

/** The plan as the file holds it: JSON, two-space indented, ending in a newline. */
export function planJson(plan: PlanFile): string {
  return `${JSON.stringify(plan, null, 2)}\n`;
}

/** A short commit, as messages show it. */
export const shortSha = (sha: string) => sha.slice(0, 7);

/** `3 changes (1 create, 1 update, 1 delete)` or `no changes`. */
export function changeCount(changes: readonly Pick<PlannedChange, 'change'>[]): string {
  if (changes.length === 0) return 'no changes';
  const by = (k: PlannedChange['change']) => changes.filter((c) => c.change === k).length;
  const parts = (['create', 'update', 'delete'] as const).filter((k) => by(k) > 0).map((k) => `${by(k)} ${k}`);
  return `${changes.length} change${changes.length === 1 ? '' : 's'} (${parts.join(', ')})`;
}

/** The command that applies a plan (with --adopt when it takes objects over: the command line must say so too). */
export function deployCommand(plan: Pick<PlanFile, 'environment' | 'adopt'>, jsonPath: string): string {
  return `skiff deploy ${plan.environment} --plan ${jsonPath}${plan.adopt ? ' --adopt' : ''}`;
}

/** The readable plan (`<out>.txt`, and what `skiff plan` prints): the facts, then each change with its fields and diff. */
export function planText(plan: PlanFile, jsonPath: string): string {
  const cluster = plan.cluster.server ? `${plan.cluster.server} (kube context ${plan.cluster.context})` : `kube context ${plan.cluster.context}`;
  const ci = [plan.pipelineId && `pipeline ${plan.pipelineId}`, plan.jobId && `job ${plan.jobId}`].filter(Boolean).join(', ');
  const lines = [
    `plan for ${plan.environment}: release ${plan.release} in namespace ${plan.namespace} (project ${plan.project})`,
    `commit ${plan.commit}${plan.branch ? ` (${plan.branch})` : ''}`,
    `cluster ${cluster}`,
    `against revision ${plan.revision}${plan.revision === 0 ? ' (a first deploy)' : ''}; planned ${plan.plannedAt}${ci ? ` in ${ci}` : ''}`,
    `rendered objects ${plan.digest}${plan.adopt ? '; takes over objects of other releases or tools (--adopt)' : ''}`,
    ...Object.entries(plan.images).map(([name, ref]) => `image ${name}: ${ref}`),
    ...plan.charts.map((c) => `chart ${c.chart}: ${c.from ?? '(none)'} -> ${c.to ?? '(removed)'}`),
    '',
    changeCount(plan.changes),
  ];
  for (const c of plan.changes) {
    lines.push('', `# ${c.change} ${c.object}${c.fields?.length ? `: ${c.fields.join(', ')}` : ''}`, c.diff.replace(/\n$/, ''));
  }
  lines.push('', `apply exactly this: ${deployCommand(plan, jsonPath)}`);
  return `${lines.join('\n')}\n`;
}

// Which nodes a workload's pods can be scheduled on, and which of those its images have no
// manifest for: deploy's check before the first write (stages/node-platforms.ts). Pure.
import type { ApiFields, KubeObject, LiveObject, Manifest } from '../kube/objects.js';
import { podTemplatePath } from './table.js';

/** An image's platform as its index or config names it: `linux/arm64`, `linux/arm/v7`. */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface NodeTaint {
  key: string;
  value?: string;
  effect: string;
}

/** What the check reads of a Node. */
export interface NodeFacts {
  name: string;
  labels: Record<string, string>;
  taints: NodeTaint[];
  /** `linux/arm64`, from the labels kubernetes.io/os and kubernetes.io/arch; undefined when a label is missing. */
  platform?: string;
}

export const OS_LABEL = 'kubernetes.io/os';
export const ARCH_LABEL = 'kubernetes.io/arch';

export function nodeFacts(node: LiveObject): NodeFacts {
  const labels: Record<string, string> = node.metadata.labels ?? {};
  const taints = ((node.spec?.taints ?? []) as ApiFields[]).map((t) => ({
    key: String(t.key ?? ''),
    value: t.value as string | undefined,
    effect: String(t.effect ?? ''),
  }));
  const os = labels[OS_LABEL];
  const arch = labels[ARCH_LABEL];
  return { name: node.metadata.name, labels, taints, platform: os && arch ? `${os}/${arch}` : undefined };
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

/** Whether an image with these platforms runs on a node of this `os/arch` (a variant is not on the node's labels: not compared). */
export function runsOn(platforms: readonly Platform[], node: string): boolean {
  return platforms.some((p) => `${p.os}/${p.architecture}` === node);
}

/**
 * Taints the node lifecycle controller sets and lifts by itself (not ready,
 * unreachable, pressure, cordoned, not yet initialized): a node that has one
 * now is still a node the pods can land on a minute later.
 */
function isConditionTaint(t: NodeTaint): boolean {
  return t.key.startsWith('node.kubernetes.io/') || t.key.startsWith('node.cloudprovider.kubernetes.io/');
}

/** A toleration against a taint, as the scheduler decides it (k8s.io/api core/v1 Toleration.ToleratesTaint). */
export function tolerates(toleration: ApiFields, taint: NodeTaint): boolean {
  if (toleration.effect && toleration.effect !== taint.effect) return false;
  if (toleration.key && toleration.key !== taint.key) return false;
  const operator = toleration.operator ?? 'Equal';
  if (operator === 'Exists') return true;
  return operator === 'Equal' && String(toleration.value ?? '') === String(taint.value ?? '');
}

/**
 * A list of a template as the API server would take it; anything else (a mapping, a string) as
 * absent: plan runs this check before any server-side dry run has refused the template.
 */
const listOf = (v: unknown): ApiFields[] => (Array.isArray(v) ? v.filter((x): x is ApiFields => typeof x === 'object' && x !== null) : []);

/** One nodeSelectorTerm's matchExpressions (labels) and matchFields (metadata.name), ANDed; an empty term matches no node. */
function matchesTerm(term: ApiFields, node: NodeFacts): boolean {
  const exprs = listOf(term.matchExpressions);
  const fields = listOf(term.matchFields);
  if (!exprs.length && !fields.length) return false;
  return (
    exprs.every((e) => matchesRequirement(e, node.labels[String(e.key)])) &&
    fields.every((f) => f.key === 'metadata.name' && (f.operator === 'In' || f.operator === 'NotIn') && matchesRequirement(f, node.name))
  );
}

/** A node selector requirement against the value it reads (undefined: the label is absent). */
function matchesRequirement(req: ApiFields, value: string | undefined): boolean {
  const values = (Array.isArray(req.values) ? (req.values as unknown[]) : []).map(String);
  switch (req.operator) {
    case 'In':
      return value !== undefined && values.includes(value);
    case 'NotIn':
      return value === undefined || !values.includes(value);
    case 'Exists':
      return value !== undefined;
    case 'DoesNotExist':
      return value === undefined;
    case 'Gt':
    case 'Lt': {
      const [have, bound] = [Number.parseInt(value ?? '', 10), Number.parseInt(values[0] ?? '', 10)];
      if (Number.isNaN(have) || Number.isNaN(bound)) return false;
      return req.operator === 'Gt' ? have > bound : have < bound;
    }
    default:
      return false;
  }
}

/**
 * Whether the scheduler may place a pod of this spec on the node: spec.nodeName,
 * nodeSelector, required node affinity (terms ORed) and the node's NoSchedule and
 * NoExecute taints against the tolerations. Preferences (preferred affinity,
 * PreferNoSchedule) never keep a pod off a node, so they are not read.
 */
export function canSchedule(spec: ApiFields, node: NodeFacts): boolean {
  // A pod with a nodeName skips the scheduler: only that node, and only NoExecute evicts it there.
  const named = typeof spec.nodeName === 'string' && spec.nodeName !== '';
  if (named && spec.nodeName !== node.name) return false;
  for (const [k, v] of Object.entries((spec.nodeSelector ?? {}) as Record<string, unknown>)) if (node.labels[k] !== String(v)) return false;
  const required = spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution;
  if (required && !listOf(required.nodeSelectorTerms).some((term) => matchesTerm(term, node))) return false;
  const tolerations = listOf(spec.tolerations);
  const blocking = named ? ['NoExecute'] : ['NoSchedule', 'NoExecute'];
  return node.taints.every((t) => !blocking.includes(t.effect) || isConditionTaint(t) || tolerations.some((tol) => tolerates(tol, t)));
}

/** One container of a rendered workload and the nodes (with a known platform) its pods can be scheduled on. */
export interface ImagePlacement {
  /** `Deployment/web` */
  object: string;
  source: Manifest['source'];
  container: string;
  init: boolean;
  image: string;
  nodes: NodeFacts[];
}

/**
 * Every container image of every pod template in the release (Deployment,
 * StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, Pod; init containers too)
 * with the nodes its pods can land on; containers whose pods fit no node with
 * a known platform are left out: there is nothing to compare them with.
 */
export function imagePlacements(manifests: readonly Manifest[], nodes: readonly NodeFacts[]): ImagePlacement[] {
  const known = nodes.filter((n) => n.platform !== undefined);
  const out: ImagePlacement[] = [];
  for (const m of manifests) {
    const spec = podSpecOf(m.object);
    if (!spec) continue;
    const fits = known.filter((n) => canSchedule(spec, n));
    if (!fits.length) continue;
    for (const [key, init] of [
      ['initContainers', true],
      ['containers', false],
    ] as const) {
      for (const c of listOf(spec[key])) {
        if (typeof c.image !== 'string' || !c.image) continue;
        out.push({
          object: `${m.object.kind}/${m.object.metadata.name}`,
          source: m.source,
          container: String(c.name ?? ''),
          init,
          image: c.image,
          nodes: fits,
        });
      }
    }
  }
  return out;
}

function podSpecOf(obj: KubeObject): ApiFields | undefined {
  const at = podTemplatePath(obj.kind);
  if (!at) return undefined;
  let t: ApiFields | undefined = obj;
  for (const k of at) t = t?.[k] as ApiFields | undefined;
  const spec = t?.spec;
  return spec && typeof spec === 'object' ? spec : undefined;
}

/** A container whose image has no manifest for the platform of nodes its pods can be scheduled on. */
export interface PlatformConflict {
  object: string;
  source: Manifest['source'];
  container: string;
  init: boolean;
  image: string;
  /** The image's platforms, `linux/amd64`… */
  imagePlatforms: string[];
  /** The platforms the image lacks, each with the schedulable nodes of it. */
  missing: Array<{ platform: string; nodes: string[] }>;
}

/**
 * The placements whose image (its platforms known: an image absent from the
 * map, or mapped to undefined, is not judged) lacks the platform of any node
 * its pods can land on.
 */
export function platformConflicts(placements: readonly ImagePlacement[], platforms: ReadonlyMap<string, readonly Platform[] | undefined>): PlatformConflict[] {
  const out: PlatformConflict[] = [];
  for (const p of placements) {
    const has = platforms.get(p.image);
    if (!has?.length) continue;
    const byPlatform = new Map<string, string[]>();
    for (const n of p.nodes) {
      if (n.platform === undefined || runsOn(has, n.platform)) continue;
      byPlatform.set(n.platform, [...(byPlatform.get(n.platform) ?? []), n.name]);
    }
    if (!byPlatform.size) continue;
    out.push({
      object: p.object,
      source: p.source,
      container: p.container,
      init: p.init,
      image: p.image,
      imagePlatforms: [...new Set(has.map(formatPlatform))].sort(),
      missing: [...byPlatform].sort(([a], [b]) => a.localeCompare(b)).map(([platform, nodes]) => ({ platform, nodes: nodes.sort() })),
    });
  }
  return out;
}

/** Nodes shown by name in a message; the rest are counted. */
const NODES_NAMED = 3;

function nodeList(nodes: readonly string[]): string {
  const named = nodes.slice(0, NODES_NAMED).join(', ');
  return nodes.length > NODES_NAMED ? `${named} and ${nodes.length - NODES_NAMED} more` : named;
}

/**
 * One line per conflict, naming the template, the workload, container, image,
 * its platforms and the nodes, and how to fix it: a project image can be built
 * for the platform (skiff.yaml `platforms:`), a third-party one replaced.
 */
export function formatConflict(c: PlatformConflict, opts: { projectImage: boolean }): string {
  const count = c.missing.reduce((n, m) => n + m.nodes.length, 0);
  const where = c.missing.map((m) => `${nodeList(m.nodes)} (${m.platform})`).join(', ');
  const lacking = c.missing.map((m) => m.platform).join(', ');
  const archs = [...new Set(c.imagePlatforms.map((p) => p.split('/')[1]))];
  const pin = archs.length === 1 ? `a nodeSelector ${ARCH_LABEL}: ${archs[0]}` : `a nodeSelector ${ARCH_LABEL} (or a node affinity)`;
  const instead = opts.projectImage ? `build ${lacking} (platforms: in skiff.yaml)` : `use an image that has ${lacking}`;
  return (
    `${c.source.file}:${c.source.line}: ${c.object} ${c.init ? 'init container' : 'container'} ${c.container}: ` +
    `image ${c.image} has ${c.imagePlatforms.join(', ')} only; its pods can be scheduled on ${count === 1 ? 'node' : 'nodes'} ${where}; ` +
    `pin them with ${pin}, or ${instead}`
  );
}

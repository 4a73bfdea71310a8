import { podTemplatePath } from '../kinds/table.js';
import type { ApiFields, KubeObject, Manifest } from '../kube/objects.js';

/** The pod templates lint reads, and the label selectors that pick them. */

export type Labels = Record<string, string>;

export interface LabelSelector {
  matchLabels?: Labels;
  matchExpressions?: Array<{ key: string; operator: string; values?: string[] }>;
}

/** A pod template of a rendered or live object, with the path to it. */
export interface PodTemplate {
  owner: KubeObject;
  manifest?: Manifest;
  namespace: string;
  /** `spec.template.` for a Deployment, `` for a Pod. */
  path: string;
  labels: Labels;
  spec: ApiFields;
}

/** The pod template of a rendered object: its manifest says where it came from. */
export interface RenderedPodTemplate extends PodTemplate {
  manifest: Manifest;
}

/** A container of a pod template and the field path to it. */
export interface ContainerAt {
  /** `spec.template.spec.containers[0]` */
  field: string;
  /** An init container: it runs to completion before the others start. */
  init: boolean;
  container: ApiFields;
}

export function podTemplate(obj: KubeObject, namespace: string): PodTemplate | undefined;
export function podTemplate(obj: KubeObject, namespace: string, manifest: Manifest): RenderedPodTemplate | undefined;
export function podTemplate(obj: KubeObject, namespace: string, manifest?: Manifest): PodTemplate | undefined {
  const at = podTemplatePath(obj.kind);
  if (!at) return undefined;
  let t: ApiFields | undefined = obj;
  for (const k of at) t = t?.[k] as ApiFields | undefined;
  const spec = t?.spec as ApiFields | undefined;
  if (!spec) return undefined;
  const metadata = t?.metadata as ApiFields | undefined;
  return {
    owner: obj,
    manifest,
    namespace: namespaceOf(obj, namespace),
    path: at.length ? `${at.join('.')}.` : '',
    labels: (metadata?.labels as Labels | undefined) ?? {},
    spec,
  };
}

/** Init containers first, then the others, as the pod spec lists them. */
export function containersOf(t: Pick<PodTemplate, 'path' | 'spec'>): ContainerAt[] {
  const list = (key: 'initContainers' | 'containers') =>
    ((t.spec[key] ?? []) as ApiFields[]).map((container, i) => ({ field: `${t.path}spec.${key}[${i}]`, init: key === 'initContainers', container }));
  return [...list('initContainers'), ...list('containers')];
}

/** The port names the containers of a pod spec declare. */
export function declaredPortNames(t: Pick<PodTemplate, 'path' | 'spec'>): Set<string> {
  return new Set(containersOf(t).flatMap(({ container }) => portNamesOf(container)));
}

/** The port names one container declares. */
export function portNamesOf(container: ApiFields): string[] {
  return ((container.ports ?? []) as ApiFields[]).map((p) => p.name as string | undefined).filter((n): n is string => !!n);
}

/** Whether a label selector (a Service's map, or matchLabels/matchExpressions) selects these labels. */
export function selects(selector: Labels | LabelSelector, labels: Labels): boolean {
  const s: LabelSelector = 'matchLabels' in selector || 'matchExpressions' in selector ? selector : { matchLabels: selector as Labels };
  const exprs = s.matchExpressions ?? [];
  if (!Object.keys(s.matchLabels ?? {}).length && !exprs.length) return false;
  for (const [k, v] of Object.entries(s.matchLabels ?? {})) if (labels[k] !== String(v)) return false;
  for (const e of exprs) {
    const has = e.key in labels;
    const values = (e.values ?? []).map(String);
    if (e.operator === 'In' && !(has && values.includes(labels[e.key]!))) return false;
    if (e.operator === 'NotIn' && has && values.includes(labels[e.key]!)) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

/** `Kind/name`, as findings name objects. */
export const objectId = (o: KubeObject): string => `${o.kind}/${o.metadata.name}`;

/** The object's namespace, or the release's for an object that names none. */
export const namespaceOf = (o: KubeObject, namespace: string): string => o.metadata.namespace ?? namespace;

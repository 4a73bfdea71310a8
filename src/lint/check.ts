import type { ApiFields, KubeObject, Manifest } from '../kube/objects.js';
import type { LintCheck } from './finding.js';
import { namespaceOf, selects, type ContainerAt, type Labels, type PodTemplate, type RenderedPodTemplate } from './pod-templates.js';

/**
 * What a lint check is: one of three shapes, by what it looks at. The runner
 * (lint-manifests.ts) walks the rendered objects in order and, for each,
 * runs the object checks, then the container checks on each container of its
 * pod template, then the pod-template checks, in registry order.
 */

/** What the release's namespace already holds, read from the cluster (read-only). */
export interface LiveNamespace {
  /** Pods and workloads: their pod labels can back a Service. */
  workloads: KubeObject[];
  services: KubeObject[];
  configMaps: KubeObject[];
  secrets: KubeObject[];
}

export interface LintInput {
  manifests: Manifest[];
  /** The namespace of objects that name none. */
  namespace: string;
  /** The image references skiff.yaml's images rendered to: never `latest`. */
  images: string[];
  /** The release's namespace in the cluster, when one was reachable. */
  live?: LiveNamespace;
  /** Warnings count as errors. */
  strict?: boolean;
}

/** What every check may consult besides the object it looks at. */
export interface LintContext {
  input: LintInput;
  /** The pod templates of the rendered objects. */
  rendered: RenderedPodTemplate[];
  /** The pod templates of the workloads already in the release's namespace. */
  live: PodTemplate[];
}

/** Records a finding of the running check on the object being linted (unless the object skips that check). */
export type Report = (field: string, message: string, fix: string) => void;

/** Looks at one rendered object. */
export interface ObjectCheck {
  check: LintCheck;
  on: 'object';
  run(m: Manifest, ctx: LintContext, report: Report): void;
}

/** Looks at one container of a rendered pod template. */
export interface ContainerCheck {
  check: LintCheck;
  on: 'container';
  run(c: ContainerAt, t: RenderedPodTemplate, ctx: LintContext, report: Report): void;
}

/** Looks at a rendered pod template as a whole (its volumes, its owner's selector). */
export interface PodTemplateCheck {
  check: LintCheck;
  on: 'pod-template';
  run(t: RenderedPodTemplate, ctx: LintContext, report: Report): void;
}

export type RegisteredCheck = ObjectCheck | ContainerCheck | PodTemplateCheck;

/** The Services of a namespace: rendered ones, and the cluster's in the release's namespace. */
export function servicesIn(ctx: LintContext, ns: string): KubeObject[] {
  const { manifests, namespace, live } = ctx.input;
  return [
    ...manifests.map((m) => m.object).filter((o) => o.kind === 'Service' && namespaceOf(o, namespace) === ns),
    ...(ns === namespace ? (live?.services ?? []) : []),
  ];
}

/** A Service with a selector: what it selects among the pod templates of its namespace. */
export interface ServiceSelection {
  selector: Labels;
  namespace: string;
  pods: PodTemplate[];
}

/** Undefined for objects other than Services and for a Service without a selector (hand-made Endpoints). */
export function serviceSelection(m: Manifest, ctx: LintContext): ServiceSelection | undefined {
  if (m.object.kind !== 'Service') return undefined;
  const selector = (m.object.spec as ApiFields | undefined)?.selector as Labels | undefined;
  if (!selector || !Object.keys(selector).length) return undefined;
  const ns = namespaceOf(m.object, ctx.input.namespace);
  const candidates = [...ctx.rendered, ...(ns === ctx.input.namespace ? ctx.live : [])];
  return { selector, namespace: ns, pods: candidates.filter((t) => t.namespace === ns && selects(selector, t.labels)) };
}

import type { RunContext } from '../context.js';
import { lintManifests, type LintFinding, type LiveNamespace } from '../core/lint.js';
import { SkiffError } from '../errors.js';
import type { KubeClient } from '../kube/client.js';
import type { Manifest } from '../kube/types.js';
import { loadProject } from '../project.js';
import { planImages } from '../stages/image-plan.js';
import { renderForTarget, resolveImageRefs, resolveTarget, type RenderFlags, type TargetOptions } from '../stages/release-inputs.js';

export interface LintOptions extends TargetOptions, RenderFlags {
  /** Warnings count as errors. */
  strict?: boolean;
  /** Lint the rendered objects alone, without reading the cluster. */
  offline?: boolean;
}

export interface LintResult {
  release: string;
  namespace: string;
  /** Whether the cluster's objects were taken into account. */
  cluster: boolean;
  findings: LintFinding[];
  errors: number;
  warnings: number;
}

/** The pods, workloads, Services, ConfigMaps and Secrets already in a namespace: read-only lists. */
export async function readLiveNamespace(kube: KubeClient, namespace: string): Promise<LiveNamespace> {
  const list = async (apiVersion: string, kind: string, labelSelector?: string) => (await kube.list(apiVersion, kind, namespace, { labelSelector })).items;
  const [pods, deployments, statefulSets, daemonSets, cronJobs, services, configMaps, secrets] = await Promise.all([
    list('v1', 'Pod'),
    list('apps/v1', 'Deployment'),
    list('apps/v1', 'StatefulSet'),
    list('apps/v1', 'DaemonSet'),
    list('batch/v1', 'CronJob'),
    list('v1', 'Service'),
    list('v1', 'ConfigMap'),
    // Not the release records (owner=skiff): large, and never referenced by a pod.
    list('v1', 'Secret', 'owner!=skiff'),
  ]);
  return { workloads: [...pods, ...deployments, ...statefulSets, ...daemonSets, ...cronJobs], services, configMaps, secrets };
}

/** Lints rendered objects, with the namespace's live objects when a cluster is given. */
export async function lintRelease(
  manifests: Manifest[],
  opts: { namespace: string; images: Record<string, string>; strict?: boolean; kube?: KubeClient },
): Promise<LintFinding[]> {
  const live = opts.kube ? await readLiveNamespace(opts.kube, opts.namespace) : undefined;
  return lintManifests({ manifests, namespace: opts.namespace, images: Object.values(opts.images), live, strict: opts.strict });
}

/**
 * skiff lint: renders an environment and checks the objects for what the
 * cluster would accept silently (a Service selecting nothing, a missing
 * ConfigMap key). The cluster is only read; unreachable, it is left out.
 */
export async function runLint(ctx: RunContext, opts: LintOptions): Promise<LintResult> {
  const project = await loadProject(ctx, opts);
  const target = resolveTarget(project, opts.env, opts, ctx.ci);
  const images = await resolveImageRefs(ctx, project, await planImages(project));
  const rendered = await renderForTarget(ctx, project, target, images, opts);
  let live: LiveNamespace | undefined;
  if (!opts.offline) {
    try {
      const kube = await ctx.kube({ context: target.kubeContext, kubeconfig: opts.kubeconfig });
      live = await readLiveNamespace(kube, target.namespace);
    } catch (e) {
      // No kubeconfig, no answer, or no right to list: lint what was rendered.
      if (!(e instanceof SkiffError)) throw e;
      ctx.reporter.warn(`cluster not read (${e.message}); linted the rendered objects alone, without what namespace ${target.namespace} already holds`);
    }
  }
  const findings = lintManifests({ manifests: rendered.manifests, namespace: target.namespace, images: Object.values(images), live, strict: opts.strict });
  // A message can quote a value: mask secret strings as everywhere else.
  const masked = findings.map((f) => ({ ...f, message: rendered.redactor.text(f.message) }));
  const errors = masked.filter((f) => f.severity === 'error').length;
  return { release: target.release, namespace: target.namespace, cluster: live !== undefined, findings: masked, errors, warnings: masked.length - errors };
}

import type { LiveNamespace } from './check.js';
import type { LintFinding } from './finding.js';
import { lintManifests } from './lint-manifests.js';
import type { KubeClient } from '../kube/kube-client.js';
import type { Manifest } from '../kube/objects.js';

// The lint stage, shared by `skiff lint` and by deploy before its dry run: the checks are registered in lint/registry.ts.

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

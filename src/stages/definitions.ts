import { formatDuration } from '../core/duration.js';
import { WorkFailedError } from '../errors.js';
import type { KubeClient } from '../kube/kube-client.js';
import { objectRef } from '../kube/object-key.js';
import type { KubeObject, LiveObject, Manifest } from '../kube/objects.js';

/**
 * CustomResourceDefinitions go before everything else of a revision, pre-deploy
 * hooks included (Helm installs a chart's crds/ before its hooks), and the
 * objects of their kinds wait until the API server serves them.
 */

/** Splits a revision's objects into its CRDs and the rest. */
export function splitDefinitions(manifests: Manifest[]): { definitions: Manifest[]; rest: Manifest[] } {
  const definitions = manifests.filter((m) => m.object.kind === 'CustomResourceDefinition');
  return { definitions, rest: manifests.filter((m) => m.object.kind !== 'CustomResourceDefinition') };
}

/** How long a new CRD may take to be Established (the API server serves its kind) before the deploy fails. */
const ESTABLISHED_TIMEOUT_MS = 60_000;

function established(crd: LiveObject | undefined): boolean {
  const conditions = (crd?.status as { conditions?: Array<{ type?: string; status?: string }> } | undefined)?.conditions ?? [];
  return conditions.some((c) => c.type === 'Established' && c.status === 'True');
}

/** Waits until every applied CRD is Established; a WorkFailedError naming the first that is not in time. */
export async function waitEstablished(kube: KubeClient, crds: KubeObject[], signal: AbortSignal, timeoutMs = ESTABLISHED_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const crd of crds) {
    for (;;) {
      if (established(await kube.get(crd.apiVersion, crd.kind, undefined, crd.metadata.name))) break;
      if (signal.aborted) return;
      if (Date.now() > deadline) {
        throw new WorkFailedError(
          'deploy',
          `${objectRef(crd)} is not Established after ${formatDuration(timeoutMs)}: the API server does not serve its kind yet`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

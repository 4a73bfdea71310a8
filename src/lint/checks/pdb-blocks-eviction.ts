import type { ApiFields, LiveObject } from '../../kube/objects.js';
import type { PodTemplateCheck } from '../check.js';
import { namespaceOf, objectId, selects, type LabelSelector } from '../pod-templates.js';

/** A PodDisruptionBudget that lets no pod of a single-replica workload go. */
function blocksSingle(spec: ApiFields): boolean {
  const value = (v: unknown) => (typeof v === 'string' && v.endsWith('%') ? Number.parseFloat(v) : Number(v));
  if (spec.maxUnavailable !== undefined) return value(spec.maxUnavailable) === 0;
  if (spec.minAvailable !== undefined) return value(spec.minAvailable) >= 1 || (typeof spec.minAvailable === 'string' && value(spec.minAvailable) > 0);
  return false;
}

/** A one-replica Deployment that a PodDisruptionBudget allows no disruption: a node drain waits forever. */
export const pdbBlocksEviction: PodTemplateCheck = {
  check: 'pdb-blocks-eviction',
  on: 'pod-template',
  run(t, ctx, report) {
    const o = t.owner as LiveObject;
    if (o.kind !== 'Deployment' || (o.spec?.replicas ?? 1) !== 1) return;
    for (const pdb of ctx.input.manifests.map((x) => x.object as LiveObject)) {
      if (pdb.kind !== 'PodDisruptionBudget' || namespaceOf(pdb, ctx.input.namespace) !== t.namespace || !pdb.spec?.selector) continue;
      if (!selects(pdb.spec.selector as LabelSelector, t.labels) || !blocksSingle(pdb.spec as ApiFields)) continue;
      report(
        'spec.replicas',
        `1 replica and ${objectId(pdb)} allows no disruption: a node drain waits forever`,
        'run 2 or more replicas, or let the PodDisruptionBudget allow one unavailable pod (maxUnavailable: 1)',
      );
    }
  },
};

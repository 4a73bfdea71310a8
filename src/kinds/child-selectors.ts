import type { LiveObject as Obj } from '../kube/objects.js';
import { kindRow } from './table.js';
import { selectorLabels } from './object-fields.js';

/**
 * Label selectors that cover the pods (and ReplicaSets) of the given
 * workloads and little else, for watches scoped to a release instead of a
 * whole namespace. Each workload's own selector is its spec.selector's
 * matchLabels, or what its row of the kinds table says (a Job's: job-name); workloads whose
 * selectors share a key are folded into one set-based selector
 * (`app in (web-1,web-2,…)`), so 500 Deployments need one watch, not 500.
 * undefined: some workload cannot be selected by labels alone
 * (matchExpressions), or it would take more than `maxWatches` watches; then
 * the caller watches the namespace. Pure.
 */
export function childSelectors(workloads: Obj[], maxWatches = 4): string[] | undefined {
  const own: Array<Record<string, string>> = [];
  for (const w of workloads) {
    const labels = (kindRow(w.kind)?.rollout?.podLabels ?? selectorLabels)(w);
    if (!labels) return undefined;
    own.push(labels);
  }
  const selectors: string[] = [];
  let left = own;
  while (left.length) {
    // The key most of the remaining selectors have: one `key in (…)` covers them all.
    const counts = new Map<string, number>();
    for (const l of left) for (const k of Object.keys(l)) counts.set(k, (counts.get(k) ?? 0) + 1);
    const [key] = [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))[0]!;
    const covered = left.filter((l) => l[key] !== undefined);
    const values = [...new Set(covered.map((l) => l[key]!))].sort();
    selectors.push(
      values.length === 1 && covered.length === 1
        ? Object.entries(covered[0]!)
            .map(([k, v]) => `${k}=${v}`)
            .sort()
            .join(',')
        : `${key} in (${values.join(',')})`,
    );
    left = left.filter((l) => l[key] === undefined);
    if (selectors.length > maxWatches) return undefined;
  }
  return selectors;
}

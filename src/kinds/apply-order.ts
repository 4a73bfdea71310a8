import { ConfigError } from '../errors.js';
import { Phase } from './kind-row.js';
import { applyPhase } from './table.js';
import { describeObject } from '../kube/object-key.js';
import { HELM_HOOK_ANNOTATIONS, HOOK_ANNOTATION, type KubeObject, type Manifest } from '../kube/objects.js';

/** The apply phase of a kind: 0 first; unknown kinds get the last phase. Delete in the reverse order. */
export function phaseIndex(kind: string): number {
  return applyPhase(kind);
}

/**
 * Groups manifests into phases to apply one after the other; empty phases are
 * left out. Within a phase the order is stable: by kind, then name, then
 * namespace, then input order.
 */
export function applyPhases(manifests: Manifest[]): Manifest[][] {
  const phases: Array<Array<{ m: Manifest; i: number }>> = Array.from({ length: Phase.last + 1 }, () => []);
  manifests.forEach((m, i) => phases[phaseIndex(m.object.kind)]!.push({ m, i }));
  return phases
    .filter((p) => p.length > 0)
    .map((p) =>
      p
        .sort(
          (a, b) =>
            compare(a.m.object.kind, b.m.object.kind) ||
            compare(a.m.object.metadata.name, b.m.object.metadata.name) ||
            compare(a.m.object.metadata.namespace ?? '', b.m.object.metadata.namespace ?? '') ||
            a.i - b.i,
        )
        .map((e) => e.m),
    );
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export const HOOKS = ['pre-deploy', 'post-deploy'] as const;
export type Hook = (typeof HOOKS)[number];

/** The hook an object runs as, from its `skiff.io/hook` annotation; undefined for ordinary objects. */
export function hookOf(obj: KubeObject): Hook | undefined {
  const value = obj.metadata.annotations?.[HOOK_ANNOTATION];
  if (value === undefined) return undefined;
  if ((HOOKS as readonly string[]).includes(value)) return value as Hook;
  throw new ConfigError(
    `${describeObject(obj)}: annotation ${HOOK_ANNOTATION}: "${value}" is not a hook; use ${HOOKS.map((h) => `"${h}"`).join(' or ')}, or remove the annotation`,
  );
}

/**
 * Splits a release into pre-deploy hooks, the objects applied in phases, and
 * post-deploy hooks (each in input order). A chart's hook that Helm runs only
 * on install (pre-install without pre-upgrade) is left out of an upgrade, and
 * one only for upgrades out of the first install.
 */
export function splitHooks(manifests: Manifest[], upgrade = false): { pre: Manifest[]; main: Manifest[]; post: Manifest[] } {
  const out = { pre: [] as Manifest[], main: [] as Manifest[], post: [] as Manifest[] };
  for (const m of manifests) {
    const hook = hookOf(m.object);
    if (hook && !helmHookRuns(m.object, upgrade)) continue;
    (hook === 'pre-deploy' ? out.pre : hook === 'post-deploy' ? out.post : out.main).push(m);
  }
  return out;
}

/** Whether a hook runs on this deploy: a Helm hook by its install/upgrade kinds, a skiff hook always. */
export function helmHookRuns(o: KubeObject, upgrade: boolean): boolean {
  const hook = o.metadata.annotations?.[HELM_HOOK_ANNOTATIONS.hook];
  const kinds = (hook ?? '').split(',').map((h) => h.trim());
  // Only a hook Helm runs on install or upgrade is filtered; a skiff hook (with or without other Helm kinds) always runs.
  if (!kinds.some((h) => h.endsWith('-install') || h.endsWith('-upgrade'))) return true;
  return kinds.some((h) => h.endsWith(upgrade ? '-upgrade' : '-install'));
}

/** Helm's hook-delete-policy of a hook: which outcomes delete it once it has run (before-hook-creation is what skiff always does). */
export function hookDeletedAfter(o: KubeObject): { succeeded: boolean; failed: boolean } {
  const policy = (o.metadata.annotations?.[HELM_HOOK_ANNOTATIONS.deletePolicy] ?? '').split(',').map((p) => p.trim());
  return { succeeded: policy.includes('hook-succeeded'), failed: policy.includes('hook-failed') };
}

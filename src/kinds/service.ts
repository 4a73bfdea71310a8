import type { ApiFields, LiveObject as Obj } from '../kube/objects.js';
import { Phase, type KindRow } from './kind-row.js';

/** Not followed by deploy (a Service is ready once applied); status reports one whose selector matches no ready pod. */
export const serviceRow: KindRow = { kind: 'Service', phase: Phase.network };

/** A Service with a selector whose EndpointSlices list no ready endpoint (pure); undefined when it has one, or no selector. */
export function serviceWithoutEndpoints(svc: Obj, slices: Obj[]): string | undefined {
  const selector = (svc.spec?.selector ?? {}) as Record<string, string>;
  if (svc.spec?.type === 'ExternalName' || Object.keys(selector).length === 0) return undefined;
  const ready = slices.some((s) => ((s.endpoints ?? []) as ApiFields[]).some((e) => e.conditions?.ready !== false));
  if (ready) return undefined;
  const sel = Object.entries(selector)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  return `no ready endpoints (selector ${sel} matches no ready pod)`;
}

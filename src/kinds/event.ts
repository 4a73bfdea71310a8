import type { LiveObject as Obj } from '../kube/objects.js';

/** The name of the object an Event is about. */
export function involvedName(e: Obj): string | undefined {
  return e.involvedObject?.name as string | undefined;
}

/** What the tracker keeps of an event: who it is about, why, and when. */
export function slimEvent(e: Obj): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name: e.metadata.name, namespace: e.metadata.namespace, creationTimestamp: e.metadata.creationTimestamp },
    involvedObject: e.involvedObject,
    type: e.type,
    reason: e.reason,
    message: e.message,
    count: e.count,
    series: e.series,
    lastTimestamp: e.lastTimestamp,
    eventTime: e.eventTime,
  };
}

/** The last few events that explain a failure, oldest first: `Warning BackOff (Pod/web-1, ×4): Back-off restarting failed container`. */
export function failureEventLines(events: Obj[], max = 5): string[] {
  return events
    .filter((e) => e.type === 'Warning' || e.reason === 'Failed' || e.reason === 'BackOff')
    .sort((a, b) => String(a.lastTimestamp ?? a.eventTime ?? '').localeCompare(String(b.lastTimestamp ?? b.eventTime ?? '')))
    .slice(-max)
    .map(
      (e) =>
        `${e.type} ${e.reason} (${e.involvedObject?.kind}/${e.involvedObject?.name}${(e.count ?? 1) > 1 ? `, ×${e.count}` : ''}): ${String(e.message ?? '').trim()}`,
    );
}

import type { ApiFields, LiveObject as Obj } from '../kube/objects.js';
import { eventTime, podReady } from './object-fields.js';

/** How a container's readiness probe checks: exec `test -f /x`, httpGet :8080/healthz, tcpSocket :5432. */
export function describeProbe(probe: ApiFields | undefined): string | undefined {
  if (!probe) return undefined;
  if (probe.exec) return `exec \`${((probe.exec.command ?? []) as string[]).join(' ')}\``;
  if (probe.httpGet) return `httpGet :${String(probe.httpGet.port)}${(probe.httpGet.path as string | undefined) ?? '/'}`;
  if (probe.tcpSocket) return `tcpSocket :${String(probe.tcpSocket.port)}`;
  if (probe.grpc) return `grpc :${String(probe.grpc.port)}`;
  return undefined;
}

/** Why pods are Running but not Ready, grouped by cause. */
export interface UnreadyCause {
  pods: string[];
  container?: string;
  /** The probe's handler, from the pod spec. */
  probe?: string;
  /** The kubelet's last message: "Readiness probe failed: …". */
  message: string;
  /** How many times the probe failed, over the pods. */
  failures: number;
}

const READINESS_FAILED = /^Readiness probe failed:?\s*/;

/**
 * The causes of Running-but-not-Ready pods, from the kubelet's `Unhealthy`
 * Warning events about them (pure). Pods without such an event yet are left
 * out: their probe has not failed, it just has not passed.
 */
export function unreadyCauses(pods: Obj[], events: Obj[]): UnreadyCause[] {
  const groups = new Map<string, UnreadyCause>();
  for (const pod of pods) {
    if (pod.status?.phase !== 'Running' || podReady(pod) || pod.metadata.deletionTimestamp) continue;
    const last = events
      .filter((e) => e.involvedObject?.name === pod.metadata.name && e.reason === 'Unhealthy' && READINESS_FAILED.test(String(e.message ?? '')))
      .sort((a, b) => eventTime(a).localeCompare(eventTime(b)))
      .at(-1);
    if (!last) continue;
    // "spec.containers{web}" names the container whose probe failed.
    const container = /\{(.+)\}/.exec(String(last.involvedObject?.fieldPath ?? ''))?.[1];
    const spec =
      ((pod.spec?.containers ?? []) as ApiFields[]).find((c) => c.name === container) ??
      ((pod.spec?.containers ?? []) as ApiFields[]).find((c) => c.readinessProbe);
    const probe = describeProbe(spec?.readinessProbe as ApiFields | undefined);
    const message = String(last.message).replace(READINESS_FAILED, '').trim().split('\n')[0]!.trim();
    const key = `${spec?.name as string}\0${probe}\0${message}`;
    const g = groups.get(key) ?? { pods: [], container: spec?.name as string | undefined, probe, message, failures: 0 };
    g.pods.push(pod.metadata.name);
    g.failures += Number(last.count ?? last.series?.count ?? 1) || 1;
    groups.set(key, g);
  }
  return [...groups.values()];
}

/** `2 pods: readiness probe failed 58 times: exec `test -f /www/missing.html` (…)`; without counts for a progress line. */
export function formatUnreadyCause(c: UnreadyCause, counts = true): string {
  const who = c.pods.length === 1 ? `pod ${c.pods[0]}` : `${c.pods.length} pods`;
  const how = counts ? `readiness probe failed ${c.failures} time${c.failures === 1 ? '' : 's'}` : 'readiness probe failing';
  const what = [c.probe, c.container ? `in container ${c.container}` : undefined].filter(Boolean).join(' ');
  return `${who}: ${how}${what ? `: ${what}` : ''}${c.message ? ` (${c.message})` : ''}`;
}

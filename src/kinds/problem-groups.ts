import type { PodProblem } from './readiness.js';

/** A failing pod and the applied object it belongs to. */
export interface ObjectPodProblem extends PodProblem {
  object: string;
}

/** Pods that fail for the same cause: what a diagnosis shows instead of one line per pod. */
export interface ProblemGroup {
  reason: string;
  container?: string;
  exitCode?: number;
  /** The message with the pod's own name and UIDs taken out, so equal causes group. */
  message?: string;
  /** How many pods fail this way. */
  count: number;
  /** The objects whose pods they are, in order of first appearance. */
  objects: string[];
  /** A few of the pods, to look at. */
  examples: string[];
}

const UID = /\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/g;

/**
 * Failing pods grouped by cause (reason, container, exit code and message),
 * the largest group first, each with its count, its objects and up to
 * `examples` pod names. Pure.
 */
export function groupProblems(problems: ObjectPodProblem[], examples = 3): ProblemGroup[] {
  const groups = new Map<string, ProblemGroup>();
  for (const p of problems) {
    const message = p.message ? (p.pod ? p.message.replaceAll(p.pod, '<pod>') : p.message).replace(UID, '<uid>').trim() : undefined;
    const key = JSON.stringify([p.reason, p.container ?? '', p.exitCode ?? '', message ?? '']);
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { reason: p.reason, container: p.container, exitCode: p.exitCode, message, count: 0, objects: [], examples: [] }));
    g.count++;
    if (!g.objects.includes(p.object)) g.objects.push(p.object);
    if (p.pod && g.examples.length < examples) g.examples.push(p.pod);
  }
  return [...groups.values()].sort((a, b) => b.count - a.count);
}

/** `12 pods of 4 objects (Deployment/web-1, …): CrashLoopBackOff in container app, exit code 1: simulated crash; e.g. web-1-x, web-7-y` */
export function formatProblemGroup(g: ProblemGroup, maxObjects = 3): string {
  const who = g.count === 1 ? '1 pod' : `${g.count} pods`;
  const objects =
    g.objects.length === 1
      ? g.objects[0]
      : `${g.objects.length} objects: ${g.objects.slice(0, maxObjects).join(', ')}${g.objects.length > maxObjects ? ', …' : ''}`;
  const what = [g.reason, g.container ? `in container ${g.container}` : undefined].filter(Boolean).join(' ');
  const exit = g.exitCode !== undefined ? `, exit code ${g.exitCode}` : '';
  return `${who} of ${objects}: ${what}${exit}${g.message ? `: ${g.message}` : ''}${g.examples.length ? `; e.g. ${g.examples.join(', ')}` : ''}`;
}

import { randomUUID } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import type { CiContext } from '../gitlab/ci-variables.js';
import type { LiveObject } from '../kube/objects.js';

// Who holds a release lock: the identity written into the Lease, read back, and compared.

export interface LockOwner {
  user: string;
  host: string;
  pid: number;
  ciJobUrl?: string;
  action: string;
  /**
   * A random id of this run. A lease is ours only when it carries it: two
   * containers can write the very same rest (pid 1, same hostname, no job URL).
   * '' in holders written before it existed.
   */
  runId: string;
  /**
   * The boot (/proc/sys/kernel/random/boot_id) and the PID namespace (the
   * inode of /proc/self/ns/pid) the pid belongs to. A pid means nothing
   * without them: jobs in two containers often share a hostname. Absent off
   * Linux and in holders written before they existed.
   */
  bootId?: string;
  pidNamespace?: number;
}

/** The holder of a lock taken now: who, where, and a random id no other run has. */
export function lockOwner(ci: Pick<CiContext, 'actor' | 'jobUrl'>, action: string): LockOwner {
  return { user: ci.actor, host: hostname(), pid: process.pid, ciJobUrl: ci.jobUrl, action, runId: randomUUID(), ...pidNamespaceIdentity() };
}

/** This process's boot and PID namespace, where /proc tells them (Linux); empty elsewhere. */
export function pidNamespaceIdentity(): Pick<LockOwner, 'bootId' | 'pidNamespace'> {
  try {
    const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const pidNamespace = statSync('/proc/self/ns/pid').ino;
    return bootId && pidNamespace > 0 ? { bootId, pidNamespace } : {};
  } catch {
    return {};
  }
}

export function describeOwner(o: LockOwner): string {
  return `${o.action} by ${o.user}@${o.host} (pid ${o.pid})${o.ciJobUrl ? `, ${o.ciJobUrl}` : ''}`;
}

/** The holder identity is another program's writing: read only the fields skiff wrote, of the types it wrote. */
export function parseOwner(holder: string | undefined): LockOwner | undefined {
  if (!holder) return undefined;
  let raw: Partial<Record<keyof LockOwner, unknown>> = {};
  try {
    const parsed: unknown = JSON.parse(holder);
    if (parsed && typeof parsed === 'object') raw = parsed;
  } catch {
    /* not skiff's: described by what little is known */
  }
  const text = (v: unknown, fallback: string) => (typeof v === 'string' ? v.replace(/[^\x20-\x7e]/g, '?').slice(0, 200) : fallback);
  return {
    user: text(raw.user, '?'),
    host: text(raw.host, '?'),
    pid: typeof raw.pid === 'number' && Number.isInteger(raw.pid) ? raw.pid : 0,
    ciJobUrl: typeof raw.ciJobUrl === 'string' ? text(raw.ciJobUrl, '') : undefined,
    action: text(raw.action, 'unknown'),
    runId: text(raw.runId, ''),
    bootId: typeof raw.bootId === 'string' && raw.bootId ? text(raw.bootId, '') : undefined,
    pidNamespace: typeof raw.pidNamespace === 'number' && Number.isInteger(raw.pidNamespace) && raw.pidNamespace > 0 ? raw.pidNamespace : undefined,
  };
}

/** The same run: only the random run id says so (old holders have none and are never ours). */
export function sameRun(holder: LockOwner | undefined, me: LockOwner): boolean {
  return holder !== undefined && holder.runId !== '' && holder.runId === me.runId;
}

/** Whether the holder proves its pid is one of this PID namespace on this boot, so that probing the pid here means something. */
export function samePidNamespace(holder: LockOwner, me: LockOwner): boolean {
  return holder.bootId !== undefined && holder.pidNamespace !== undefined && holder.bootId === me.bootId && holder.pidNamespace === me.pidNamespace;
}

export const holderOf = (lease: LiveObject | undefined): string | undefined => {
  const h: unknown = (lease?.spec as { holderIdentity?: unknown } | undefined)?.holderIdentity;
  return typeof h === 'string' ? h : undefined;
};

/** Whether a process id is running on this host (a pid we may not signal still runs). */
export function processAlive(pid: number): boolean {
  if (!(pid > 0)) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

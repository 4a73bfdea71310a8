import type { RunContext } from '../context.js';
import { applyPhases } from '../core/order.js';
import { ConfigError } from '../errors.js';
import { objectKey, objectRef } from '../kube/object-key.js';
import { mayDelete } from '../stages/apply.js';
import { openRelease, withReleaseLock } from '../stages/kube-session.js';
import type { TargetOptions } from '../stages/release-inputs.js';

export interface DismissOptions extends TargetOptions {
  /** Also delete the release records. */
  withHistory?: boolean;
}

export interface DismissResult {
  release: string;
  namespace: string;
  deleted: string[];
  historyDeleted: boolean;
}

/** skiff dismiss: delete the release's objects (every revision's, last applied first) and, with --with-history, its records. */
export async function runDismiss(ctx: RunContext, opts: DismissOptions): Promise<DismissResult> {
  const { kube, storage, target } = await openRelease(ctx, opts);
  if (!(await kube.get('v1', 'Namespace', undefined, target.namespace)))
    throw new ConfigError(`namespace ${target.namespace} does not exist; release ${target.release} is not deployed`);
  return withReleaseLock(ctx, kube, target, 'dismiss', opts, async () => {
    const history = await storage.history(target.release);
    if (history.length === 0) throw new ConfigError(`release ${target.release} has no history in namespace ${target.namespace}; nothing to dismiss`);
    const seen = new Set<string>();
    const deleted: string[] = [];
    const objects = history
      .slice()
      .reverse()
      .flatMap((r) => r.manifests);
    for (const phase of applyPhases(objects.map((object) => ({ object, source: { file: '', line: 0 } }))).reverse()) {
      for (const { object: o } of phase) {
        const key = objectKey(o);
        if (seen.has(key) || o.kind === 'Namespace') continue;
        seen.add(key);
        const live = await kube.get(o.apiVersion, o.kind, o.metadata.namespace, o.metadata.name).catch(() => undefined);
        if (!mayDelete(o, live)) continue;
        await kube.delete(o.apiVersion, o.kind, o.metadata.namespace, o.metadata.name);
        ctx.reporter.status(objectRef(o), 'deleted');
        deleted.push(objectRef(o));
      }
    }
    if (opts.withHistory) await storage.deleteAll(target.release);
    else {
      const last = history.at(-1)!;
      await storage.update({ ...last, status: 'uninstalled', description: 'dismissed', finishedAt: ctx.now().toISOString() });
    }
    return { release: target.release, namespace: target.namespace, deleted, historyDeleted: Boolean(opts.withHistory) };
  });
}

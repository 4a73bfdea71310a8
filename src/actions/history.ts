import type { RunContext } from '../context.js';
import type { ReleaseRecord } from '../release/types.js';
import { openRelease } from '../stages/kube-session.js';
import { describeCluster } from './status.js';
import type { TargetOptions } from '../stages/release-inputs.js';

export type HistoryOptions = TargetOptions;

/** skiff history: the stored revisions of a release, oldest first. */
export async function runHistory(ctx: RunContext, opts: HistoryOptions): Promise<ReleaseRecord[]> {
  const { kube, storage, target } = await openRelease(ctx, opts);
  const records = await storage.history(target.release);
  // Environments may live on different clusters: say which one this history is from.
  ctx.reporter.info(`history of release ${target.release} in ${target.namespace} on ${describeCluster({ context: kube.context, server: kube.server })}`);
  // The mask salt keys the masks: it stays in the cluster, never in output.
  return records.map(({ maskSalt: _salt, ...record }) => record);
}

import type { RunContext } from '../context.js';
import type { ReleaseRecord } from '../release/release-record.js';
import { openRelease } from '../stages/kube-session.js';
import { describeCluster } from '../kube/cluster-ref.js';
import type { TargetOptions } from '../stages/release-inputs.js';

export type HistoryOptions = TargetOptions;

/** skiff history: the stored revisions of a release, oldest first. */
export async function runHistory(ctx: RunContext, opts: HistoryOptions): Promise<ReleaseRecord[]> {
  const { kube, storage, target } = await openRelease(ctx, opts);
  const records = await storage.history(target.release);
  // Environments may live on different clusters: say which one this history is from.
  ctx.reporter.info(`history of release ${target.release} in ${target.namespace} on ${describeCluster({ context: kube.context, server: kube.server })}`);
  // The mask salt keys the masks: it stays in the cluster, never in output.
  return records.map(({ maskSalt, ...record }) => (maskSalt ? record : withoutChecksums(record)));
}

/**
 * A record written before masks had a salt: its masks are the plain SHA-256
 * of each secret (48 bits, which finds a short one by trying them all), so
 * they are shown without it.
 */
function withoutChecksums(record: ReleaseRecord): ReleaseRecord {
  return JSON.parse(JSON.stringify(record).replace(/\(masked sha256:[0-9a-f]{12}\)/g, '(masked)')) as ReleaseRecord;
}

import type { RunContext } from '../context.js';
import type { ReleaseRecord } from '../release/types.js';
import { openRelease } from '../stages/kube-session.js';
import type { TargetOptions } from '../stages/release-inputs.js';

export type HistoryOptions = TargetOptions;

/** skiff history: the stored revisions of a release, oldest first. */
export async function runHistory(ctx: RunContext, opts: HistoryOptions): Promise<ReleaseRecord[]> {
  const { storage, target } = await openRelease(ctx, opts);
  return storage.history(target.release);
}

import { hasCommit, isAncestor, isShallow, type GitRepo } from '../adapters/git.js';
import type { RunContext } from '../context.js';
import { ConfigError } from '../errors.js';
import { outdatedVerdict, type Ancestry } from '../release/outdated.js';
import type { ReleaseRecord, RevisionGit } from '../release/release-record.js';
import type { ReleaseTarget } from './release-inputs.js';

export interface OutdatedCheckInput {
  repo: GitRepo;
  target: ReleaseTarget;
  /** The release's history, oldest first (ReleaseStorage.history). */
  history: ReleaseRecord[];
  /** What the new revision would record of its commit (release/outdated.ts revisionGit). */
  candidate: RevisionGit;
  /** --allow-older (or SKIFF_ALLOW_OLDER=1 in the environment): an older commit is deployed anyway, with a warning. */
  allowOlder?: boolean;
}

export interface OutdatedCheck {
  /** The deployed revision the check compared against; undefined when none was. */
  deployedRevision?: number;
  /**
   * Checks again against a history read later (under the release lock: another
   * pipeline may have deployed while this one waited). Nothing is asked of git
   * again when the deployed revision is still the one checked.
   */
  recheck(ctx: RunContext, history: ReleaseRecord[]): Promise<void>;
}

/**
 * The outdated-deploy guard: refuses (exit 2) to deploy a commit older than
 * the one the release runs, before anything is written. Older: an ancestor
 * of the deployed commit; where the clone does not have the deployed commit
 * (or is too shallow to tell), a pipeline of the same ref with a smaller id.
 * A redeploy of the same commit and a diverged commit (a review branch) pass.
 * Rollback never comes here.
 */
export async function checkNotOutdated(ctx: RunContext, input: OutdatedCheckInput): Promise<OutdatedCheck> {
  const deployed = currentDeployed(input.history);
  // A variable too: GitLab's "Run job" form sets variables, not flags, on a manual job.
  const allowOlder = input.allowOlder || ['1', 'true'].includes(ctx.env.SKIFF_ALLOW_OLDER ?? '');
  if (deployed) {
    const ancestry = await commitAncestry(input.repo, input.candidate.commit, deployed.git.commit);
    const verdict = outdatedVerdict({ env: input.target.env, deployed: deployed.git, candidate: input.candidate, ancestry });
    if (verdict.outdated && !allowOlder) throw new ConfigError(verdict.message, { detail: { deployedRevision: deployed.revision, by: verdict.by } });
    if (verdict.outdated) ctx.reporter.warn(`${verdict.summary}: deploying it anyway (${input.allowOlder ? '--allow-older' : 'SKIFF_ALLOW_OLDER'})`);
    else ctx.reporter.debug(`outdated-deploy guard: revision ${deployed.revision}: ${verdict.why}`);
  }
  return {
    deployedRevision: deployed?.revision,
    recheck: async (later, history) => {
      if (currentDeployed(history)?.revision === deployed?.revision) return;
      await checkNotOutdated(later, { ...input, history });
    },
  };
}

/** The revision the release runs: its newest deployed one. */
function currentDeployed(history: ReleaseRecord[]): ReleaseRecord | undefined {
  return history.findLast((r) => r.status === 'deployed');
}

/**
 * What the clone tells of `candidate` against `deployed`. A path git finds
 * is real even in a shallow clone; its absence proves nothing there.
 */
export async function commitAncestry(repo: GitRepo, candidate: string, deployed: string): Promise<Ancestry> {
  if (candidate === deployed) return 'same';
  if (!(await hasCommit(repo, deployed))) return 'unknown';
  if (await isAncestor(repo, candidate, deployed)) return 'older';
  if (await isAncestor(repo, deployed, candidate)) return 'newer';
  return (await isShallow(repo)) ? 'unknown' : 'diverged';
}

/**
 * The outdated-deploy guard's decision: may this commit replace the one the
 * release runs? Two pipelines on one branch, the older one slower, must not
 * put older code in production after the newer one. Pure: what git said
 * about the two commits and what the records say about their pipelines go
 * in, a verdict comes out.
 */
import type { RevisionGit } from './release-record.js';

/**
 * Where the commit to deploy stands against the deployed one, as the local
 * clone tells it.
 */
export type Ancestry =
  /** The very commit the release runs: a redeploy. */
  | 'same'
  /** An ancestor of the deployed commit: older code. */
  | 'older'
  /** The deployed commit is its ancestor. */
  | 'newer'
  /** Neither, with both histories complete in the clone: a review branch, a revert on another branch. */
  | 'diverged'
  /** The deployed commit is not in the clone, or the clone is too shallow to know (GitLab fetches 20 or 50 commits). */
  | 'unknown';

export interface OutdatedInput {
  /** The environment's name, as the message says it. */
  env: string;
  /** The revision the release runs now; none: nothing to be older than. */
  deployed?: RevisionGit;
  candidate: RevisionGit;
  ancestry: Ancestry;
}

export type OutdatedVerdict =
  | { outdated: false; why: string }
  | {
      outdated: true;
      /** What proved it: git's history, or (in a clone too shallow to tell) the pipeline ids of one ref. */
      by: 'ancestry' | 'pipeline';
      /** `production runs 1a2b3c4 (pipeline 812), newer than 9f8e7d6 (pipeline 809)` */
      summary: string;
      /** The summary and the way out: the refusal's message. */
      message: string;
    };

export function outdatedVerdict(input: OutdatedInput): OutdatedVerdict {
  const { deployed, candidate, ancestry } = input;
  if (!deployed) return { outdated: false, why: 'nothing is deployed yet' };
  if (ancestry === 'same' || deployed.commit === candidate.commit)
    return { outdated: false, why: `${short(deployed.commit)} is the deployed commit: a redeploy` };
  if (ancestry === 'older') return refusal('ancestry', input.env, deployed, candidate);
  if (ancestry === 'newer') return { outdated: false, why: `the deployed ${short(deployed.commit)} is an ancestor of ${short(candidate.commit)}` };
  if (ancestry === 'diverged') return { outdated: false, why: `${short(candidate.commit)} and the deployed ${short(deployed.commit)} have diverged` };
  // The clone cannot tell: only pipelines of one ref are ordered by their ids.
  if (deployed.pipelineId === undefined || candidate.pipelineId === undefined)
    return { outdated: false, why: `the deployed ${short(deployed.commit)} is not in this clone, and a pipeline id is unknown` };
  if (!deployed.ref || deployed.ref !== candidate.ref)
    return { outdated: false, why: `the deployed ${short(deployed.commit)} is not in this clone and came from another ref (${deployed.ref ?? 'unknown'})` };
  if (candidate.pipelineId < deployed.pipelineId) return refusal('pipeline', input.env, deployed, candidate);
  return { outdated: false, why: `pipeline ${candidate.pipelineId} of ${candidate.ref} is not older than pipeline ${deployed.pipelineId}` };
}

function refusal(by: 'ancestry' | 'pipeline', env: string, deployed: RevisionGit, candidate: RevisionGit): OutdatedVerdict {
  const summary = `${env} runs ${described(deployed)}, newer than ${described(candidate)}`;
  return { outdated: true, by, summary, message: `${summary}; --allow-older to deploy it anyway` };
}

const short = (commit: string) => commit.slice(0, 7);
const described = (git: RevisionGit) => `${short(git.commit)}${git.pipelineId === undefined ? '' : ` (pipeline ${git.pipelineId})`}`;

/**
 * What a revision records of the commit it deploys: the commit, its time,
 * the pipeline (CI_PIPELINE_ID) and the ref (CI_COMMIT_REF_NAME, else the branch).
 */
export function revisionGit(
  git: { commit: string; committedAt?: string; branch?: string; tag?: string },
  ci: { pipelineId?: number; refName?: string },
): RevisionGit {
  return {
    commit: git.commit,
    branch: git.branch,
    tag: git.tag,
    committedAt: git.committedAt,
    pipelineId: ci.pipelineId,
    ref: ci.refName ?? git.branch,
  };
}

// The outdated-deploy guard: the pure verdict on every branch, what a local
// clone says of two commits (full and shallow), and the check over a history.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCiContext } from '../../src/gitlab/ci-variables.js';
import { outdatedVerdict, revisionGit, type OutdatedInput } from '../../src/release/outdated.js';
import type { ReleaseRecord, RevisionGit } from '../../src/release/release-record.js';
import { checkNotOutdated, commitAncestry } from '../../src/stages/outdated-deploy.js';
import type { ReleaseTarget } from '../../src/stages/release-inputs.js';
import { configFailure } from '../helpers/failure.js';
import { recordingReporter, runContext } from '../helpers/orchestration.js';
import { MemoryKube } from '../helpers/memory-kube.js';
import { git } from '../helpers/skiff.js';

const A = '9f8e7d6c5b4a39281706f5e4d3c2b1a098765432';
const B = '1a2b3c4d5e6f708192a3b4c5d6e7f80918273645';
const REFUSAL = 'production runs 1a2b3c4 (pipeline 812), newer than 9f8e7d6 (pipeline 809); --allow-older to deploy it anyway';

const verdict = (input: Partial<OutdatedInput> & Pick<OutdatedInput, 'ancestry'>) =>
  outdatedVerdict({
    env: 'production',
    deployed: { commit: B, pipelineId: 812, ref: 'main' },
    candidate: { commit: A, pipelineId: 809, ref: 'main' },
    ...input,
  });

describe('outdatedVerdict', () => {
  it('nothing deployed yet: any commit goes', () => {
    expect(verdict({ deployed: undefined, ancestry: 'unknown' })).toMatchObject({ outdated: false, why: 'nothing is deployed yet' });
  });

  it('the deployed commit again is a redeploy, whatever the pipelines', () => {
    expect(verdict({ candidate: { commit: B, pipelineId: 700, ref: 'main' }, ancestry: 'same' }).outdated).toBe(false);
    // Even when git was not asked (the same sha settles it).
    expect(verdict({ candidate: { commit: B, pipelineId: 700, ref: 'main' }, ancestry: 'unknown' }).outdated).toBe(false);
  });

  it('an ancestor of the deployed commit is refused with the deployed and the candidate named', () => {
    expect(verdict({ ancestry: 'older' })).toEqual({
      outdated: true,
      by: 'ancestry',
      summary: 'production runs 1a2b3c4 (pipeline 812), newer than 9f8e7d6 (pipeline 809)',
      message: REFUSAL,
    });
  });

  it('git settles it over the pipeline ids: an ancestor from a newer pipeline is still older code', () => {
    expect(verdict({ candidate: { commit: A, pipelineId: 900, ref: 'main' }, ancestry: 'older' })).toMatchObject({
      outdated: true,
      message: 'production runs 1a2b3c4 (pipeline 812), newer than 9f8e7d6 (pipeline 900); --allow-older to deploy it anyway',
    });
    expect(verdict({ ancestry: 'newer' }).outdated).toBe(false);
  });

  it('a pipeline id nobody recorded is left out of the message', () => {
    const v = verdict({ deployed: { commit: B }, candidate: { commit: A }, ancestry: 'older' });
    expect(v).toMatchObject({ outdated: true, message: 'production runs 1a2b3c4, newer than 9f8e7d6; --allow-older to deploy it anyway' });
    expect(verdict({ deployed: { commit: B, pipelineId: 812 }, candidate: { commit: A }, ancestry: 'older' })).toMatchObject({
      message: 'production runs 1a2b3c4 (pipeline 812), newer than 9f8e7d6; --allow-older to deploy it anyway',
    });
  });

  it('a newer commit, and a diverged one (a review branch), are not older', () => {
    expect(verdict({ ancestry: 'newer' })).toMatchObject({ outdated: false, why: 'the deployed 1a2b3c4 is an ancestor of 9f8e7d6' });
    expect(verdict({ ancestry: 'diverged' })).toMatchObject({ outdated: false, why: '9f8e7d6 and the deployed 1a2b3c4 have diverged' });
  });

  describe('where the clone cannot tell (a shallow CI clone)', () => {
    it('an older pipeline of the same ref is refused', () => {
      expect(verdict({ ancestry: 'unknown' })).toMatchObject({ outdated: true, by: 'pipeline', message: REFUSAL });
    });

    it('a newer pipeline of the same ref, or the same pipeline, goes', () => {
      expect(verdict({ candidate: { commit: A, pipelineId: 813, ref: 'main' }, ancestry: 'unknown' }).outdated).toBe(false);
      expect(verdict({ candidate: { commit: A, pipelineId: 812, ref: 'main' }, ancestry: 'unknown' }).outdated).toBe(false);
    });

    it('another ref is not ordered by pipeline ids: it goes', () => {
      expect(verdict({ candidate: { commit: A, pipelineId: 809, ref: 'feature/x' }, ancestry: 'unknown' })).toMatchObject({
        outdated: false,
        why: 'the deployed 1a2b3c4 is not in this clone and came from another ref (main)',
      });
      expect(verdict({ deployed: { commit: B, pipelineId: 812 }, ancestry: 'unknown' }).outdated).toBe(false);
    });

    it('a pipeline id missing on either side: it goes (a record from before the guard, a deploy from a laptop)', () => {
      expect(verdict({ deployed: { commit: B, ref: 'main' }, ancestry: 'unknown' }).outdated).toBe(false);
      expect(verdict({ candidate: { commit: A, ref: 'main' }, ancestry: 'unknown' }).outdated).toBe(false);
    });
  });
});

describe('revisionGit: what a revision records of its commit', () => {
  const info = { commit: A, committedAt: '2026-12-01T10:00:00.000Z', branch: 'main', tag: undefined };

  it('in a GitLab job: the pipeline id and the ref name', () => {
    const ci = readCiContext({ GITLAB_CI: 'true', CI_PIPELINE_ID: '809', CI_COMMIT_REF_NAME: 'v1.2', CI_COMMIT_TAG: 'v1.2' });
    expect(revisionGit({ ...info, branch: undefined, tag: 'v1.2' }, ci)).toEqual({
      commit: A,
      committedAt: '2026-12-01T10:00:00.000Z',
      branch: undefined,
      tag: 'v1.2',
      pipelineId: 809,
      ref: 'v1.2',
    });
  });

  it('on a laptop: no pipeline, the branch as the ref', () => {
    expect(revisionGit(info, readCiContext({}))).toMatchObject({ pipelineId: undefined, ref: 'main' });
  });

  it('CI_PIPELINE_ID that is not a pipeline id is not one', () => {
    for (const id of ['', 'abc', '0', '-3', '12.5', '1e3', '9999999999999999999']) expect(readCiContext({ CI_PIPELINE_ID: id }).pipelineId, id).toBeUndefined();
    expect(readCiContext({ CI_PIPELINE_ID: '812' }).pipelineId).toBe(812);
  });
});

// ---- git ---------------------------------------------------------------------

let repo: string;
const commits: Record<string, string> = {};
const dirs: string[] = [];
const env = { PATH: process.env.PATH, HOME: process.env.HOME };

async function commit(dir: string, name: string): Promise<string> {
  await writeFile(join(dir, 'file'), name);
  await git(dir, 'add', '-A');
  await git(dir, 'commit', '-q', '-m', name);
  return (await git(dir, 'rev-parse', 'HEAD')).stdout.trim();
}

beforeAll(async () => {
  // main: A - B - C; review (from A): R
  repo = await mkdtemp(join(tmpdir(), 'skiff-outdated-'));
  dirs.push(repo);
  await git(repo, 'init', '-q', '-b', 'main');
  commits.A = await commit(repo, 'A');
  commits.B = await commit(repo, 'B');
  commits.C = await commit(repo, 'C');
  await git(repo, 'checkout', '-q', '-b', 'review', commits.A);
  commits.R = await commit(repo, 'R');
  await git(repo, 'checkout', '-q', 'main');
});

afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('commitAncestry: what the clone says', () => {
  const at = (dir: string) => ({ root: dir, env });

  it('in a full clone: same, older, newer, diverged', async () => {
    expect(await commitAncestry(at(repo), commits.B!, commits.B!)).toBe('same');
    expect(await commitAncestry(at(repo), commits.A!, commits.C!)).toBe('older');
    expect(await commitAncestry(at(repo), commits.C!, commits.A!)).toBe('newer');
    expect(await commitAncestry(at(repo), commits.R!, commits.C!)).toBe('diverged');
  });

  it('a deployed commit the clone does not have is unknown', async () => {
    expect(await commitAncestry(at(repo), commits.C!, 'ab'.repeat(20))).toBe('unknown');
  });

  it('in a shallow clone: a path git finds still proves it; no path proves nothing', async () => {
    const shallow = await mkdtemp(join(tmpdir(), 'skiff-outdated-shallow-'));
    dirs.push(shallow);
    await git(shallow, 'clone', '-q', '--depth', '1', '--no-single-branch', `file://${repo}`, '.');
    // Depth 1: every branch tip is there, without its parents.
    expect(await commitAncestry(at(shallow), commits.C!, commits.R!)).toBe('unknown');
    expect(await commitAncestry(at(shallow), commits.C!, commits.B!)).toBe('unknown'); // B is not in the clone
    await git(shallow, 'fetch', '-q', '--deepen', '1', 'origin', 'main');
    expect(await commitAncestry(at(shallow), commits.B!, commits.C!)).toBe('older');
    expect(await commitAncestry(at(shallow), commits.C!, commits.B!)).toBe('newer');
  });
});

describe('checkNotOutdated over a history', () => {
  const target = { env: 'production', release: 'app-production', namespace: 'app' } as ReleaseTarget;
  const record = (revision: number, status: ReleaseRecord['status'], gitFacts: RevisionGit) => ({ revision, status, git: gitFacts }) as ReleaseRecord;
  const setup = () => {
    const reporter = recordingReporter();
    return { reporter, ctx: runContext({ cwd: repo, kube: new MemoryKube(), reporter, registry: '127.0.0.1:1/x' }) };
  };
  const repoOf = { root: '', env };
  beforeAll(() => {
    repoOf.root = repo;
  });

  it('compares with the newest deployed revision, not a failed one after it', async () => {
    const { ctx } = setup();
    const history = [
      record(1, 'superseded', { commit: commits.A! }),
      record(2, 'deployed', { commit: commits.C! }),
      record(3, 'failed', { commit: commits.A! }),
    ];
    expect(await configFailure(checkNotOutdated(ctx, { repo: repoOf, target, history, candidate: { commit: commits.B! } }))).toBe(
      `production runs ${commits.C!.slice(0, 7)}, newer than ${commits.B!.slice(0, 7)}; --allow-older to deploy it anyway`,
    );
    // A history with no deployed revision has nothing to be older than.
    const check = await checkNotOutdated(ctx, {
      repo: repoOf,
      target,
      history: [record(1, 'failed', { commit: commits.C! })],
      candidate: { commit: commits.B! },
    });
    expect(check.deployedRevision).toBeUndefined();
  });

  it('--allow-older deploys it with a warning naming both commits', async () => {
    const { ctx, reporter } = setup();
    const history = [record(4, 'deployed', { commit: commits.C!, pipelineId: 812 })];
    await checkNotOutdated(ctx, { repo: repoOf, target, history, candidate: { commit: commits.A!, pipelineId: 809 }, allowOlder: true });
    expect(reporter.warnings).toEqual([
      `production runs ${commits.C!.slice(0, 7)} (pipeline 812), newer than ${commits.A!.slice(0, 7)} (pipeline 809): deploying it anyway (--allow-older)`,
    ]);
  });

  it('the recheck under the lock refuses when another pipeline deployed a newer commit meanwhile, and asks nothing again when nothing moved', async () => {
    const { ctx } = setup();
    const before = [record(1, 'deployed', { commit: commits.A! })];
    const check = await checkNotOutdated(ctx, { repo: repoOf, target, history: before, candidate: { commit: commits.B! } });
    expect(check.deployedRevision).toBe(1);
    await check.recheck(ctx, before);
    const moved = [record(1, 'superseded', { commit: commits.A! }), record(2, 'deployed', { commit: commits.C! })];
    expect(await configFailure(check.recheck(ctx, moved))).toMatch(/^production runs [0-9a-f]{7}, newer than [0-9a-f]{7}; --allow-older/);
  });
});

// The outdated-deploy guard end to end against MemoryKube: the real deploy and
// rollback actions on a committed project. What a user sees: the exit code and
// message, nothing applied, the history, the warning of --allow-older.
import { describe, expect, it } from 'vitest';
import { runDeploy } from '../../src/actions/deploy.js';
import { runHistory } from '../../src/actions/history.js';
import { runPlan } from '../../src/actions/plan.js';
import { runRollback } from '../../src/actions/rollback.js';
import { readCiContext } from '../../src/gitlab/ci-variables.js';
import { configFailure } from '../helpers/failure.js';
import { configMap, docs } from '../helpers/manifests.js';
import { commitFiles, orchestrationHarness, revisions, skiffYaml, useFakeRegistry } from '../helpers/orchestration.js';
import { git } from '../helpers/skiff.js';

const NS = 'guard-staging';
const registry = useFakeRegistry();

async function harness() {
  const h = await orchestrationHarness(
    { 'skiff.yaml': skiffYaml('guard', { staging: { namespace: NS } }), '.kube/app.yaml': docs(configMap('app', { version: 'a' })) },
    { registry, repository: 'guard' },
  );
  const head = async () => (await git(h.dir, 'rev-parse', 'HEAD')).stdout.trim();
  const a = await head();
  await commitFiles(h.dir, { '.kube/app.yaml': docs(configMap('app', { version: 'b' })) }, 'B');
  const b = await head();
  return { ...h, a, b, head };
}

const applies = (h: Awaited<ReturnType<typeof harness>>) => h.kube.calls.filter((c) => c.verb === 'apply' && !c.dryRun).length;

describe('deploy refuses a commit older than the one the release runs', () => {
  it('B deployed, then A (its parent) is exit 2 with both commits named, and nothing is applied or recorded', async () => {
    const h = await harness();
    expect(await runDeploy(h.ctx, { env: 'staging' })).toMatchObject({ revision: 1, status: 'deployed' });
    const record = (await runHistory(h.ctx, { env: 'staging' }))[0]!;
    expect(record.git).toMatchObject({ commit: h.b, ref: 'main', committedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) });
    expect(record.git.pipelineId).toBeUndefined();

    await git(h.dir, 'checkout', '-q', h.a);
    const before = applies(h);
    expect(await configFailure(runDeploy(h.ctx, { env: 'staging' }))).toBe(
      `staging runs ${h.b.slice(0, 7)}, newer than ${h.a.slice(0, 7)}; --allow-older to deploy it anyway`,
    );
    expect(applies(h)).toBe(before);
    expect(await revisions(h.ctx)).toEqual(['1 deployed']);
    expect(h.kube.object('ConfigMap', NS, 'app')?.data).toEqual({ version: 'b' });
  });

  it("SKIFF_ALLOW_OLDER=1 (a variable set in GitLab's Run job form) deploys A as --allow-older does; another value does not", async () => {
    const h = await harness();
    await runDeploy(h.ctx, { env: 'staging' });
    await git(h.dir, 'checkout', '-q', h.a);
    const withVar = (value: string) => ({ ...h.ctx, env: { ...h.ctx.env, SKIFF_ALLOW_OLDER: value } });
    expect(await configFailure(runDeploy(withVar('no'), { env: 'staging' }))).toMatch(/--allow-older to deploy it anyway$/);
    expect(await runDeploy(withVar('1'), { env: 'staging' })).toMatchObject({ revision: 2, status: 'deployed' });
    expect(h.reporter.warnings).toContain(`staging runs ${h.b.slice(0, 7)}, newer than ${h.a.slice(0, 7)}: deploying it anyway (SKIFF_ALLOW_OLDER)`);
  });

  it('--allow-older deploys A with a warning; the same commit again is a redeploy', async () => {
    const h = await harness();
    await runDeploy(h.ctx, { env: 'staging' });
    await git(h.dir, 'checkout', '-q', h.a);
    expect(await runDeploy(h.ctx, { env: 'staging', allowOlder: true })).toMatchObject({ revision: 2, status: 'deployed' });
    expect(h.reporter.warnings).toContain(`staging runs ${h.b.slice(0, 7)}, newer than ${h.a.slice(0, 7)}: deploying it anyway (--allow-older)`);
    expect(h.kube.object('ConfigMap', NS, 'app')?.data).toEqual({ version: 'a' });
    // A runs now: A again is no older than itself, and B is newer.
    expect(await runDeploy(h.ctx, { env: 'staging' })).toMatchObject({ revision: 3, status: 'deployed' });
    await git(h.dir, 'checkout', '-q', 'main');
    expect(await runDeploy(h.ctx, { env: 'staging' })).toMatchObject({ revision: 4, status: 'deployed' });
  });

  it('a commit of a branch that diverged (a review branch off A) deploys', async () => {
    const h = await harness();
    await runDeploy(h.ctx, { env: 'staging' });
    await git(h.dir, 'checkout', '-q', '-b', 'review', h.a);
    await commitFiles(h.dir, { '.kube/app.yaml': docs(configMap('app', { version: 'review' })) }, 'R');
    expect(await runDeploy(h.ctx, { env: 'staging' })).toMatchObject({ revision: 2, status: 'deployed' });
  });

  it("a rollback to A's revision is never refused", async () => {
    const h = await harness();
    await git(h.dir, 'checkout', '-q', h.a);
    await runDeploy(h.ctx, { env: 'staging' });
    await git(h.dir, 'checkout', '-q', 'main');
    await runDeploy(h.ctx, { env: 'staging' });
    expect(await runRollback(h.ctx, { env: 'staging', to: 1 })).toMatchObject({ revision: 3, status: 'deployed' });
    expect(h.kube.object('ConfigMap', NS, 'app')?.data).toEqual({ version: 'a' });
    expect((await runHistory(h.ctx, { env: 'staging' }))[2]!.git.commit).toBe(h.a);
  });

  it('in CI: the record holds the pipeline id and the ref, and the message names the pipelines', async () => {
    const h = await harness();
    const inPipeline = (id: number) => ({ ...h.ctx, ci: readCiContext({ CI: 'true', CI_PIPELINE_ID: String(id), CI_COMMIT_REF_NAME: 'main' }) });
    await runDeploy(inPipeline(812), { env: 'staging', autoRollback: false });
    expect((await runHistory(h.ctx, { env: 'staging' }))[0]!.git).toMatchObject({ commit: h.b, pipelineId: 812, ref: 'main' });
    await git(h.dir, 'checkout', '-q', h.a);
    expect(await configFailure(runDeploy(inPipeline(809), { env: 'staging', autoRollback: false }))).toBe(
      `staging runs ${h.b.slice(0, 7)} (pipeline 812), newer than ${h.a.slice(0, 7)} (pipeline 809); --allow-older to deploy it anyway`,
    );
  });

  it('a plan of an older commit is refused as its deploy would be; --allow-older plans it', async () => {
    const h = await harness();
    await runDeploy(h.ctx, { env: 'staging' });
    await git(h.dir, 'checkout', '-q', h.a);
    expect(await configFailure(runPlan(h.ctx, { env: 'staging' }))).toBe(
      `staging runs ${h.b.slice(0, 7)}, newer than ${h.a.slice(0, 7)}; --allow-older to deploy it anyway`,
    );
    expect((await runPlan(h.ctx, { env: 'staging', allowOlder: true })).plan.commit).toBe(h.a);
  });
});

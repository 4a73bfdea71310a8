// skiff plan and deploy --plan end to end against MemoryKube: the real actions
// on a committed project. What a user sees: the plan file and its text, the
// deploy that applies it, and each refusal (exit 2, one line naming what moved
// since the plan) with nothing applied and no revision recorded.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runDeploy } from '../../src/actions/deploy.js';
import { runPlan } from '../../src/actions/plan.js';
import { readCiContext } from '../../src/gitlab/ci-variables.js';
import { parsePlanFile } from '../../src/release/plan-file.js';
import { configFailure } from '../helpers/failure.js';
import { configMap, docs } from '../helpers/manifests.js';
import { commitFiles, orchestrationHarness, revisions, skiffYaml, useFakeRegistry } from '../helpers/orchestration.js';
import { git } from '../helpers/skiff.js';

const NS = 'plan-staging';
const PLAN = '.skiff/plan/staging.json';
const PASSWORD = 'pl4n-s3cret-value-1';
const NEW_PASSWORD = 'pl4n-s3cret-value-2';
const b64 = (s: string) => Buffer.from(s).toString('base64');
const registry = useFakeRegistry();

const secret = (key: string) =>
  ['apiVersion: v1', 'kind: Secret', 'metadata:', '  name: db', 'stringData:', `  ${key}: <%= values.db.password %>`, ''].join('\n');

/** Revision 1 deployed (ConfigMaps app and old, Secret db), then a commit that changes app and the password, adds flags and drops old. */
async function harness() {
  const h = await orchestrationHarness(
    {
      'skiff.yaml': skiffYaml('plan', { staging: { namespace: NS } }),
      '.kube/values.yaml': `db:\n  password: ${PASSWORD}\n`,
      '.kube/app.yaml.ejs': docs(configMap('app', { version: 'a' }), configMap('old'), secret('DATABASE_PASSWORD')),
    },
    { registry, repository: 'plan' },
  );
  expect(await runDeploy(h.ctx, { env: 'staging' })).toMatchObject({ revision: 1, status: 'deployed' });
  await commitFiles(h.dir, {
    '.kube/values.yaml': `db:\n  password: ${NEW_PASSWORD}\n`,
    '.kube/app.yaml.ejs': docs(configMap('app', { version: 'b' }), configMap('flags', { beta: 'on' }), secret('DATABASE_PASSWORD')),
  });
  const head = (await git(h.dir, 'rev-parse', 'HEAD')).stdout.trim();
  const realWrites = () => h.kube.writes().filter((c) => c.kind !== 'Lease').length;
  return { ...h, head, realWrites };
}

describe('skiff plan', () => {
  it('writes the plan and its text: each change with the resourceVersion it saw, the revision, the commit; no secret value in either', async () => {
    const h = await harness();
    const ctx = { ...h.ctx, ci: readCiContext({ CI: 'true', CI_PIPELINE_ID: '812', CI_JOB_ID: '5001', CI_COMMIT_REF_NAME: 'main' }) };
    const r = await runPlan(ctx, { env: 'staging' });
    expect(r.file).toBe(PLAN);
    expect(r.textFile).toBe('.skiff/plan/staging.txt');
    const json = await readFile(join(h.dir, PLAN), 'utf8');
    const text = await readFile(join(h.dir, r.textFile), 'utf8');
    const plan = parsePlanFile(json, PLAN, 'staging');
    expect(plan).toEqual(r.plan);
    expect(text).toBe(r.text);
    expect(plan).toMatchObject({ environment: 'staging', release: 'plan-staging', namespace: NS, commit: h.head, revision: 1, pipelineId: 812, jobId: 5001 });
    expect(plan.cluster).toEqual({ context: 'memory' });
    const live = (name: string) => h.kube.object('ConfigMap', NS, name)!.metadata.resourceVersion;
    expect(plan.changes.map((c) => [c.change, c.object, c.resourceVersion ?? null, c.fields ?? null])).toEqual([
      ['update', 'ConfigMap/app', live('app'), ['data.version']],
      ['create', 'ConfigMap/flags', null, null],
      ['update', 'Secret/db', h.kube.object('Secret', NS, 'db')!.metadata.resourceVersion, ['data.DATABASE_PASSWORD']],
      ['delete', 'ConfigMap/old', live('old'), null],
    ]);
    expect(text).toContain('# update ConfigMap/app: data.version');
    for (const s of [PASSWORD, NEW_PASSWORD, b64(PASSWORD), b64(NEW_PASSWORD)]) {
      expect(json).not.toContain(s);
      expect(text).not.toContain(s);
    }
    // Nothing was written to the cluster.
    expect(await revisions(h.ctx)).toEqual(['1 deployed']);
  });
});

describe('skiff deploy --plan', () => {
  it('applies an unchanged plan as an ordinary deploy: a new revision with the planned changes', async () => {
    const h = await harness();
    await runPlan(h.ctx, { env: 'staging' });
    expect(await runDeploy(h.ctx, { env: 'staging', plan: PLAN })).toMatchObject({ revision: 2, status: 'deployed' });
    expect(await revisions(h.ctx)).toEqual(['1 superseded', '2 deployed']);
    expect(h.kube.object('ConfigMap', NS, 'app')?.data).toEqual({ version: 'b' });
    expect(h.kube.object('ConfigMap', NS, 'flags')?.data).toEqual({ beta: 'on' });
    expect(h.kube.object('ConfigMap', NS, 'old')).toBeUndefined();
  });

  it('refuses a plan whose object changed in the cluster since, nothing applied', async () => {
    const h = await harness();
    await runPlan(h.ctx, { env: 'staging' });
    const app = h.kube.object('ConfigMap', NS, 'app')!;
    const before = String(app.metadata.resourceVersion);
    h.kube.seed({ ...app, metadata: { ...app.metadata, annotations: { ...app.metadata.annotations, touched: 'by hand' } } });
    const now = String(h.kube.object('ConfigMap', NS, 'app')!.metadata.resourceVersion);
    expect(now).not.toBe(before);
    const writes = h.realWrites();
    expect(await configFailure(runDeploy(h.ctx, { env: 'staging', plan: PLAN }))).toBe(
      `plan ${PLAN} is out of date, nothing applied: ConfigMap/app changed in the cluster since the plan (resourceVersion ${before}, now ${now}); run skiff plan staging again`,
    );
    expect(h.realWrites()).toBe(writes);
    expect(await revisions(h.ctx)).toEqual(['1 deployed']);
    expect(h.kube.object('ConfigMap', NS, 'app')?.data).toEqual({ version: 'a' });
  });

  it('checks the live objects again under the release lock: one changed while the deploy waited for it is refused', async () => {
    const h = await harness();
    await runPlan(h.ctx, { env: 'staging' });
    const flags = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'flags', namespace: NS }, data: { beta: 'off' } };
    // Another hand creates the planned ConfigMap as the deploy takes the lock.
    h.kube.rejectRequest((call) => {
      if (call.verb === 'create' && call.kind === 'Lease' && !h.kube.object('ConfigMap', NS, 'flags')) h.kube.seed(flags);
      return false;
    }, new Error('unused'));
    expect(await configFailure(runDeploy(h.ctx, { env: 'staging', plan: PLAN }))).toBe(
      `plan ${PLAN} is out of date, nothing applied: ConfigMap/flags was created since the plan; run skiff plan staging again`,
    );
    expect(await revisions(h.ctx)).toEqual(['1 deployed']);
    expect(h.kube.object('ConfigMap', NS, 'app')?.data).toEqual({ version: 'a' });
    expect(h.kube.objects('Lease').filter((l) => l.spec?.holderIdentity)).toEqual([]); // the lock was let go
  });

  it('refuses a plan of another commit, naming both, before anything is rendered', async () => {
    const h = await harness();
    await runPlan(h.ctx, { env: 'staging' });
    await commitFiles(h.dir, { '.kube/app.yaml.ejs': docs(configMap('app', { version: 'c' })) }, 'C');
    const c = (await git(h.dir, 'rev-parse', 'HEAD')).stdout.trim();
    const calls = h.kube.calls.length;
    expect(await configFailure(runDeploy(h.ctx, { env: 'staging', plan: PLAN }))).toBe(
      `plan ${PLAN} was made for commit ${h.head.slice(0, 7)}, this is ${c.slice(0, 7)}; run skiff plan staging again`,
    );
    expect(h.kube.calls.length).toBe(calls);
    expect(await revisions(h.ctx)).toEqual(['1 deployed']);
  });

  it('refuses a plan after another deploy moved the release, naming the revisions', async () => {
    const h = await harness();
    await runPlan(h.ctx, { env: 'staging' });
    await runDeploy(h.ctx, { env: 'staging' });
    expect(await configFailure(runDeploy(h.ctx, { env: 'staging', plan: PLAN }))).toBe(
      `plan ${PLAN} is out of date, nothing applied: release plan-staging is at revision 2 (deployed, commit ${h.head.slice(0, 7)} by orch-test), the plan saw revision 1; run skiff plan staging again`,
    );
    expect(await revisions(h.ctx)).toEqual(['1 superseded', '2 deployed']);
  });

  it('refuses when the objects rendered now differ from the planned ones (--set), naming them', async () => {
    const h = await harness();
    await runPlan(h.ctx, { env: 'staging' });
    expect(await configFailure(runDeploy(h.ctx, { env: 'staging', plan: PLAN, set: [`db.password=${NEW_PASSWORD}x`] }))).toMatch(
      new RegExp(
        `^plan ${PLAN.replace(/\./g, '\\.')}: the objects rendered now differ from the planned ones \\(Secret/db changed\\), though the commit is the same: .*; run skiff plan staging again$`,
      ),
    );
    expect(await revisions(h.ctx)).toEqual(['1 deployed']);
  });

  it('refuses a missing or damaged file, and a plan of another environment', async () => {
    const h = await harness();
    expect(await configFailure(runDeploy(h.ctx, { env: 'staging', plan: 'nope.json' }))).toBe(
      '--plan nope.json: cannot read it (no such file); make one with skiff plan staging',
    );
    await runPlan(h.ctx, { env: 'staging', out: 'elsewhere/p.json' });
    expect(await readFile(join(h.dir, 'elsewhere/p.txt'), 'utf8')).toContain('apply exactly this: skiff deploy staging --plan elsewhere/p.json');
    await commitFiles(h.dir, { 'skiff.yaml': skiffYaml('plan', { staging: { namespace: NS }, qa: { namespace: NS } }) }, 'qa');
    await runPlan(h.ctx, { env: 'staging' });
    expect(await configFailure(runDeploy(h.ctx, { env: 'qa', plan: PLAN }))).toBe(
      `plan ${PLAN} was made for environment staging, not qa; run skiff plan qa again`,
    );
  });
});

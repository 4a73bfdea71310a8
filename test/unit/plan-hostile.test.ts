// skiff deploy --plan with a plan file that is hostile or tampered with: it
// travels as a CI artifact that anyone with developer access could replace.
// A plan is only a gate: whatever it says, the deploy applies the objects it
// renders itself or nothing (exit 2, one line, no raw error, no hang).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readFile, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runDeploy } from '../../src/actions/deploy.js';
import { runDiff } from '../../src/actions/diff.js';
import { runPlan } from '../../src/actions/plan.js';
import { parsePlanFile, type PlanFile } from '../../src/release/plan-file.js';
import type { KubeObject } from '../../src/kube/objects.js';
import { maskDigest } from '../../src/secrets/material.js';
import { canonicalObject, renderedDigest } from '../../src/stages/plan-digest.js';
import { changesDrift } from '../../src/stages/plan-check.js';
import { configFailure } from '../helpers/failure.js';
import { configMap, deployment, docs } from '../helpers/manifests.js';
import { commitFiles, orchestrationHarness, revisions, skiffYaml, useFakeRegistry, type FakeRegistry } from '../helpers/orchestration.js';
import type { RunContext } from '../../src/context.js';
import { readCiContext } from '../../src/gitlab/ci-variables.js';

const NS = 'plan-staging';
const PLAN = '.skiff/plan/staging.json';
const registry = useFakeRegistry();

/** Revision 1 (ConfigMaps app and other), then a commit that changes app only. */
async function harness() {
  const h = await orchestrationHarness(
    {
      'skiff.yaml': skiffYaml('plan', { staging: { namespace: NS } }),
      '.kube/app.yaml.ejs': docs(configMap('app', { version: 'a' }), configMap('other', { x: '1' })),
    },
    { registry, repository: 'plan' },
  );
  expect(await runDeploy(h.ctx, { env: 'staging' })).toMatchObject({ revision: 1, status: 'deployed' });
  await commitFiles(h.dir, { '.kube/app.yaml.ejs': docs(configMap('app', { version: 'b' }), configMap('other', { x: '1' })) });
  const realWrites = () => h.kube.writes().filter((c) => c.kind !== 'Lease').length;
  /** The plan as skiff wrote it, changed by `edit`. */
  const tamper = async (edit: (p: PlanFile) => void) => {
    const p = JSON.parse(await readFile(join(h.dir, PLAN), 'utf8')) as PlanFile;
    edit(p);
    await writeFile(join(h.dir, PLAN), JSON.stringify(p));
  };
  return { ...h, realWrites, tamper };
}

/** The refusal, within `ms` (a read that waits for ever fails the test), with nothing applied. */
async function refusedQuickly(h: Awaited<ReturnType<typeof harness>>, plan: string, ms = 5000): Promise<string> {
  const writes = h.realWrites();
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`deploy --plan ${plan} still running after ${ms} ms`)), ms));
  const message = await configFailure(Promise.race([runDeploy(h.ctx, { env: 'staging', plan }), timeout]));
  expect(h.realWrites()).toBe(writes);
  expect(await revisions(h.ctx)).toEqual(['1 deployed']);
  return message;
}

describe('a plan file that is not a file skiff wrote', () => {
  it('refuses a FIFO and a device at once instead of waiting on them or reading without end', async () => {
    const h = await harness();
    execFileSync('mkfifo', [join(h.dir, 'fifo.json')]);
    expect(await refusedQuickly(h, 'fifo.json')).toBe('--plan fifo.json: cannot read it (not a regular file); make one with skiff plan staging');
    expect(await refusedQuickly(h, '/dev/zero')).toBe('--plan /dev/zero: cannot read it (not a regular file); make one with skiff plan staging');
  });

  it('does not quote a file that is not JSON: a path given by mistake can name a key file', async () => {
    const h = await harness();
    await writeFile(join(h.dir, 'key.json'), '8f3a1c9d2b7e4f60a1b2c3d4e5f60718\n');
    const message = await refusedQuickly(h, 'key.json');
    expect(message).toBe('plan key.json is not JSON (at character 1): not a plan file, or cut short; run skiff plan staging again');
    expect(message).not.toContain('8f3a1c');
  });

  it('refuses control characters and overlong names that a message would quote, and a deep document, in one line', async () => {
    const h = await harness();
    await runPlan(h.ctx, { env: 'staging' });
    const good = await readFile(join(h.dir, PLAN), 'utf8');
    const variants: Array<[string, (p: PlanFile) => void, RegExp]> = [
      ['environment', (p) => (p.environment = 'staging\r\u001b[0Ksection_end:1:x\r\u001b[0Kdeployed'), /is damaged: "environment" is not an environment name;/],
      ['object', (p) => (p.changes[0]!.object = 'ConfigMap/app\u001b[2K'), /is damaged: changes\[0\] does not name its object;/],
      ['resourceVersion', (p) => (p.changes[0]!.resourceVersion = 'x'.repeat(5000)), /changes\[0\] is an update without the resourceVersion it saw;/],
      ['change', (p) => ((p.changes[0] as { change: string }).change = 'y'.repeat(1 << 20)), /changes\[0\] has change of another kind, not create/],
      ['objectDigests', (p) => (p.objectDigests = { '/ConfigMap/x/\u202egone': `sha256:${'0'.repeat(64)}` }), /"objectDigests" is not object digests/],
      ['objectDigests value', (p) => (p.objectDigests = { '/ConfigMap/x/y': 'not a digest' }), /"objectDigests" is not object digests/],
    ];
    for (const [, edit, message] of variants) {
      await writeFile(join(h.dir, PLAN), good);
      await h.tamper(edit);
      const m = await refusedQuickly(h, PLAN);
      expect(m).toMatch(message);
      expect(m.length).toBeLessThan(300);
      // eslint-disable-next-line no-control-regex -- none may reach the log
      expect(m).not.toMatch(/[\u0000-\u001f\u202e]/);
    }
    const deep = `{"version":1,"x":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
    await writeFile(join(h.dir, PLAN), deep);
    expect(await refusedQuickly(h, PLAN)).toMatch(/is damaged: "environment" is missing;/);
  });
});

describe('a plan that shows less than the deploy would do', () => {
  it('refuses a plan edited to show no changes: the deploy compares the cluster itself', async () => {
    const h = await harness();
    await runPlan(h.ctx, { env: 'staging' });
    await h.tamper((p) => (p.changes = []));
    expect(await refusedQuickly(h, PLAN)).toBe(
      `plan ${PLAN} is out of date, nothing applied: ConfigMap/app would be updated (data.version), which the plan does not show; run skiff plan staging again`,
    );
    expect(h.kube.object('ConfigMap', NS, 'app')?.data).toEqual({ version: 'a' });
  });

  it('refuses a plan whose fields were edited, though its resourceVersions are right', async () => {
    const h = await harness();
    await runPlan(h.ctx, { env: 'staging' });
    await h.tamper((p) => (p.changes[0]!.fields = ['metadata.labels.tier']));
    expect(await refusedQuickly(h, PLAN)).toBe(
      `plan ${PLAN} is out of date, nothing applied: ConfigMap/app would be updated (data.version), the plan shows it updated (metadata.labels.tier); run skiff plan staging again`,
    );
  });

  it('refuses when an object the plan leaves as it is was changed by hand since: the deploy would undo that unseen', async () => {
    const h = await harness();
    const { plan } = await runPlan(h.ctx, { env: 'staging' });
    expect(plan.changes.map((c) => c.object)).toEqual(['ConfigMap/app']);
    const other = h.kube.object('ConfigMap', NS, 'other')!;
    h.kube.seed({ ...other, data: { x: 'hotfix' } });
    expect(await refusedQuickly(h, PLAN)).toBe(
      `plan ${PLAN} is out of date, nothing applied: ConfigMap/other would be updated (data.x), which the plan does not show; run skiff plan staging again`,
    );
    expect(h.kube.object('ConfigMap', NS, 'other')?.data).toEqual({ x: 'hotfix' });
  });

  it('checks every object it compared again under the lock: one the plan leaves as it is, changed while the deploy waited, is refused', async () => {
    const h = await harness();
    await runPlan(h.ctx, { env: 'staging' });
    const other = h.kube.object('ConfigMap', NS, 'other')!;
    const before = String(other.metadata.resourceVersion);
    // A colleague's kubectl edit lands as the deploy takes the lock.
    h.kube.rejectRequest((call) => {
      if (call.verb === 'create' && call.kind === 'Lease' && h.kube.object('ConfigMap', NS, 'other')?.data?.x === '1')
        h.kube.seed({ ...other, data: { x: 'hotfix' } });
      return false;
    }, new Error('unused'));
    const message = await refusedQuickly(h, PLAN);
    const now = String(h.kube.object('ConfigMap', NS, 'other')!.metadata.resourceVersion);
    expect(message).toBe(
      `plan ${PLAN} is out of date, nothing applied: ConfigMap/other changed in the cluster since the plan (resourceVersion ${before}, now ${now}); run skiff plan staging again`,
    );
    expect(h.kube.object('ConfigMap', NS, 'other')?.data).toEqual({ x: 'hotfix' });
    expect(h.kube.object('ConfigMap', NS, 'app')?.data).toEqual({ version: 'a' });
  });
});

describe('--adopt and a plan', () => {
  it('takes over objects only when the command line says --adopt too: a plan edited to adopt is refused', async () => {
    const h = await harness();
    await runPlan(h.ctx, { env: 'staging' });
    await h.tamper((p) => (p.adopt = true));
    expect(await refusedQuickly(h, PLAN)).toBe(
      `plan ${PLAN} takes over objects of other releases or tools (it was made with --adopt): deploy it with --adopt as well, or run skiff plan staging again without --adopt`,
    );
  });

  it('deploys a plan made with --adopt with --adopt, says so in its text, and refuses --adopt for a plan made without', async () => {
    const h = await harness();
    const r = await runPlan(h.ctx, { env: 'staging', adopt: true });
    expect(r.text.trimEnd().split('\n').at(-1)).toBe(`apply exactly this: skiff deploy staging --plan ${PLAN} --adopt`);
    expect(await refusedQuickly(h, PLAN)).toMatch(/takes over objects of other releases or tools/);
    expect(await runDeploy(h.ctx, { env: 'staging', plan: PLAN, adopt: true })).toMatchObject({ revision: 2, status: 'deployed' });
    await commitFiles(h.dir, { '.kube/app.yaml.ejs': docs(configMap('app', { version: 'c' }), configMap('other', { x: '1' })) }, 'c');
    await runPlan(h.ctx, { env: 'staging' });
    expect(await configFailure(runDeploy(h.ctx, { env: 'staging', plan: PLAN, adopt: true }))).toBe(
      `plan ${PLAN} was made without --adopt: deploy it without --adopt, or run skiff plan staging --adopt`,
    );
  });
});

describe('parsePlanFile', () => {
  it('reads back a plan with names as skiff writes them, RBAC names with colons included', () => {
    const p = {
      version: 1,
      environment: 'review/feature-x',
      release: 'shop-review-feature-x',
      namespace: 'shop',
      project: 'shop',
      commit: 'a'.repeat(40),
      cluster: { server: 'https://10.0.0.1:6443', context: 'group/agents:prod' },
      revision: 0,
      plannedAt: '2025-01-02T03:04:05.000Z',
      adopt: false,
      images: {},
      digest: `sha256:${'d'.repeat(64)}`,
      objectDigests: { 'rbac.authorization.k8s.io/ClusterRole//system:shop-reader': `sha256:${'e'.repeat(64)}` },
      charts: [],
      changes: [],
    };
    expect(parsePlanFile(JSON.stringify(p), 'p.json', 'review/feature-x')).toEqual(p);
  });
});

describe('a plan read by someone guessing a password', () => {
  const secret = ['apiVersion: v1', 'kind: Secret', 'metadata:', '  name: db', 'stringData:', '  password: <%= values.db.password %>', ''].join('\n');
  /** The Secret as skiff renders it (its labels and annotation), with a guessed password. */
  const guess = (password: string): KubeObject => ({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: 'db',
      namespace: NS,
      labels: { 'app.kubernetes.io/managed-by': 'skiff', 'skiff.io/release': 'plan-staging' },
      annotations: { 'skiff.io/release-namespace': NS },
    },
    stringData: { password },
  });

  it("cannot test a guess against a first deploy's plan (no salt yet), and that plan still deploys", async () => {
    const h = await orchestrationHarness(
      {
        'skiff.yaml': skiffYaml('plan', { staging: { namespace: NS } }),
        '.kube/values.yaml': 'db:\n  password: hunter2-pw\n',
        '.kube/app.yaml.ejs': docs(configMap('app'), secret),
      },
      { registry, repository: 'plan' },
    );
    const { plan } = await runPlan(h.ctx, { env: 'staging' });
    expect(plan.revision).toBe(0);
    const planned = plan.objectDigests[`/Secret/${NS}/db`];
    expect(planned).toMatch(/^sha256:/);
    // Whoever reads the plan computes the Secret's digest for each guess, with plain checksums or as skiff does without a salt.
    const plain = (pw: string) =>
      `sha256:${createHash('sha256')
        .update(JSON.stringify(canonicalObject(guess(pw), new Map(), maskDigest(undefined))))
        .digest('hex')}`;
    const asSkiff = (pw: string) => Object.values(renderedDigest([guess(pw)], new Map(), undefined).objects)[0];
    expect(['wrong-guess', 'hunter2-pw'].filter((pw) => plain(pw) === planned)).toEqual([]);
    // The right guess and a wrong one give the same digest: the password is not in it at all.
    expect(asSkiff('hunter2-pw')).toBe(asSkiff('wrong-guess'));
    expect(await runDeploy(h.ctx, { env: 'staging', plan: PLAN })).toMatchObject({ revision: 1, status: 'deployed' });
  });
});

describe("a release's old secret values", () => {
  const withUrl = (name: string, url: string) => ['apiVersion: v1', 'kind: ConfigMap', 'metadata:', `  name: ${name}`, 'data:', `  url: ${url}`, ''].join('\n');
  const OLD = 'old-db-pw-81723';

  it('are masked in the plan and diff of objects that drop them: a pruned object, a field rewritten without one', async () => {
    const h = await orchestrationHarness(
      {
        'skiff.yaml': skiffYaml('plan', { staging: { namespace: NS } }),
        '.kube/values.yaml': `db:\n  password: ${OLD}\n`,
        '.kube/app.yaml.ejs': docs(
          withUrl('gone', 'postgres://app:<%= values.db.password %>@db/app'),
          withUrl('kept', 'postgres://app:<%= values.db.password %>@db/app'),
        ),
      },
      { registry, repository: 'plan' },
    );
    await runDeploy(h.ctx, { env: 'staging' });
    // The password moves to a Secret; the URLs no longer hold it, and one ConfigMap goes.
    await commitFiles(h.dir, { '.kube/values.yaml': 'db:\n  host: db\n', '.kube/app.yaml.ejs': docs(withUrl('kept', 'postgres://app@db/app')) });
    const r = await runPlan(h.ctx, { env: 'staging' });
    expect(r.plan.changes.map((c) => `${c.change} ${c.object}`)).toEqual(['update ConfigMap/kept', 'delete ConfigMap/gone']);
    const diff = await runDiff(h.ctx, { env: 'staging' });
    const shown = [await readFile(join(h.dir, PLAN), 'utf8'), r.text, JSON.stringify(diff)];
    for (const text of shown) {
      expect(text).not.toContain(OLD);
      expect(text).not.toContain(Buffer.from(OLD).toString('base64'));
      expect(text).toContain('(masked sha256:');
    }
    expect(await runDeploy(h.ctx, { env: 'staging', plan: PLAN })).toMatchObject({ revision: 2, status: 'deployed' });
  });
});

describe('skiff plan --out', () => {
  it('refuses a folder, a symlink outside the repository and .git before asking the cluster, in one line, writing neither file', async () => {
    const h = await harness();
    const outside = await mkdtemp(join(tmpdir(), 'skiff-plan-out-'));
    await mkdir(join(h.dir, 'adir.json'));
    await mkdir(join(outside, 'x.txt'));
    await symlink('/etc/hostname', join(outside, 'p.json'));
    const gitConfig = await readFile(join(h.dir, '.git/config'), 'utf8');
    const cases: Array<[string, string]> = [
      ['adir.json', '--out: adir.json is a folder; name another plan file (<name>.json, its text goes beside it as <name>.txt)'],
      [join(outside, 'x.json'), `--out: ${join(outside, 'x.txt')} is a folder; name another plan file (<name>.json, its text goes beside it as <name>.txt)`],
      [
        join(outside, 'p.json'),
        `--out: ${join(outside, 'p.json')} is a symbolic link (skiff does not write through one); name another plan file (<name>.json, its text goes beside it as <name>.txt)`,
      ],
      ['.git/config', "--out .git/config: that is inside .git, the repository's own data; name a plan file elsewhere"],
    ];
    for (const [out, message] of cases) {
      const calls = h.kube.calls.length;
      expect(await configFailure(runPlan(h.ctx, { env: 'staging', out }))).toBe(message);
      expect(h.kube.calls.length).toBe(calls);
    }
    expect(await readFile(join(h.dir, '.git/config'), 'utf8')).toBe(gitConfig);
    await expect(lstat(join(outside, 'x.json'))).rejects.toThrow(/ENOENT/);
    expect(await readFile('/etc/hostname', 'utf8')).not.toContain('"version"');
  });
});

describe('the digest between two CI jobs of one commit', () => {
  const job = (h: { ctx: RunContext }, id: number, home: string, at: string): RunContext => ({
    ...h.ctx,
    env: { ...h.ctx.env, HOME: home },
    now: () => new Date(at),
    ci: readCiContext({
      USER: 'runner',
      CI: 'true',
      CI_PIPELINE_ID: '812',
      CI_JOB_ID: String(id),
      CI_PIPELINE_URL: 'https://gitlab.example/shop/-/pipelines/812',
      CI_JOB_URL: `https://gitlab.example/shop/-/jobs/${id}`,
      CI_COMMIT_REF_NAME: 'main',
    }),
  });

  it('is the same in the plan job and the deploy job (another job id and URL, runner HOME, time), and the plan deploys', async () => {
    const h = await harness();
    await runPlan(job(h, 5001, '/tmp/runner-a', '2025-03-01T10:00:00Z'), { env: 'staging' });
    const deploy = job(h, 5002, '/tmp/runner-b', '2025-03-01T10:40:00Z');
    expect(await runDeploy(deploy, { env: 'staging', plan: PLAN })).toMatchObject({ revision: 2, status: 'deployed' });
    expect(h.kube.object('ConfigMap', NS, 'app')?.metadata.annotations?.['skiff.io/job-url']).toBe('https://gitlab.example/shop/-/jobs/5002');
  });

  it('differs when a value given on the command line does, and when the registry holds another image for the commit', async () => {
    const registryNow = await mutableRegistry();
    try {
      const h = await orchestrationHarness(
        {
          'skiff.yaml': skiffYaml('plan', { staging: { namespace: NS } }),
          '.kube/values.yaml': 'replicas: 1\n',
          '.kube/app.yaml.ejs': docs(deployment('web', { image: '<%= images.app %>' }).replace('replicas: 1', 'replicas: <%= values.replicas %>')),
        },
        { registry: registryNow, repository: 'plan' },
      );
      await runPlan(h.ctx, { env: 'staging', set: ['replicas=2'] });
      expect(await configFailure(runDeploy(h.ctx, { env: 'staging', plan: PLAN, set: ['replicas=3'] }))).toMatch(
        /the objects rendered now differ from the planned ones \(Deployment\/web changed\)/,
      );
      await runPlan(h.ctx, { env: 'staging' });
      registryNow.digest = `sha256:${'cd'.repeat(32)}`; // the commit's image built and pushed again, not bit for bit the same
      expect(await configFailure(runDeploy(h.ctx, { env: 'staging', plan: PLAN }))).toMatch(
        /the objects rendered now differ from the planned ones \(Deployment\/web changed\)/,
      );
      expect(h.kube.objects('Deployment')).toEqual([]);
    } finally {
      await registryNow.close();
    }
  });
});

/** A registry that has every image, at a digest the test can change. */
async function mutableRegistry(): Promise<FakeRegistry> {
  const state = { digest: `sha256:${'ab'.repeat(32)}` };
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    if (/^\/v2\/.+\/manifests\/[^/]+$/.test(req.url ?? '')) {
      const body = JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { digest: state.digest, size: 2 },
        layers: [],
      });
      res.writeHead(200, {
        'docker-content-digest': state.digest,
        'content-type': 'application/vnd.oci.image.manifest.v1+json',
        'content-length': Buffer.byteLength(body),
      });
      res.end(req.method === 'GET' ? body : undefined);
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    get digest() {
      return state.digest;
    },
    set digest(d: string) {
      state.digest = d;
    },
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('changesDrift', () => {
  const id = (kind: string, name: string) => ({ apiVersion: 'v1', kind, name, namespace: 'shop' });
  const plan = (changes: PlanFile['changes']) => ({ changes }) as PlanFile;
  const planned = (kind: string, name: string, change: 'create' | 'update' | 'delete', resourceVersion?: string, fields?: string[]) => ({
    object: `${kind}/${name}`,
    change,
    ...id(kind, name),
    ...(resourceVersion === undefined ? {} : { resourceVersion }),
    ...(fields ? { fields } : {}),
    diff: '',
  });

  it('names a planned create that exists now, a planned delete or update of an object gone, and a planned update no longer needed', () => {
    const p = plan([planned('ConfigMap', 'new', 'create'), planned('Service', 'old', 'delete', '9'), planned('ConfigMap', 'a', 'update', '5', ['data.x'])]);
    expect(
      changesDrift(p, {
        changes: [],
        observed: [
          { object: 'ConfigMap/new', id: id('ConfigMap', 'new'), resourceVersion: '12' },
          { object: 'ConfigMap/a', id: id('ConfigMap', 'a'), resourceVersion: '5' },
        ],
      }),
    ).toEqual([
      'ConfigMap/new was created since the plan',
      'Service/old was deleted since the plan',
      'ConfigMap/a would not be updated now, as the plan shows',
    ]);
  });

  it("is empty when the deploy finds the plan's changes, fields and resourceVersions", () => {
    const p = plan([planned('ConfigMap', 'a', 'update', '5', ['data.x']), planned('ConfigMap', 'new', 'create')]);
    const now = {
      changes: [
        { object: 'ConfigMap/new', change: 'create' as const, id: id('ConfigMap', 'new') },
        { object: 'ConfigMap/a', change: 'update' as const, id: id('ConfigMap', 'a'), fields: ['data.x'] },
      ],
      observed: [
        { object: 'ConfigMap/a', id: id('ConfigMap', 'a'), resourceVersion: '5' },
        { object: 'ConfigMap/new', id: id('ConfigMap', 'new') },
      ],
    };
    expect(changesDrift(p, now)).toEqual([]);
  });
});

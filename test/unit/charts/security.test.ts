// Helm charts as an attacker would use them: a hostile chart in a registry (or
// a hostile repository) against skiff's rules. skiff takes over, applies over,
// prunes or deletes nothing of another release; decrypted secret values reach
// no output, log or file left behind; bad input is a one-line exit-2 error with
// no side effects. Each test is one way in; the real helm renders, the cluster
// is a MemoryKube, charts come from a chart repository on 127.0.0.1.
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runChartsUpdate } from '../../../src/actions/charts-update.js';
import { runDeploy } from '../../../src/actions/deploy.js';
import { runHistory } from '../../../src/actions/history.js';
import { runRender } from '../../../src/actions/render.js';
import { helmTemplate } from '../../../src/charts/helm.js';
import { chartObjects } from '../../../src/charts/helm-output.js';
import { encryptSecret, parseSecretKey } from '../../../src/secrets/crypto.js';
import { configFailure } from '../../helpers/failure.js';
import { helm, helmBinary } from '../../helpers/helm.js';
import { commitFiles, orchestrationHarness, type OrchestrationHarness, readyOnApply, skiffYaml, useFakeRegistry } from '../../helpers/orchestration.js';

const NS = 'sec-staging';

const registry = useFakeRegistry();
let work: string;
let n = 0;

// ---- a chart repository on 127.0.0.1 (index.yaml and archives made by helm package) ----

let server: Server;
let repoUrl: string;
/** path below /repo/ → body */
const served = new Map<string, Buffer>();
/** chart name → version → archive */
const published = new Map<string, Map<string, Buffer>>();

function indexYaml(): string {
  const lines = ['apiVersion: v1', 'entries:'];
  for (const [name, versions] of published) {
    lines.push(`  ${name}:`);
    for (const [version, tgz] of versions) {
      lines.push(
        `  - name: ${name}`,
        `    version: ${version}`,
        `    digest: ${createHash('sha256').update(tgz).digest('hex')}`,
        `    urls: [${name}-${version}.tgz]`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

/** Packages a chart (Chart.yaml added unless given) with the real helm and serves it in the repository, replacing what was there. */
function publish(name: string, version: string, files: Record<string, string>): void {
  const dir = join(work, `chart${++n}`, name);
  const all = { 'Chart.yaml': `apiVersion: v2\nname: ${name}\nversion: ${version}\n`, ...files };
  for (const [path, content] of Object.entries(all)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  const out = join(work, `out${++n}`);
  helm(['package', dir, '-d', out], join(work, 'helm-home'));
  const tgz = readFileSync(join(out, `${name}-${version}.tgz`));
  if (!published.has(name)) published.set(name, new Map());
  published.get(name)!.set(version, tgz);
  served.set(`${name}-${version}.tgz`, tgz);
  served.set('index.yaml', Buffer.from(indexYaml()));
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'skiff-chart-security-'));
  server = createServer((req, res) => {
    const body = served.get((req.url ?? '').replace(/^\/repo\//, ''));
    res.writeHead(body ? 200 : 404);
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  repoUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/repo`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(work, { recursive: true, force: true });
});

// ---- projects ----

const KEY_HEX = '5a'.repeat(32);
const SECRET_KEY = parseSecretKey(KEY_HEX, 'test');
const DB_PASSWORD = 'pg-Secret-Value-1';
const SECRET_VALUES = `db:\n  password: ${encryptSecret(DB_PASSWORD, SECRET_KEY, { value: ['db', 'password'], valuesFile: '.kube/secret-values.yaml' })}\n`;

const CONFIG_MAP = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  a: b\n';

/** skiff.yaml of project sec (environment staging in sec-staging), with these charts: name → YAML lines of its entry. */
function skiffYamlWith(charts: Record<string, string[]> = {}): string {
  const entries = Object.entries(charts);
  if (!entries.length) return skiffYaml('sec', { staging: { namespace: NS } });
  return `${skiffYaml('sec', { staging: { namespace: NS } })}charts:\n${entries.map(([name, lines]) => `  ${name}:\n${lines.map((l) => `    ${l}\n`).join('')}`).join('')}`;
}

/** A registry chart of the repository on 127.0.0.1, as a charts: entry. */
const fromRepo = (name: string, version = '0.1.0', more: string[] = []) => [`chart: ${repoUrl}#${name}`, `version: ${version}`, ...more];

/** A committed project with helm, a private chart cache and the secret key; skiff.lock made by "skiff charts update" and committed. */
async function project(files: Record<string, string>, opts: { lock?: boolean } = {}): Promise<OrchestrationHarness> {
  const h = await orchestrationHarness({ '.kube/app.yaml': CONFIG_MAP, ...files }, { registry, repository: 'sec' });
  readyOnApply(h.kube);
  Object.assign(h.ctx.env, { SKIFF_HELM: helmBinary(), SKIFF_CACHE_DIR: join(work, `cache${++n}`), SKIFF_SECRET_KEY: KEY_HEX, HOME: join(h.dir, '.no-home') });
  if (opts.lock !== false && (/^charts:/m.test(files['skiff.yaml'] ?? '') || /repository: "http/.test(files['.helm/Chart.yaml'] ?? ''))) {
    await runChartsUpdate(h.ctx, {});
    await commitFiles(h.dir, {}, 'skiff.lock');
  }
  return h;
}

// ---- tests ----

describe('a chart from a registry takes over nothing', () => {
  it('its skiff.io/adopt annotation does not take over an object made outside the release: refused as without it, the object untouched', async () => {
    publish('grab', '0.1.0', {
      'templates/cm.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\n  annotations:\n    skiff.io/adopt: "true"\ndata:\n  owner: grab\n',
    });
    const h = await project({ 'skiff.yaml': skiffYamlWith({ grab: fromRepo('grab') }) });
    h.kube.seed({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'shared', namespace: NS }, data: { owner: 'someone else' } });

    const message = await configFailure(runDeploy(h.ctx, { env: 'staging' }));
    expect(message).toMatch(
      /^chart grab: templates\/cm\.yaml:1: ConfigMap\/sec-staging\/shared already exists and belongs to no release: it was made outside skiff/,
    );
    expect(h.kube.object('ConfigMap', NS, 'shared')?.data).toEqual({ owner: 'someone else' });
    expect(h.kube.writes()).toEqual([]);
    expect(h.reporter.warnings).toContain(
      'chart grab: templates/cm.yaml: ConfigMap/shared: annotation skiff.io/adopt is ignored in a chart from a registry or a subchart; take an object over with --adopt',
    );
  });

  it("the project's own chart (.helm/templates) may still adopt, as .kube/ may", async () => {
    const h = await project({
      'skiff.yaml': skiffYamlWith(),
      '.helm/Chart.yaml': 'apiVersion: v2\nname: shop\nversion: 1.0.0\n',
      '.helm/templates/cm.yaml':
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\n  annotations:\n    skiff.io/adopt: "true"\ndata:\n  owner: shop\n',
    });
    h.kube.seed({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'shared', namespace: NS }, data: { owner: 'someone else' } });
    expect(await runDeploy(h.ctx, { env: 'staging' })).toMatchObject({ status: 'deployed' });
    expect(h.kube.object('ConfigMap', NS, 'shared')?.data).toEqual({ owner: 'shop' });
  });
  it("a subchart's skiff.io/adopt is dropped in any chart, the own chart's own templates keep theirs", () => {
    const doc = (name: string) => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\n  annotations:\n    skiff.io/adopt: "true"\n`;
    const files = [
      { file: '.helm/charts/dep/templates/x.yaml', template: '', text: doc('dep') },
      { file: '.helm/templates/x.yaml', template: '', text: doc('own') },
      { file: 'chart web: charts/dep/templates/x.yaml', template: '', text: doc('web-dep') },
      { file: 'chart web: templates/x.yaml', template: '', text: doc('web') },
    ];
    const adopts = chartObjects(files, []).map((p) => [p.manifest.object.metadata.name, p.manifest.object.metadata.annotations?.['skiff.io/adopt']]);
    expect(adopts).toEqual([
      ['dep', undefined],
      ['own', 'true'],
      ['web-dep', undefined],
      ['web', 'true'],
    ]);
  });
});

describe('temporary files with values for helm', () => {
  /** A stand-in helm that says where it was given values, then waits (as a slow helm would). */
  function slowHelm(): { helm: string; mark: string } {
    const dir = join(work, `slow-helm${++n}`);
    mkdirSync(dir);
    const mark = join(dir, 'args');
    const helmPath = join(dir, 'helm');
    writeFileSync(helmPath, `#!/bin/sh\nprintf '%s\\n' "$@" > "${mark}.tmp" && mv "${mark}.tmp" "${mark}"\nexec sleep 15\n`);
    chmodSync(helmPath, 0o755);
    return { helm: helmPath, mark };
  }

  const OWN = {
    'skiff.yaml': skiffYamlWith(),
    '.kube/secret-values.yaml': SECRET_VALUES,
    '.helm/Chart.yaml': 'apiVersion: v2\nname: shop\nversion: 1.0.0\n',
    '.helm/templates/cm.yaml': CONFIG_MAP.replace('app', 'own'),
  };

  /** The --values files helm was given, once it has started. */
  async function valuesGiven(mark: string): Promise<string[]> {
    for (let i = 0; i < 200 && !existsSync(mark); i++) await new Promise((r) => setTimeout(r, 25));
    const args = readFileSync(mark, 'utf8').split('\n');
    return args.flatMap((a, i) => (args[i - 1] === '--values' ? [a] : []));
  }

  it('Ctrl-C stops helm at once, and the values it was given (decrypted secret values among them) are removed', async () => {
    const abort = new AbortController();
    const h = await orchestrationHarness({ '.kube/app.yaml': CONFIG_MAP, ...OWN }, { registry, repository: 'sec', signal: abort.signal });
    const { helm: fake, mark } = slowHelm();
    Object.assign(h.ctx.env, { SKIFF_HELM: fake, SKIFF_SECRET_KEY: KEY_HEX });
    const started = Date.now();
    const render = runRender(h.ctx, { env: 'staging' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    const values = await valuesGiven(mark);
    expect(values.length).toBeGreaterThan(0);
    expect(readFileSync(values.at(-1)!, 'utf8')).toContain(DB_PASSWORD);
    expect(statSync(values.at(-1)!).mode & 0o077).toBe(0);
    abort.abort(new Error('SIGINT'));
    expect(await render).toBeInstanceOf(Error);
    expect(Date.now() - started).toBeLessThan(5000);
    for (const v of values) expect(existsSync(v)).toBe(false);
  }, 20_000);

  it('a second Ctrl-C (skiff exits at once) still removes them: the folder goes on process exit', async () => {
    const abort = new AbortController();
    const h = await orchestrationHarness({ '.kube/app.yaml': CONFIG_MAP, ...OWN }, { registry, repository: 'sec', signal: abort.signal });
    const { helm: fake, mark } = slowHelm();
    Object.assign(h.ctx.env, { SKIFF_HELM: fake, SKIFF_SECRET_KEY: KEY_HEX });
    const before = process.listeners('exit');
    const render = runRender(h.ctx, { env: 'staging' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    const values = await valuesGiven(mark);
    expect(values.length).toBeGreaterThan(0);
    // What process.exit runs: the listeners skiff added while helm ran.
    const added = process.listeners('exit').filter((l) => !before.includes(l));
    for (const l of added) l(130);
    const left = values.filter((v) => existsSync(v));
    abort.abort(new Error('SIGINT'));
    await render;
    expect(left).toEqual([]);
  }, 20_000);
});

describe('the chart cache', () => {
  it('an archive swapped in the cache after skiff checked it (a cache folder others write) is not what helm renders', async () => {
    publish('genuine', '0.1.0', { 'templates/cm.yaml': CONFIG_MAP.replace('app', 'genuine') });
    const h = await project({ 'skiff.yaml': skiffYamlWith({ genuine: fromRepo('genuine') }) });
    publish('genuine', '0.2.0', { 'templates/cm.yaml': CONFIG_MAP.replace('app', 'planted') });
    const planted = join(work, `planted${++n}.tgz`);
    writeFileSync(planted, published.get('genuine')!.get('0.2.0')!);
    // helm, run the moment after skiff checked the cached archive: someone else writes the cache first.
    const fake = join(work, `racing-helm${++n}`);
    writeFileSync(fake, `#!/bin/sh\nfor f in "${h.ctx.env.SKIFF_CACHE_DIR}"/charts/*.tgz; do cp "${planted}" "$f"; done\nexec "${helmBinary()}" "$@"\n`);
    chmodSync(fake, 0o755);
    h.ctx.env.SKIFF_HELM = fake;
    const r = await runRender(h.ctx, { env: 'staging' });
    expect(r.manifests.map((m) => m.object.metadata.name).sort()).toEqual(['app', 'genuine']);
  });
});

describe('chart names and files', () => {
  it('a chart named "own" beside the project\'s own chart renders both (no clash of skiff\'s temporary files)', async () => {
    const h = await project({
      'skiff.yaml': skiffYamlWith({ own: ['chart: charts/own'] }),
      'charts/own/Chart.yaml': 'apiVersion: v2\nname: own\nversion: 0.1.0\n',
      'charts/own/templates/cm.yaml': CONFIG_MAP.replace('app', 'from-chart'),
      '.helm/Chart.yaml': 'apiVersion: v2\nname: shop\nversion: 1.0.0\n',
      '.helm/templates/cm.yaml': CONFIG_MAP.replace('app', 'from-helm'),
    });
    const r = await runRender(h.ctx, { env: 'staging' });
    expect(r.manifests.map((m) => m.object.metadata.name).sort()).toEqual(['app', 'from-chart', 'from-helm']);
  });

  it("the own chart's name from Chart.yaml reaches history as Helm reads it: no terminal control characters", async () => {
    const h = await project({
      'skiff.yaml': skiffYamlWith(),
      '.helm/Chart.yaml': 'apiVersion: v2\nname: "shop\\e]0;owned\\a\\e[2J"\nversion: 1.0.0\n',
      '.helm/templates/cm.yaml': CONFIG_MAP.replace('app', 'own'),
    });
    expect(await runDeploy(h.ctx, { env: 'staging' })).toMatchObject({ status: 'deployed' });
    const [record] = await runHistory(h.ctx, { env: 'staging' });
    expect(record?.charts?.map((c) => c.name)).toEqual(['shop]0;owned[2J']);
  });

  it('one file:// dependency used twice under two aliases (as Helm allows) is vendored once', async () => {
    const h = await project({
      'skiff.yaml': skiffYamlWith(),
      '.helm/Chart.yaml': [
        'apiVersion: v2',
        'name: shop',
        'version: 1.0.0',
        'dependencies:',
        '- {name: sub, version: 0.1.0, repository: "file://../sub", alias: one}',
        '- {name: sub, version: 0.1.0, repository: "file://../sub", alias: two}',
        '',
      ].join('\n'),
      'sub/Chart.yaml': 'apiVersion: v2\nname: sub\nversion: 0.1.0\n',
      'sub/templates/cm.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.who }}\ndata:\n  a: b\n',
      '.helm/values.yaml': 'one:\n  who: first\ntwo:\n  who: second\n',
    });
    const r = await runRender(h.ctx, { env: 'staging' });
    expect(r.manifests.map((m) => m.object.metadata.name).sort()).toEqual(['app', 'first', 'second']);
  });

  it('a file:// dependency whose name is half there in .helm/charts/ is exit 2, not a crash', async () => {
    const h = await project({
      'skiff.yaml': skiffYamlWith(),
      '.helm/Chart.yaml': 'apiVersion: v2\nname: shop\nversion: 1.0.0\ndependencies:\n- {name: sub, version: 0.1.0, repository: "file://../sub"}\n',
      '.helm/charts/sub/values.yaml': 'a: 1\n',
      'sub/Chart.yaml': 'apiVersion: v2\nname: sub\nversion: 0.1.0\n',
      'sub/values.yaml': 'a: 2\n',
      'sub/templates/cm.yaml': CONFIG_MAP.replace('app', 'sub'),
    });
    expect(await configFailure(runRender(h.ctx, { env: 'staging' }))).toBe(
      '.helm/Chart.yaml: dependency sub: .helm/charts/sub/ is partly there already (in .helm/charts/, or from another dependency of that name); vendor the whole chart there, or remove what is there so skiff vendors it',
    );
  });
});

describe("helm's environment", () => {
  it("HELM_DEBUG (or any HELM_* of the user's Helm set-up) does not change what skiff tells of a template error", async () => {
    const dir = join(work, `debug${++n}`, 'web');
    mkdirSync(join(dir, 'templates'), { recursive: true });
    writeFileSync(join(dir, 'Chart.yaml'), 'apiVersion: v2\nname: web\nversion: 0.1.0\n');
    writeFileSync(join(dir, 'templates/x.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.a.b }}\n');
    const request = {
      helm: helmBinary(),
      release: 'rel',
      namespace: 'shop',
      chart: dir,
      valuesFiles: [],
      label: 'chart web',
      home: join(work, `home${++n}`),
      env: { ...process.env, HELM_DEBUG: 'true' },
    };
    expect(await configFailure(helmTemplate(request))).toBe('chart web: templates/x.yaml:4: nil pointer evaluating interface {}.b (at <.Values.a.b>)');
  });
});

describe("helm's output", () => {
  it('a chart that renders more than skiff reads is exit 2 naming the chart, not a failure to run helm', async () => {
    const dir = join(work, `big-helm${++n}`);
    mkdirSync(dir);
    const fake = join(dir, 'helm');
    writeFileSync(fake, '#!/bin/sh\nhead -c 3000000 /dev/zero | tr "\\000" a\n');
    chmodSync(fake, 0o755);
    const request = {
      helm: fake,
      release: 'rel',
      namespace: 'shop',
      chart: dir,
      valuesFiles: [],
      label: 'chart web',
      home: join(dir, 'home'),
      env: process.env,
    };
    expect(await configFailure(helmTemplate({ ...request, maxOutputBytes: 1 << 20 }))).toBe(
      'chart web: helm template printed more than 1 MB; a chart renders objects, not data: check its templates and values',
    );
  });
});

describe('what already holds', () => {
  it("a chart's object that claims another release's labels is this release's, as every rendered object is", async () => {
    publish('claim', '0.1.0', {
      'templates/cm.yaml': [
        'apiVersion: v1',
        'kind: ConfigMap',
        'metadata:',
        '  name: claimed',
        '  labels: {app.kubernetes.io/managed-by: Helm, skiff.io/release: sec-other}',
        '  annotations: {skiff.io/release-namespace: elsewhere}',
        '',
      ].join('\n'),
    });
    const h = await project({ 'skiff.yaml': skiffYamlWith({ claim: fromRepo('claim') }) });
    const r = await runRender(h.ctx, { env: 'staging' });
    const claimed = r.manifests.find((m) => m.object.metadata.name === 'claimed')!.object.metadata;
    expect([
      claimed.labels?.['app.kubernetes.io/managed-by'],
      claimed.labels?.['skiff.io/release'],
      claimed.annotations?.['skiff.io/release-namespace'],
    ]).toEqual(['skiff', 'sec-staging', NS]);
  });

  it('skiff charts update does not write skiff.lock through a symbolic link the repository committed', async () => {
    publish('linked', '0.1.0', { 'templates/cm.yaml': CONFIG_MAP.replace('app', 'linked') });
    const outside = join(work, `outside${++n}.txt`);
    writeFileSync(outside, "not skiff's\n");
    const h = await project({ 'skiff.yaml': skiffYamlWith({ linked: fromRepo('linked') }) }, { lock: false });
    symlinkSync(outside, join(h.dir, 'skiff.lock'));
    await commitFiles(h.dir, {}, 'a link');
    expect(await configFailure(runChartsUpdate(h.ctx, {}))).toBe(
      'skiff.lock is a symbolic link; skiff does not write through symbolic links in the repository: remove it and run again',
    );
    expect(readFileSync(outside, 'utf8')).toBe("not skiff's\n");
  });
});

describe("what a chart cannot reach: the namespace, other releases' records, printed secrets, swapped dependencies", () => {
  it("a chart's hook with hook-delete-policy does not delete the release's own namespace (records, lock and all), as prune would not", async () => {
    publish('nsdel', '0.1.0', {
      'templates/hook.yaml': [
        'apiVersion: v1',
        'kind: Namespace',
        'metadata:',
        '  name: {{ .Release.Namespace }}',
        '  annotations:',
        '    helm.sh/hook: post-install,post-upgrade',
        '    helm.sh/hook-delete-policy: hook-succeeded',
        '',
      ].join('\n'),
    });
    const h = await project({ 'skiff.yaml': skiffYamlWith({ nsdel: fromRepo('nsdel') }) });
    await runDeploy(h.ctx, { env: 'staging' }).catch(() => undefined);
    expect(h.kube.object('Namespace', undefined, NS)).toBeDefined();
    expect(h.kube.object('ConfigMap', NS, 'app')).toBeDefined();
    expect((await runHistory(h.ctx, { env: 'staging' })).length).toBeGreaterThan(0);
  });

  it("a chart cannot write a release record of another release (its history and rollback would be the chart's)", async () => {
    const forged = {
      name: 'sec-other',
      namespace: NS,
      project: 'sec',
      revision: 7,
      status: 'deployed',
      manifests: [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'planted', namespace: NS } }],
      values: {},
    };
    const data = gzipSync(Buffer.from(JSON.stringify(forged))).toString('base64');
    publish('forge', '0.1.0', {
      'templates/record.yaml': [
        'apiVersion: v1',
        'kind: Secret',
        'type: skiff.io/release.v1',
        'metadata:',
        '  name: skiff.release.v1.sec-other.v7',
        '  labels: {owner: skiff, name: sec-other, status: deployed, version: "7"}',
        '  annotations: {skiff.io/parts: "1"}',
        'data:',
        `  release: ${data}`,
        '',
      ].join('\n'),
    });
    const yaml = `${skiffYaml('sec', { staging: { namespace: NS }, other: { namespace: NS, release: 'sec-other' } })}charts:\n  forge:\n    chart: ${repoUrl}#forge\n    version: 0.1.0\n    environments: [staging]\n`;
    const h = await project({ 'skiff.yaml': yaml });
    await runDeploy(h.ctx, { env: 'staging' }).catch(() => undefined);
    expect((await runHistory(h.ctx, { env: 'other' })).map((r) => r.revision)).toEqual([]);
  });

  it("a decrypted secret value in a chart's test hook is not printed in the warning that it is not deployed (a deploy masks its log, a render's warnings are not)", async () => {
    publish('leak', '0.1.0', {
      'templates/hook.yaml':
        'apiVersion: v1\nkind: Pod\nmetadata:\n  name: t-{{ .Values.password }}\n  annotations:\n    helm.sh/hook: test\nspec:\n  containers: [{name: c, image: busybox}]\n',
    });
    const h = await project({
      'skiff.yaml': skiffYamlWith({ leak: fromRepo('leak', '0.1.0', ['values: .kube/charts/leak.yaml.ejs']) }),
      '.kube/secret-values.yaml': SECRET_VALUES,
      '.kube/charts/leak.yaml.ejs': 'password: <%= values.db.password %>\n',
    });
    await runRender(h.ctx, { env: 'staging' });
    expect(h.reporter.warnings.join('\n')).toContain('Helm hook "test" is not run by skiff');
    expect(h.reporter.warnings.join('\n')).not.toContain(DB_PASSWORD);
  });

  // Chart.lock pins versions only; skiff.lock pins each .helm/ registry dependency's archive digest.
  it('a registry dependency of .helm/ that changed under its locked version is exit 2, as a chart of skiff.lock is', async () => {
    publish('dep', '0.1.0', { 'templates/cm.yaml': CONFIG_MAP.replace('app', 'dep').replace('a: b', 'content: first') });
    const h = await project({
      'skiff.yaml': skiffYamlWith(),
      '.helm/Chart.yaml': `apiVersion: v2\nname: shop\nversion: 1.0.0\ndependencies:\n- {name: dep, version: 0.1.0, repository: "${repoUrl}"}\n`,
    });
    const first = await runRender(h.ctx, { env: 'staging', showSecrets: true });
    expect(first.manifests.find((m) => m.object.metadata.name === 'dep')?.object.data).toEqual({ content: 'first' });
    publish('dep', '0.1.0', { 'templates/cm.yaml': CONFIG_MAP.replace('app', 'dep').replace('a: b', 'content: swapped') });
    // The cache holds what skiff.lock pins: the swapped archive is only seen by a runner without it.
    const cached = await runRender(h.ctx, { env: 'staging', showSecrets: true });
    expect(cached.manifests.find((m) => m.object.metadata.name === 'dep')?.object.data).toEqual({ content: 'first' });
    h.ctx.env.SKIFF_CACHE_DIR = join(work, `cache${++n}`);
    expect(await configFailure(runRender(h.ctx, { env: 'staging' }))).toMatch(/changed under the same version/);
  });
});

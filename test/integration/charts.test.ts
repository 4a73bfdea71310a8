import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { kubeconfigPath, kubectl, kubectlJson, requireCluster, uniqueSuffix } from '../helpers/cluster.js';
import { helm, helmBinary } from '../helpers/helm.js';
import { commitAll, committedProject, git, skiff, uniqueRegistry } from '../helpers/skiff.js';

// Helm charts in a release (issue 20), on the real cluster and the local OCI registry:
// a third-party chart beside .kube/ (deploy, bump, diff, history, rollback, errors, prune),
// and a .helm/ chart written for Helm/werf (dependencies, hooks, a CRD) deployed unchanged.

const registry = uniqueRegistry();
let work: string;
let cacheDir: string;
const helmHome = () => join(work, 'helm-home');
const baseEnv = () => ({ KUBECONFIG: kubeconfigPath(), SKIFF_REGISTRY: registry, SKIFF_CACHE_DIR: cacheDir, SKIFF_HELM: helmBinary() });

interface ChartRecord {
  name: string;
  chart: string;
  version: string;
  digest: string;
}
interface Revision {
  revision: number;
  status: string;
  description: string;
  charts?: ChartRecord[];
}

const dockerfile = 'FROM skiff-base/busybox:1\nRUN mkdir /www && echo ok > /www/index.html\nCMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n';
const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

async function writeFiles(dir: string, files: Record<string, string>) {
  for (const [path, text] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), text);
  }
}

/** Packages a chart folder made of `files` and pushes it with `helm push` under oci://<repository>; returns the archive's digest. */
async function pushChart(repository: string, name: string, version: string, files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(work, `${name}-${version}-`));
  await writeFiles(join(dir, name), { 'Chart.yaml': `apiVersion: v2\nname: ${name}\nversion: ${version}\n`, ...files });
  helm(['package', join(dir, name), '-d', join(dir, 'out')], helmHome());
  const tgz = join(dir, 'out', `${name}-${version}.tgz`);
  helm(['push', tgz, `oci://${repository}`, '--plain-http'], helmHome());
  return sha256(await readFile(tgz));
}

async function runSkiff(dir: string, args: string[], env: Record<string, string | undefined> = {}) {
  return skiff(args, { cwd: dir, env: { ...baseEnv(), ...env } });
}

/** What a failed command must not have changed: the release's revisions and the namespace's objects (generation, else resourceVersion). */
async function clusterState(dir: string, namespace: string) {
  const h = await runSkiff(dir, ['history', 'testing', '--namespace', namespace, '-o', 'json']);
  const objects = await kubectlJson(['-n', namespace, 'get', 'configmaps,deployments,services,jobs']);
  return {
    revisions: (JSON.parse(h.stdout) as Revision[]).map((r) => `${r.revision} ${r.status}`),
    objects: (objects.items as Array<{ kind: string; metadata: { name: string; generation?: number; resourceVersion: string } }>)
      .map((o) => `${o.kind}/${o.metadata.name}@${o.metadata.generation ?? o.metadata.resourceVersion}`)
      .sort(),
  };
}

beforeAll(async () => {
  await requireCluster();
  work = await mkdtemp(join(tmpdir(), 'skiff-charts-test-'));
  cacheDir = join(work, 'cache');
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

// ---- A third-party chart beside .kube/

/** The "webapp" chart: _helpers.tpl, a Deployment with an HTTP readiness probe, a Service, a ConfigMap; 0.2.0 adds an extra ConfigMap. */
function webappChart(version: string, extra: { object?: boolean; tampered?: boolean } = {}): Record<string, string> {
  const files: Record<string, string> = {
    'values.yaml': 'image: ""\nreplicas: 1\ngreeting: hello\n',
    'templates/_helpers.tpl': [
      '{{- define "webapp.fullname" -}}',
      '{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}',
      '{{- end -}}',
      '{{- define "webapp.labels" -}}',
      'app.kubernetes.io/name: {{ .Chart.Name }}',
      'app.kubernetes.io/instance: {{ .Release.Name }}',
      '{{- end -}}',
      '',
    ].join('\n'),
    'templates/deployment.yaml': `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "webapp.fullname" . }}
  labels: {{- include "webapp.labels" . | nindent 4 }}
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels: {{- include "webapp.labels" . | nindent 6 }}
  template:
    metadata:
      labels: {{- include "webapp.labels" . | nindent 8 }}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
        - name: web
          image: {{ required "image is required" .Values.image | quote }}
          ports: [{ containerPort: 8080, name: http }]
          readinessProbe: { httpGet: { path: /, port: 8080 }, periodSeconds: 1 }
`,
    'templates/service.yaml': `apiVersion: v1
kind: Service
metadata:
  name: {{ include "webapp.fullname" . }}
spec:
  selector: {{- include "webapp.labels" . | nindent 4 }}
  ports: [{ port: 80, targetPort: http }]
`,
    'templates/configmap.yaml': `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "webapp.fullname" . }}
data:
  greeting: {{ .Values.greeting | quote }}
  chartVersion: {{ .Chart.Version | quote }}
${extra.tampered ? '  tampered: "yes"\n' : ''}`,
  };
  if (extra.object) {
    files['templates/extra.yaml'] = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ include "webapp.fullname" . }}-extra\ndata:\n  added: "in 0.2.0"\n';
  }
  return { ...files, 'Chart.yaml': `apiVersion: v2\nname: webapp\nversion: ${version}\nappVersion: "1.0"\n` };
}

/** A chart whose templates/broken.yaml fails at line 6 (a field of a value that does not exist); its other template is fine. */
const brokenChart: Record<string, string> = {
  'templates/fine.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-fine\ndata: { a: b }\n',
  'templates/broken.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-broken\ndata:\n  value: {{ .Values.missing.deeper }}\n',
};

describe('a third-party chart from the OCI registry beside .kube/', () => {
  const namespace = `charts-${uniqueSuffix()}`;
  const charts = `${registry}/charts`;
  let dir: string;
  const digests: Record<string, string> = {};
  const skiffYaml = (list: Record<string, { chart: string; version: string; values?: string }>) =>
    `project: shop\nimages:\n  app: {}\nenvironments:\n  testing: {}\n` +
    (Object.keys(list).length
      ? `charts:\n${Object.entries(list)
          .map(([name, c]) => `  ${name}:\n    chart: oci://${charts}/${c.chart}\n    version: ${c.version}\n${c.values ? `    values: ${c.values}\n` : ''}`)
          .join('')}`
      : '');
  const front = (version: string) => ({ chart: 'webapp', version, values: '.kube/charts/front.values.yaml.ejs' });
  const run = (args: string[], env: Record<string, string | undefined> = {}) => runSkiff(dir, args, env);
  const deploy = (...args: string[]) => run(['deploy', 'testing', '--namespace', namespace, '--timeout', '2m', ...args]);
  const history = async () => {
    const r = await run(['history', 'testing', '--namespace', namespace, '-o', 'json']);
    expect(r.exitCode, r.all).toBe(0);
    return JSON.parse(r.stdout) as Revision[];
  };
  const exists = async (kind: string, name: string) => (await kubectl(['-n', namespace, 'get', kind, name], { allowFailure: true })).exitCode === 0;
  const configData = async (name: string) => (await kubectlJson(['-n', namespace, 'get', 'configmap', name])).data as Record<string, string>;
  /** Writes skiff.yaml, runs `skiff charts update` and commits both. */
  const setCharts = async (list: Parameters<typeof skiffYaml>[0], message: string) => {
    await writeFile(join(dir, 'skiff.yaml'), skiffYaml(list));
    const update = await run(['charts', 'update']);
    expect(update.exitCode, update.all).toBe(0);
    await commitAll(dir, message);
  };

  beforeAll(async () => {
    digests['0.1.0'] = await pushChart(charts, 'webapp', '0.1.0', webappChart('0.1.0'));
    dir = await committedProject(
      'charts',
      {
        'skiff.yaml': skiffYaml({ front: front('0.1.0') }),
        Dockerfile: dockerfile,
        '.dockerignore': '.kube/\nskiff.yaml\nskiff.lock\n',
        '.kube/config.yaml.ejs': 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: shop-config }\ndata:\n  env: <%= env %>\n',
        '.kube/app.yaml.ejs': `apiVersion: apps/v1
kind: Deployment
metadata: { name: shop-app }
spec:
  selector: { matchLabels: { app: shop } }
  template:
    metadata: { labels: { app: shop } }
    spec:
      terminationGracePeriodSeconds: 0
      containers:
        - name: app
          image: <%= images.app %>
          readinessProbe: { httpGet: { path: /, port: 8080 }, periodSeconds: 1 }
`,
        '.kube/charts/front.values.yaml.ejs': 'image: <%= images.app %>\ngreeting: hello from <%= env %>\n',
      },
      'a shop with a web chart',
    );
    const build = await run(['build', '--push']);
    expect(build.exitCode, build.all).toBe(0);
    const update = await run(['charts', 'update']);
    expect(update.exitCode, update.all).toBe(0);
    expect(update.stdout).toContain(`front\t0.1.0\t${digests['0.1.0']}`);
    await commitAll(dir, 'lock the charts');
  });

  afterAll(async () => {
    await kubectl(['delete', 'namespace', namespace, '--wait=false', '--ignore-not-found'], { allowFailure: true });
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('deploys .kube/ and the chart in one release and tracks the chart Deployment until ready', async () => {
    const r = await deploy();
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/Deployment\/front-webapp: ready \(1\/1 updated, 1\/1 available\)/);
    expect(r.stderr).toMatch(/Deployment\/shop-app: ready/);
    const pods = await kubectlJson(['-n', namespace, 'get', 'pods', '-l', 'app.kubernetes.io/instance=front']);
    expect(pods.items).toHaveLength(1);
    expect(pods.items[0].spec.containers[0].image).toMatch(new RegExp(`^${registry}/app[:@]`));
    expect(await configData('front-webapp')).toEqual({ greeting: 'hello from testing', chartVersion: '0.1.0' });
    expect(await configData('shop-config')).toEqual({ env: 'testing' });
    for (const [kind, name] of [
      ['service', 'front-webapp'],
      ['deployment', 'shop-app'],
    ] as const) {
      const labels = (await kubectlJson(['-n', namespace, 'get', kind, name])).metadata.labels;
      expect(labels['skiff.io/release'], `${kind}/${name}`).toBe('shop-testing');
    }
    // Files under .kube/charts/ are values, never objects.
    expect(r.stderr).not.toMatch(/front\.values/);
    const h = await history();
    expect(h).toHaveLength(1);
    expect(h[0]).toMatchObject({ revision: 1, status: 'deployed' });
    expect(h[0]!.charts).toEqual([{ name: 'front', chart: `oci://${charts}/webapp`, version: '0.1.0', digest: digests['0.1.0'] }]);
  });

  it('a chart bump shows in diff and the record; rollback restores the old chart objects and names 0.1.0', async () => {
    digests['0.2.0'] = await pushChart(charts, 'webapp', '0.2.0', webappChart('0.2.0', { object: true }));
    await setCharts({ front: front('0.2.0') }, 'webapp 0.2.0');
    const lock = parse(await readFile(join(dir, 'skiff.lock'), 'utf8')) as { charts: Record<string, { version: string; digest: string }> };
    expect(lock.charts.front).toMatchObject({ version: '0.2.0', digest: digests['0.2.0'] });

    const diff = await run(['diff', 'testing', '--namespace', namespace]);
    expect(diff.exitCode, diff.all).toBe(0);
    const short = (d: string) => d.slice(0, 'sha256:'.length + 12);
    expect(diff.stdout).toContain(`# chart front: 0.1.0 (${short(digests['0.1.0']!)}) -> 0.2.0 (${short(digests['0.2.0'])})`);
    expect(diff.stdout).toMatch(/# create ConfigMap\/front-webapp-extra/);
    expect(diff.stdout).toMatch(/# update ConfigMap\/front-webapp/);

    const up = await deploy();
    expect(up.exitCode, up.all).toBe(0);
    expect(await configData('front-webapp-extra')).toEqual({ added: 'in 0.2.0' });
    expect((await configData('front-webapp')).chartVersion).toBe('0.2.0');
    expect((await history()).at(-1)).toMatchObject({
      revision: 2,
      status: 'deployed',
      charts: [{ name: 'front', version: '0.2.0', digest: digests['0.2.0'] }],
    });
    const table = await run(['history', 'testing', '--namespace', namespace]);
    expect(table.stdout).toMatch(/CHARTS/);
    expect(table.stdout).toMatch(/front:0\.1\.0/);
    expect(table.stdout).toMatch(/front:0\.2\.0/);

    const back = await run(['rollback', 'testing', '--namespace', namespace, '--to', '1']);
    expect(back.exitCode, back.all).toBe(0);
    expect(back.stderr).toMatch(/ConfigMap\/front-webapp-extra: pruned/);
    expect(await exists('configmap', 'front-webapp-extra')).toBe(false);
    expect(await configData('front-webapp')).toEqual({ greeting: 'hello from testing', chartVersion: '0.1.0' });
    expect((await history()).at(-1)).toMatchObject({
      revision: 3,
      status: 'deployed',
      description: 'rollback to 1 complete',
      charts: [{ name: 'front', version: '0.1.0', digest: digests['0.1.0'] }],
    });
  });

  it('a template error is exit 2 naming the chart file and line; nothing is applied', async () => {
    await pushChart(charts, 'broken', '0.1.0', brokenChart);
    await setCharts({ front: front('0.2.0'), broken: { chart: 'broken', version: '0.1.0' } }, 'add a broken chart');
    const before = await clusterState(dir, namespace);
    const r = await deploy();
    expect(r.exitCode, r.all).toBe(2);
    expect(r.stderr).toMatch(/chart broken: templates\/broken\.yaml:6:.*nil pointer.*\(at <\.Values\.missing\.deeper>\)/);
    expect(await clusterState(dir, namespace)).toEqual(before);
    expect(await exists('configmap', 'broken-fine')).toBe(false);
    await setCharts({ front: front('0.2.0') }, 'drop the broken chart');
  });

  it('no skiff.lock, or one skiff.yaml no longer matches, is exit 2 naming the way out; nothing is applied', async () => {
    const before = await clusterState(dir, namespace);
    await git(dir, 'rm', '-q', 'skiff.lock');
    await commitAll(dir, 'lose the lock');
    const none = await deploy();
    expect(none.exitCode, none.all).toBe(2);
    expect(none.stderr).toMatch(/skiff\.yaml has charts but no skiff\.lock: run "skiff charts update" and commit skiff\.lock/);
    await git(dir, 'checkout', '-q', 'HEAD~1', '--', 'skiff.lock');
    await writeFile(join(dir, 'skiff.yaml'), skiffYaml({ front: front('0.1.0') }));
    await commitAll(dir, 'ask 0.1.0 without updating the lock');
    const stale = await deploy();
    expect(stale.exitCode, stale.all).toBe(2);
    expect(stale.stderr).toMatch(/chart front: skiff\.yaml asks for oci:\/\/\S+\/webapp 0\.1\.0, skiff\.lock has 0\.2\.0; run "skiff charts update"/);
    expect(await clusterState(dir, namespace)).toEqual(before);
    await writeFile(join(dir, 'skiff.yaml'), skiffYaml({ front: front('0.2.0') }));
    await commitAll(dir, 'back to 0.2.0');
  });

  it('a chart that changed under its locked version is exit 2 and nothing is applied', async () => {
    const tampered = await pushChart(charts, 'webapp', '0.2.0', webappChart('0.2.0', { object: true, tampered: true }));
    expect(tampered).not.toBe(digests['0.2.0']);
    // The cache has the locked archive: no download, and 0.2.0 as locked is deployed.
    const cached = await deploy();
    expect(cached.exitCode, cached.all).toBe(0);
    expect(await configData('front-webapp')).toEqual({ greeting: 'hello from testing', chartVersion: '0.2.0' });
    const before = await clusterState(dir, namespace);
    const fresh = await run(['deploy', 'testing', '--namespace', namespace, '--timeout', '2m'], { SKIFF_CACHE_DIR: join(work, 'fresh-cache') });
    expect(fresh.exitCode, fresh.all).toBe(2);
    expect(fresh.stderr).toContain(`chart front: oci://${charts}/webapp 0.2.0 has digest ${tampered} but skiff.lock says ${digests['0.2.0']}`);
    expect(fresh.stderr).toMatch(/the chart changed under the same version/);
    expect(await clusterState(dir, namespace)).toEqual(before);
    expect(existsSync(join(work, 'fresh-cache', 'charts', `${tampered.replace(':', '-')}.tgz`))).toBe(false);
  });

  it('without helm (SKIFF_HELM empty, none on PATH) deploy is exit 2 saying how to get it; nothing is applied', async () => {
    const before = await clusterState(dir, namespace);
    const path = (process.env.PATH ?? '')
      .split(delimiter)
      .filter((d) => d && !existsSync(join(d, 'helm')))
      .join(delimiter);
    const r = await run(['deploy', 'testing', '--namespace', namespace], { SKIFF_HELM: '', PATH: path });
    expect(r.exitCode, r.all).toBe(2);
    expect(r.stderr).toMatch(/the charts in skiff\.yaml need helm, which is not on PATH: install Helm 4 .*SKIFF_HELM/);
    expect(await clusterState(dir, namespace)).toEqual(before);
  });

  it('removing the chart from skiff.yaml prunes its objects and keeps .kube/', async () => {
    await setCharts({}, 'no more web chart');
    expect(parse(await readFile(join(dir, 'skiff.lock'), 'utf8'))).toEqual({ charts: {} });
    const r = await deploy();
    expect(r.exitCode, r.all).toBe(0);
    for (const object of ['Deployment/front-webapp', 'Service/front-webapp', 'ConfigMap/front-webapp', 'ConfigMap/front-webapp-extra']) {
      expect(r.stderr).toContain(`${object}: pruned`);
      const [kind, name] = object.split('/') as [string, string];
      expect(await exists(kind, name), object).toBe(false);
    }
    expect(await exists('deployment', 'shop-app')).toBe(true);
    expect(await exists('configmap', 'shop-config')).toBe(true);
    expect((await history()).at(-1)!.charts ?? []).toEqual([]);
  });
});

// ---- The project's own chart, written for Helm/werf

/** A .helm/ chart as a werf project has it: helpers, a file:// subchart and an OCI dependency pinned in Chart.lock, hooks, a CRD and its resource. */
function werfProject(group: string, deps: string): Record<string, string> {
  const hook = (name: string, weight: number, say: string) => `apiVersion: batch/v1
kind: Job
metadata:
  name: {{ include "app.fullname" . }}-${name}
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: "${weight}"
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: ${name}
          image: {{ .Values.werf.image.app }}
          command: ["sh", "-c", "echo ${say}"]
`;
  return {
    'skiff.yaml': 'project: wf\nimages:\n  app: {}\nenvironments:\n  testing: {}\n',
    Dockerfile: dockerfile,
    '.dockerignore': '.helm/\ncharts/\n',
    '.gitignore': '.helm/charts/\n',
    '.helm/Chart.yaml': `apiVersion: v2
name: app
version: 1.0.0
dependencies:
  - name: sidecar
    version: 0.1.0
    repository: file://../charts/sidecar
  - name: ocidep
    version: ~0.1.0
    repository: oci://${deps}
`,
    '.helm/values.yaml': 'schema: 1\nwidget: { size: 1 }\nsidecar: { greeting: from-the-parent }\n',
    '.helm/values.testing.yaml': 'widget: { size: 3 }\n',
    '.helm/templates/_helpers.tpl':
      '{{- define "app.fullname" -}}\n{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}\n{{- end -}}\n',
    '.helm/templates/deployment.yaml': `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "app.fullname" . }}
spec:
  selector: { matchLabels: { app: {{ include "app.fullname" . }} } }
  template:
    metadata: { labels: { app: {{ include "app.fullname" . }} } }
    spec:
      terminationGracePeriodSeconds: 0
      containers:
        - name: web
          image: {{ .Values.werf.image.app }}
          env: [{ name: ENV, value: {{ .Values.werf.env | quote }} }]
          readinessProbe: { httpGet: { path: /, port: 8080 }, periodSeconds: 1 }
`,
    '.helm/templates/migrate.yaml': hook('migrate', 5, 'migrating {{ .Release.Name }} to schema {{ .Values.schema }}'),
    '.helm/templates/prepare.yaml': hook('prepare', -5, 'preparing {{ .Release.Name }}'),
    '.helm/templates/widget.yaml': `apiVersion: ${group}/v1
kind: Widget
metadata:
  name: {{ include "app.fullname" . }}
spec:
  size: {{ .Values.widget.size }}
`,
    '.helm/crds/widgets.yaml': `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.${group}
spec:
  group: ${group}
  scope: Namespaced
  names: { kind: Widget, plural: widgets, singular: widget, listKind: WidgetList }
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: { type: object, x-kubernetes-preserve-unknown-fields: true }
`,
    'charts/sidecar/Chart.yaml': 'apiVersion: v2\nname: sidecar\nversion: 0.1.0\n',
    'charts/sidecar/values.yaml': 'greeting: from-the-subchart\n',
    'charts/sidecar/templates/configmap.yaml':
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-sidecar\ndata:\n  greeting: {{ .Values.greeting | quote }}\n',
  };
}

describe('a .helm/ chart written for Helm and werf, deployed unchanged', () => {
  const namespace = `werf-${uniqueSuffix()}`;
  const group = `w${uniqueSuffix().replace(/[^a-z0-9]/g, '')}.skiff.test`;
  const deps = `${registry}/deps`;
  let dir: string;
  const run = (...args: string[]) => runSkiff(dir, [args[0]!, 'testing', '--namespace', namespace, ...args.slice(1)]);
  const get = (kind: string, name: string) => kubectl(['-n', namespace, 'get', kind, name, '-o', 'json'], { allowFailure: true });

  beforeAll(async () => {
    await pushChart(deps, 'ocidep', '0.1.0', {
      'templates/configmap.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-ocidep\ndata:\n  from: oci\n',
    });
    dir = await committedProject('werf', werfProject(group, deps), 'a werf project');
    // As a Helm user does: Chart.lock committed, charts/ not (skiff vendors the dependencies itself).
    helm(['dependency', 'update', join(dir, '.helm'), '--plain-http'], helmHome(), dir);
    expect(await readFile(join(dir, '.helm', 'Chart.lock'), 'utf8')).toMatch(/name: ocidep\n\s+repository: oci:\/\/\S+\n\s+version: 0\.1\.0/);
    await rm(join(dir, '.helm', 'charts'), { recursive: true });
    // skiff.lock pins the OCI dependency's archive digest (Chart.lock pins only its version).
    const update = await runSkiff(dir, ['charts', 'update']);
    expect(update.exitCode, update.all).toBe(0);
    expect(await readFile(join(dir, 'skiff.lock'), 'utf8')).toMatch(
      /dependencies:\n\s+ocidep:\n\s+chart: oci:\/\/\S+\n\s+requested: 0\.1\.0\n\s+version: 0\.1\.0\n\s+digest: sha256:[0-9a-f]{64}/,
    );
    await commitAll(dir, 'helm dependency update');
    const build = await runSkiff(dir, ['build', '--push']);
    expect(build.exitCode, build.all).toBe(0);
  });

  afterAll(async () => {
    await kubectl(['delete', 'namespace', namespace, '--wait=false', '--ignore-not-found'], { allowFailure: true });
    await kubectl(['delete', 'crd', `widgets.${group}`, '--ignore-not-found', '--wait=false'], { allowFailure: true });
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('deploys: hooks by weight before the Deployment, the CRD kept, its resource, both dependencies', async () => {
    const r = await run('deploy', '--timeout', '2m');
    expect(r.exitCode, r.all).toBe(0);
    const prepared = r.stderr.indexOf('preparing wf-testing');
    const migrated = r.stderr.indexOf('migrating wf-testing to schema 1');
    expect(prepared, r.stderr).toBeGreaterThan(-1);
    expect(migrated, r.stderr).toBeGreaterThan(prepared);
    expect(r.stderr.indexOf('Deployment/wf-testing-app: applied'), r.stderr).toBeGreaterThan(migrated);
    expect(r.stderr).toMatch(/Deployment\/wf-testing-app: ready/);
    // hook-succeeded: the hook Jobs are gone once they ran.
    expect((await get('job', 'wf-testing-app-migrate')).exitCode).not.toBe(0);
    const deployment = JSON.parse((await get('deployment', 'wf-testing-app')).stdout);
    expect(deployment.spec.template.spec.containers[0].image).toMatch(new RegExp(`^${registry}/app[:@]`));
    expect(deployment.spec.template.spec.containers[0].env).toEqual([{ name: 'ENV', value: 'testing' }]);
    const crd = await kubectlJson(['get', 'crd', `widgets.${group}`]);
    expect(crd.metadata.annotations['skiff.io/keep']).toBe('true');
    expect(JSON.parse((await get(`widgets.${group}`, 'wf-testing-app')).stdout).spec).toEqual({ size: 3 });
    expect(JSON.parse((await get('configmap', 'wf-testing-sidecar')).stdout).data).toEqual({ greeting: 'from-the-parent' });
    expect(JSON.parse((await get('configmap', 'wf-testing-ocidep')).stdout).data).toEqual({ from: 'oci' });
  });

  it('upgrades: the pre-upgrade hooks run again with the new values', async () => {
    const r = await run('deploy', '--timeout', '2m', '--set', 'schema=2', '--set', 'widget.size=5');
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toContain('migrating wf-testing to schema 2');
    expect(JSON.parse((await get(`widgets.${group}`, 'wf-testing-app')).stdout).spec).toEqual({ size: 5 });
    const h = await runSkiff(dir, ['history', 'testing', '--namespace', namespace, '-o', 'json']);
    const records = JSON.parse(h.stdout) as Revision[];
    expect(records.map((x) => `${x.revision} ${x.status}`)).toEqual(['1 superseded', '2 deployed']);
    // The own chart, and its OCI dependency as skiff.lock pins it (the file:// one is part of the commit).
    expect(records[1]!.charts).toEqual([
      expect.objectContaining({ name: 'app', chart: '.helm', version: '1.0.0' }),
      expect.objectContaining({ name: '.helm/ocidep', chart: expect.stringMatching(/^oci:\/\//), version: '0.1.0', digest: expect.stringMatching(/^sha256:/) }),
    ]);
  });

  it('dismiss deletes the release objects and leaves the CRD', async () => {
    const r = await run('dismiss');
    expect(r.exitCode, r.all).toBe(0);
    expect((await get('deployment', 'wf-testing-app')).exitCode).not.toBe(0);
    expect((await get('configmap', 'wf-testing-sidecar')).exitCode).not.toBe(0);
    expect((await kubectl(['get', 'crd', `widgets.${group}`], { allowFailure: true })).exitCode).toBe(0);
  });
});

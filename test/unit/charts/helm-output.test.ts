// What `helm template` prints, read as skiff's objects: grouped by Helm's
// `# Source:` comments, named the way skiff names chart files, Helm's hooks
// mapped onto skiff's, CRDs and kept objects marked never to be pruned. The
// chart tests run the real helm so that they read Helm 4's own output format.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chartObjects, splitHelmOutput } from '../../../src/charts/helm-output.js';
import { helm } from '../../helpers/helm.js';

const KEEP = 'skiff.io/keep';
const HOOK = 'skiff.io/hook';

/** Writes a chart's files (path → content) under dir. */
function writeChart(dir: string, files: Record<string, string>): void {
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
}

const configMap = (name: string, extra = '') => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\n${extra}`;
const crd = (name: string) => `apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: ${name}\n`;

/** A chart "web" with a subchart "dep", CRDs in both, a two-document template, and a ConfigMap that only lives in a folder named crds. */
const WEB_CHART: Record<string, string> = {
  'Chart.yaml': 'apiVersion: v2\nname: web\nversion: 0.1.0\n',
  // A CRD file of several documents: Helm prints crds/ files as they are, with one `# Source:` for all.
  'crds/widgets.yaml': `# CRDs of web\n---\n${crd('widgets.example.com')}---\n${crd('sprockets.example.com')}`,
  'templates/x.yaml': `${configMap('{{ .Release.Name }}-web')}---\n${configMap('second')}`,
  'templates/crds/settings.yaml': configMap('not-a-crd'),
  'templates/kept.yaml': configMap('kept', '  annotations:\n    helm.sh/resource-policy: keep\n'),
  'charts/dep/Chart.yaml': 'apiVersion: v2\nname: dep\nversion: 0.2.0\n',
  // As controller-gen writes them: a --- before the first document.
  'charts/dep/crds/gadgets.yaml': `---\n${crd('gadgets.example.com')}`,
  'charts/dep/templates/x.yaml': configMap('dep-cm'),
};

let work: string;
let webOutput: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'skiff-helm-output-'));
  writeChart(join(work, 'web'), WEB_CHART);
  webOutput = helm(['template', 'rel', join(work, 'web'), '--namespace', 'ns', '--include-crds'], join(work, 'home'));
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

/** "<source>:<line> <Kind>/<name>" for each object, in order. */
const placed = (label: string, stdout: string, warnings: string[] = []) =>
  chartObjects(splitHelmOutput(stdout, label), warnings).map(
    (p) => `${p.manifest.source.file}:${p.manifest.source.line} ${p.manifest.object.kind}/${p.manifest.object.metadata.name}`,
  );

describe('splitHelmOutput on Helm 4 output', () => {
  it('gives one file per # Source:, named as skiff names chart files: subcharts under charts/, CRDs under crds/', () => {
    const files = splitHelmOutput(webOutput, 'chart web');
    expect(files.map((f) => f.file).sort()).toEqual(
      [
        'chart web: crds/widgets.yaml',
        'chart web: charts/dep/crds/gadgets.yaml',
        'chart web: charts/dep/templates/x.yaml',
        'chart web: templates/crds/settings.yaml',
        'chart web: templates/kept.yaml',
        'chart web: templates/x.yaml',
      ].sort(),
    );
    // Two documents of one template stay one file.
    expect(files.filter((f) => f.file === 'chart web: templates/x.yaml')).toHaveLength(1);
  });

  it('names the own chart .helm/<path in the chart>', () => {
    const files = splitHelmOutput(webOutput, '.helm');
    expect(files.map((f) => f.file)).toContain('.helm/templates/x.yaml');
    expect(files.map((f) => f.file)).toContain('.helm/charts/dep/templates/x.yaml');
    expect(files.map((f) => f.file)).toContain('.helm/crds/widgets.yaml');
  });

  it('keeps every object, each at the line its document starts on in the chart file', () => {
    const objects = placed('chart web', webOutput);
    expect([...objects].sort()).toEqual(
      [
        // The CRD file as written: a comment, then documents at lines 3 and 8.
        'chart web: crds/widgets.yaml:3 CustomResourceDefinition/widgets.example.com',
        'chart web: crds/widgets.yaml:8 CustomResourceDefinition/sprockets.example.com',
        'chart web: charts/dep/crds/gadgets.yaml:2 CustomResourceDefinition/gadgets.example.com',
        'chart web: charts/dep/templates/x.yaml:1 ConfigMap/dep-cm',
        'chart web: templates/crds/settings.yaml:1 ConfigMap/not-a-crd',
        'chart web: templates/kept.yaml:1 ConfigMap/kept',
        // The second document of templates/x.yaml starts on its line 6, after line 5's ---.
        'chart web: templates/x.yaml:1 ConfigMap/rel-web',
        'chart web: templates/x.yaml:6 ConfigMap/second',
      ].sort(),
    );
    expect(objects.indexOf('chart web: templates/x.yaml:1 ConfigMap/rel-web')).toBeLessThan(objects.indexOf('chart web: templates/x.yaml:6 ConfigMap/second'));
  });

  it('keeps the documents of a multi-document CRD file, which Helm prints under one # Source:', () => {
    const file = splitHelmOutput(webOutput, 'chart web').find((f) => f.file === 'chart web: crds/widgets.yaml');
    expect(file?.text).toContain('sprockets.example.com');
    expect(file?.text).toContain('widgets.example.com');
  });

  it('reads output without the blank lines and with a --- preamble as well (no document lost, none invented)', () => {
    const stdout = [
      '---',
      '# Source: web/templates/a.yaml',
      configMap('a').trimEnd(),
      '---',
      '# Source: web/templates/a.yaml',
      configMap('b').trimEnd(),
      '---',
      '# Source: web/templates/empty.yaml',
      '# only a comment',
      '---',
      '# Source: web/charts/dep/templates/c.yaml',
      configMap('c').trimEnd(),
      '',
    ].join('\n');
    const files = splitHelmOutput(stdout, 'chart web');
    expect(files.map((f) => f.file)).toEqual(['chart web: templates/a.yaml', 'chart web: charts/dep/templates/c.yaml']);
    expect(placed('chart web', stdout)).toEqual([
      'chart web: templates/a.yaml:1 ConfigMap/a',
      'chart web: templates/a.yaml:6 ConfigMap/b',
      'chart web: charts/dep/templates/c.yaml:1 ConfigMap/c',
    ]);
  });

  it('gives nothing for empty output', () => {
    expect(splitHelmOutput('', 'chart web')).toEqual([]);
    expect(splitHelmOutput('---\n', 'chart web')).toEqual([]);
  });
});

describe('chartObjects: objects that are never pruned', () => {
  const annotation = (name: string, key: string) => {
    const p = chartObjects(splitHelmOutput(webOutput, 'chart web'), []).find((o) => o.manifest.object.metadata.name === name);
    expect(p, name).toBeDefined();
    return p!.manifest.object.metadata.annotations?.[key];
  };

  it('marks CRDs from crds/ (the chart and its subcharts, every document) skiff.io/keep "true"', () => {
    expect(annotation('widgets.example.com', KEEP)).toBe('true');
    expect(annotation('sprockets.example.com', KEEP)).toBe('true');
    expect(annotation('gadgets.example.com', KEEP)).toBe('true');
  });

  it('marks an object with helm.sh/resource-policy: keep, and keeps its other annotations', () => {
    expect(annotation('kept', KEEP)).toBe('true');
    expect(annotation('kept', 'helm.sh/resource-policy')).toBe('keep');
  });

  it('leaves templates alone, also those in a folder named crds under templates/ (Helm deletes them like any template)', () => {
    expect(annotation('rel-web', KEEP)).toBeUndefined();
    expect(annotation('dep-cm', KEEP)).toBeUndefined();
    expect(annotation('not-a-crd', KEEP)).toBeUndefined();
  });

  it("marks the own chart's CRDs as well", () => {
    const crds = chartObjects(splitHelmOutput(webOutput, '.helm'), []).filter((p) => p.manifest.object.kind === 'CustomResourceDefinition');
    expect(crds.map((p) => [p.manifest.source.file, p.manifest.object.metadata.annotations?.[KEEP]])).toEqual([
      ['.helm/crds/widgets.yaml', 'true'],
      ['.helm/crds/widgets.yaml', 'true'],
      ['.helm/charts/dep/crds/gadgets.yaml', 'true'],
    ]);
  });
});

/** Helm's output for templates of chart "web": one `# Source:` document per (file, object). */
function helmOutput(...docs: Array<[file: string, yaml: string]>): string {
  return docs.map(([file, yaml]) => `---\n# Source: web/templates/${file}\n${yaml}`).join('');
}

/** An object of kind/name with these annotations, as YAML. */
function annotated(kind: string, name: string, annotations: Record<string, string>): string {
  const lines = Object.entries(annotations).map(([k, v]) => `    ${k}: ${JSON.stringify(v)}`);
  const apiVersion = kind === 'Job' ? 'batch/v1' : 'v1';
  return [`apiVersion: ${apiVersion}`, `kind: ${kind}`, 'metadata:', `  name: ${name}`, ...(lines.length ? ['  annotations:', ...lines] : []), ''].join('\n');
}

const hook = (kind: string, name: string, helmHook: string, more: Record<string, string> = {}) => annotated(kind, name, { 'helm.sh/hook': helmHook, ...more });

/** The objects chartObjects gives, as "Kind/name hook" in order, and its warnings. */
function mapped(stdout: string): { objects: string[]; warnings: string[] } {
  const warnings: string[] = [];
  const objects = chartObjects(splitHelmOutput(stdout, 'chart web'), warnings).map((p) => {
    const o = p.manifest.object;
    return `${o.kind}/${o.metadata.name}${o.metadata.annotations?.[HOOK] ? ` ${o.metadata.annotations[HOOK]}` : ''}`;
  });
  return { objects, warnings };
}

describe('chartObjects: Helm hooks as skiff hooks', () => {
  it("runs pre-install/pre-upgrade as pre-deploy and post-install/post-upgrade as post-deploy, keeping Helm's annotation", () => {
    const out = mapped(
      helmOutput(
        ['migrate.yaml', hook('Job', 'migrate', 'pre-install,pre-upgrade')],
        ['seed.yaml', hook('Job', 'seed', 'pre-install')],
        ['notify.yaml', hook('Job', 'notify', 'post-upgrade')],
        ['welcome.yaml', hook('Job', 'welcome', 'post-install, post-upgrade')],
      ),
    );
    expect(out).toEqual({ objects: ['Job/migrate pre-deploy', 'Job/notify post-deploy', 'Job/seed pre-deploy', 'Job/welcome post-deploy'], warnings: [] });
    const [migrate] = chartObjects(splitHelmOutput(helmOutput(['migrate.yaml', hook('Job', 'migrate', 'pre-install,pre-upgrade')]), 'chart web'), []);
    expect(migrate!.manifest.object.metadata.annotations).toEqual({ 'helm.sh/hook': 'pre-install,pre-upgrade', [HOOK]: 'pre-deploy' });
  });

  it('leaves out a hook skiff cannot run (test) with a warning naming the object', () => {
    const out = mapped(helmOutput(['app.yaml', configMap('app')], ['test.yaml', hook('Pod', 'web-test', 'test')]));
    expect(out.objects).toEqual(['ConfigMap/app']);
    expect(out.warnings).toEqual([
      'chart web: templates/test.yaml: Pod/web-test: Helm hook "test" is not run by skiff (it runs pre/post-install and pre/post-upgrade hooks as its pre-/post-deploy hooks); not deployed',
    ]);
  });

  it.each(['pre-delete', 'post-delete', 'pre-rollback', 'post-rollback', 'test-success'])('leaves out a %s hook, with a warning', (kind) => {
    const out = mapped(helmOutput(['h.yaml', hook('Job', 'h', kind)]));
    expect(out.objects).toEqual([]);
    expect(out.warnings).toHaveLength(1);
    expect(out.warnings[0]).toMatch(new RegExp(`^chart web: templates/h\\.yaml: Job/h: Helm hook "${kind}" is not run by skiff`));
  });

  it('runs a hook that is also a test hook as pre-deploy, warning that the test part is not run', () => {
    const out = mapped(helmOutput(['check.yaml', hook('Job', 'check', 'pre-install,test')]));
    expect(out.objects).toEqual(['Job/check pre-deploy']);
    expect(out.warnings).toEqual(['chart web: templates/check.yaml: Job/check: Helm hook test not run by skiff; it runs as pre-deploy']);
  });

  it('runs a hook of both sides of the deploy once, as pre-deploy, and says so', () => {
    const out = mapped(helmOutput(['both.yaml', hook('Job', 'both', 'pre-install,post-install')]));
    expect(out.objects).toEqual(['Job/both pre-deploy']);
    expect(out.warnings).toEqual(['chart web: templates/both.yaml: Job/both: a Helm hook both before and after the deploy runs once, as pre-deploy, in skiff']);
  });

  it('puts ordinary objects first, then hooks by hook-weight (numbers, negative first), equal weights by name, as Helm orders them', () => {
    const out = mapped(
      helmOutput(
        ['a.yaml', hook('Job', 'heavy', 'pre-install', { 'helm.sh/hook-weight': '5' })],
        ['b.yaml', hook('Job', 'first', 'post-install', { 'helm.sh/hook-weight': '-3' })],
        ['c.yaml', configMap('plain')],
        ['d.yaml', hook('Job', 'unweighted', 'pre-upgrade')],
        ['e.yaml', hook('Job', 'zero', 'pre-install', { 'helm.sh/hook-weight': '0' })],
        ['f.yaml', hook('Job', 'ten', 'pre-install', { 'helm.sh/hook-weight': '10' })],
        ['g.yaml', hook('Job', 'garbled', 'pre-install', { 'helm.sh/hook-weight': 'heavy' })],
      ),
    );
    expect(out.objects).toEqual([
      'ConfigMap/plain',
      'Job/first post-deploy',
      'Job/garbled pre-deploy',
      'Job/unweighted pre-deploy',
      'Job/zero pre-deploy',
      'Job/heavy pre-deploy',
      'Job/ten pre-deploy',
    ]);
  });

  it("leaves an object that already says skiff.io/hook as it is, in the objects' order", () => {
    const out = mapped(
      helmOutput(['own.yaml', annotated('Job', 'own', { 'helm.sh/hook': 'test', [HOOK]: 'post-deploy' })], ['plain.yaml', configMap('plain')]),
    );
    expect(out).toEqual({ objects: ['Job/own post-deploy', 'ConfigMap/plain'], warnings: [] });
  });
});

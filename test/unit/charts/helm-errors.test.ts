// Helm itself: found through SKIFF_HELM or PATH, run by helmTemplate on tiny
// charts, and its errors (Helm 4's own messages, produced by the real helm)
// turned into skiff's one-line ConfigError naming the chart's file and line.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chartFile, findHelm, helmTemplate, helmTemplateError, type HelmTemplateRequest } from '../../../src/charts/helm.js';
import { ConfigError, ExitCode, InfrastructureError } from '../../../src/errors.js';
import { configFailure, failure } from '../../helpers/failure.js';
import { helmBinary } from '../../helpers/helm.js';

let work: string;
let n = 0;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'skiff-helm-errors-'));
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A new chart folder named `name` with these files (Chart.yaml added unless given); returns its path. */
function chart(files: Record<string, string>, name = 'web'): string {
  const dir = join(work, `c${++n}`, name);
  const all = { 'Chart.yaml': `apiVersion: v2\nname: ${name}\nversion: 0.1.0\n`, ...files };
  for (const [path, content] of Object.entries(all)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  return dir;
}

/** A file under work with this content; returns its path. */
function file(name: string, content: string, mode = 0o644): string {
  const path = join(work, `f${++n}`, name);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content);
  chmodSync(path, mode);
  return path;
}

function request(dir: string, more: Partial<HelmTemplateRequest> = {}): HelmTemplateRequest {
  return {
    helm: helmBinary(),
    release: 'rel',
    namespace: 'shop',
    chart: dir,
    valuesFiles: [],
    label: 'chart web',
    home: join(work, `home${++n}`),
    env: process.env,
    ...more,
  };
}

/** skiff's message for the template error helm gives on this one template (templates/x.yaml). */
const templateError = (template: string, more: Partial<HelmTemplateRequest> = {}, files: Record<string, string> = {}) =>
  configFailure(helmTemplate(request(chart({ 'templates/x.yaml': template, ...files }), more)));

const CM = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n';

describe("helmTemplateError on Helm 4's messages", () => {
  it("a nil pointer: the file and line of the template, Helm's explanation and the expression", async () => {
    expect(await templateError(`${CM}  name: {{ .Values.a.b }}\n`)).toBe(
      'chart web: templates/x.yaml:4: nil pointer evaluating interface {}.b (at <.Values.a.b>)',
    );
  });

  it('names the own chart .helm/<file>', async () => {
    expect(await templateError(`${CM}  name: {{ .Values.a.b }}\n`, { label: '.helm' })).toBe(
      '.helm/templates/x.yaml:4: nil pointer evaluating interface {}.b (at <.Values.a.b>)',
    );
  });

  it('required: its message at the line', async () => {
    expect(await templateError(`${CM}  name: {{ required "set name: the service's name" .Values.name }}\n`)).toBe(
      "chart web: templates/x.yaml:4: set name: the service's name",
    );
  });

  it('fail: its message at the line', async () => {
    expect(await templateError(`${CM}  name: x\ndata:\n  a: {{ fail "this chart needs persistence.enabled" }}\n`)).toBe(
      'chart web: templates/x.yaml:6: this chart needs persistence.enabled',
    );
  });

  it("an undefined function: Helm's parse error at the line", async () => {
    expect(await templateError(`${CM}  name: {{ nosuchfn 1 }}\n`)).toBe('chart web: templates/x.yaml:4: function "nosuchfn" not defined');
  });

  it("an unclosed action: the line where Helm stopped, and Helm's words", async () => {
    expect(await templateError(`${CM}  name: {{ .Values.x \n`)).toMatch(/^chart web: templates\/x\.yaml:5: unclosed action started at \S+x\.yaml:4$/);
  });

  it('invalid YAML in what the template printed: the line of the output', async () => {
    expect(await templateError(`${CM}  name: a\n  b: c: d\n`)).toBe(
      'chart web: templates/x.yaml:5: invalid YAML (in rendered output): mapping values are not allowed in this context',
    );
  });

  it('an include of a template that does not exist', async () => {
    expect(await templateError(`${CM}  name: {{ include "nope" . }}\n`)).toBe(
      'chart web: templates/x.yaml:4: error calling include: template: no template "nope" associated with template "gotpl" (at <include "nope" .>)',
    );
  });

  it("an error inside an included helper: the helper's file and line, and where it was included from", async () => {
    const helpers = '{{- define "web.outer" -}}\n{{ include "web.inner" . }}\n{{- end }}\n{{- define "web.inner" -}}\n{{ .Values.a.b }}\n{{- end }}\n';
    expect(await templateError(`${CM}  name: {{ include "web.outer" . }}\n`, {}, { 'templates/_helpers.tpl': helpers })).toBe(
      'chart web: templates/_helpers.tpl:5: nil pointer evaluating interface {}.b (at <.Values.a.b>; included from templates/_helpers.tpl:2, templates/x.yaml:4)',
    );
    expect(await templateError(`${CM}  name: {{ include "web.outer" . }}\n`, { label: '.helm' }, { 'templates/_helpers.tpl': helpers })).toBe(
      '.helm/templates/_helpers.tpl:5: nil pointer evaluating interface {}.b (at <.Values.a.b>; included from .helm/templates/_helpers.tpl:2, .helm/templates/x.yaml:4)',
    );
  });

  it("an error Helm 4 still prints in Helm 3's one-line form (index out of range)", async () => {
    expect(await templateError(`${CM}  name: x\ndata:\n  a: {{ index .Values.list 3 | quote }}\n`, {}, { 'values.yaml': 'list: [1]\n' })).toBe(
      'chart web: templates/x.yaml:6: error calling index: index out of range: 3 (at <index .Values.list 3>)',
    );
  });

  it("an error in a subchart's template names it under charts/", async () => {
    const dir = chart({
      'charts/dep/Chart.yaml': 'apiVersion: v2\nname: dep\nversion: 0.2.0\n',
      'charts/dep/templates/x.yaml': `${CM}  name: {{ .Values.a.b }}\n`,
    });
    expect(await configFailure(helmTemplate(request(dir)))).toBe(
      'chart web: charts/dep/templates/x.yaml:4: nil pointer evaluating interface {}.b (at <.Values.a.b>)',
    );
  });

  it("an error without a place (values against the chart's schema) is still one line naming the chart", async () => {
    const schema = JSON.stringify({ type: 'object', properties: { port: { type: 'integer' } }, required: ['port'] });
    const values = file('values.yaml', 'port: eighty\n');
    const dir = chart({ 'templates/x.yaml': `${CM}  name: x\n`, 'values.schema.json': schema });
    const message = await configFailure(helmTemplate(request(dir, { valuesFiles: [values] })));
    expect(message).toMatch(
      /^chart web: helm template failed: values don't meet the specifications of the schema\(s\) .*web: - at '\/port': got string, want integer$/,
    );
  });

  it("reads Helm 3's messages as well", () => {
    const e = helmTemplateError(
      'Error: template: redis/templates/master.yaml:12:20: executing "redis/templates/master.yaml" at <.Values.master.port>: nil pointer evaluating interface {}.port\n',
      'chart cache',
    );
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.exitCode).toBe(ExitCode.badInput);
    expect(e.message).toBe('chart cache: templates/master.yaml:12: nil pointer evaluating interface {}.port (at <.Values.master.port>)');
  });

  it("leaves out Helm's warnings and its advice to use --debug", () => {
    const e = helmTemplateError(
      'WARNING: Kubernetes configuration file is group-readable.\nError: execution error at (web/templates/x.yaml:3:4): boom\n\nUse --debug flag to render out invalid YAML\n',
      '.helm',
    );
    expect(e.message).toBe('.helm/templates/x.yaml:3: boom');
  });
});

describe('chartFile', () => {
  it("drops Helm's top folder (the chart's name) and names the file as skiff does", () => {
    expect(chartFile('chart web', 'web/templates/x.yaml')).toBe('chart web: templates/x.yaml');
    expect(chartFile('chart web', 'redis/charts/common/templates/_labels.tpl')).toBe('chart web: charts/common/templates/_labels.tpl');
    expect(chartFile('.helm', 'myapp/templates/x.yaml')).toBe('.helm/templates/x.yaml');
    expect(chartFile('.helm', 'myapp/crds/x.yaml')).toBe('.helm/crds/x.yaml');
  });
});

describe('helmTemplate', () => {
  const capabilitiesChart = () =>
    chart({
      'values.yaml': 'size: small\ncolour: red\n',
      'templates/x.yaml': [
        CM,
        '  name: {{ .Release.Name }}-web',
        '  namespace: {{ .Release.Namespace }}',
        'data:',
        '  size: {{ .Values.size | quote }}',
        '  colour: {{ .Values.colour | quote }}',
        '  kube: {{ .Capabilities.KubeVersion.Version | quote }}',
        '  widgets: {{ .Capabilities.APIVersions.Has "example.com/v1/Widget" | quote }}',
        '  lookup: {{ lookup "v1" "Namespace" "" "default" | len | quote }}',
        '',
      ].join('\n'),
      'crds/widgets.yaml': 'apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\n',
    });

  it('renders with the release name, namespace and values files in order (later wins), CRDs included, # Source: comments kept', async () => {
    const big = file('big.yaml', 'size: big\ncolour: blue\n');
    const huge = file('huge.json', JSON.stringify({ size: 'huge' }));
    const out = await helmTemplate(request(capabilitiesChart(), { valuesFiles: [big, huge] }));
    expect(out).toContain('# Source: web/templates/x.yaml\n');
    expect(out).toContain('# Source: web/crds/widgets.yaml\n');
    expect(out).toContain('  name: rel-web\n  namespace: shop\n');
    expect(out).toContain('  size: "huge"\n  colour: "blue"\n');
    // No cluster is reached: lookup finds nothing, as in helm template.
    expect(out).toContain('  lookup: "0"\n');
  });

  it("passes the cluster's version and API versions as Helm's capabilities", async () => {
    const out = await helmTemplate(
      request(capabilitiesChart(), { capabilities: { kubeVersion: 'v1.29.3', apiVersions: ['example.com/v1', 'example.com/v1/Widget'] } }),
    );
    expect(out).toContain('  kube: "v1.29.3"\n  widgets: "true"\n');
    const offline = await helmTemplate(request(capabilitiesChart()));
    expect(offline).toContain('  widgets: "false"\n');
    expect(offline).not.toContain('v1.29.3');
  });

  it('a helm that cannot be run is an infrastructure error naming the chart', async () => {
    const e = await failure(
      helmTemplate(request(chart({ 'templates/x.yaml': `${CM}  name: x\n` }), { helm: join(work, 'no-such-helm') })),
      InfrastructureError,
    );
    expect(e.message).toMatch(/^chart web: cannot run \S*no-such-helm: /);
  });

  it('an invalid --kube-version is exit 2 naming the chart', async () => {
    const message = await configFailure(helmTemplate(request(capabilitiesChart(), { capabilities: { kubeVersion: 'banana', apiVersions: [] } })));
    expect(message).toMatch(/^chart web: helm template failed: .*banana/);
  });
});

describe('findHelm', () => {
  const WHY = 'the charts in skiff.yaml';

  it('uses SKIFF_HELM when it is an absolute path to an executable file', async () => {
    const helm = file('helm', '#!/bin/sh\n', 0o755);
    expect(await findHelm({ SKIFF_HELM: helm, PATH: '' }, WHY)).toBe(helm);
  });

  it('refuses a relative SKIFF_HELM, naming it and asking for an absolute path', async () => {
    const message = await configFailure(findHelm({ SKIFF_HELM: 'bin/helm', PATH: '' }, WHY));
    expect(message).toBe('SKIFF_HELM=bin/helm is not an executable file (give its absolute path); the charts in skiff.yaml need helm');
  });

  it('refuses a SKIFF_HELM that is not executable or does not exist', async () => {
    const plain = file('helm', 'not a program\n', 0o644);
    expect(await configFailure(findHelm({ SKIFF_HELM: plain }, '.helm/Chart.yaml'))).toBe(
      `SKIFF_HELM=${plain} is not an executable file (give its absolute path); .helm/Chart.yaml needs helm`,
    );
    expect(await configFailure(findHelm({ SKIFF_HELM: join(work, 'missing', 'helm') }, WHY))).toContain(`SKIFF_HELM=${join(work, 'missing', 'helm')} is not`);
  });

  it('finds the first executable helm on PATH, passing over a file named helm that is not executable and relative entries', async () => {
    const plain = dirname(file('helm', 'no\n', 0o644));
    const real = file('helm', '#!/bin/sh\n', 0o755);
    const later = file('helm', '#!/bin/sh\n', 0o755);
    const PATH = ['relative/bin', join(work, 'nothing-here'), plain, dirname(real), dirname(later)].join(':');
    expect(await findHelm({ PATH }, WHY)).toBe(real);
  });

  it('without one: exit 2 saying how to get Helm 4 and SKIFF_HELM', async () => {
    const plain = dirname(file('helm', 'no\n', 0o644));
    const message = await configFailure(findHelm({ PATH: `${plain}:${join(work, 'nothing-here')}` }, WHY));
    expect(message).toMatch(/^the charts in skiff\.yaml need helm, which is not on PATH: install Helm 4 .*SKIFF_HELM/);
    expect(await configFailure(findHelm({}, '.helm/Chart.yaml'))).toMatch(/^\.helm\/Chart\.yaml needs helm, which is not on PATH: .*Helm 4.*SKIFF_HELM/);
  });
});

import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ConfigError } from '../../src/errors.js';
import { isClusterScoped } from '../../src/kinds/table.js';
import { isTemplateFile, renderRelease, type RenderInput, type TemplateFile } from '../../src/render/render-release.js';
import { applySet, isValuesFile, mergeValues, parseSet, valuesFileNames } from '../../src/render/values.js';

const IMAGE = 'registry.local/shop/app:3f2a9c1@sha256:' + 'a'.repeat(64);

function input(templates: Record<string, string>, over: Partial<RenderInput> = {}): RenderInput {
  return {
    templates: Object.entries(templates).map(([path, content]) => ({ path, content })),
    valueSources: [],
    sets: [],
    images: { app: IMAGE, worker: 'registry.local/shop/worker:3f2a9c1@sha256:' + 'b'.repeat(64) },
    env: 'staging',
    slug: 'staging',
    release: 'shop-staging',
    namespace: 'shop-staging',
    project: 'shop',
    git: { commit: '3f2a9c1d', branch: 'main' },
    ...over,
  };
}

function render(templates: Record<string, string>, over: Partial<RenderInput> = {}) {
  return renderRelease(input(templates, over));
}

/** The ConfigError message a render fails with. */
function failure(templates: Record<string, string>, over: Partial<RenderInput> = {}): string {
  try {
    render(templates, over);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).exitCode).toBe(2);
    return (e as Error).message;
  }
  throw new Error('render did not fail');
}

const CM = (name: string, extra = '') => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\n${extra}`;

describe('files', () => {
  it('tells values files from templates', () => {
    expect(isValuesFile('.kube/values.yaml')).toBe(true);
    expect(isValuesFile('.kube/values.staging.yml')).toBe(true);
    expect(isValuesFile('.kube/app/values.yaml')).toBe(false);
    expect(isTemplateFile('.kube/values.yaml')).toBe(false);
    expect(isTemplateFile('.kube/values.production.yaml')).toBe(false);
    expect(isTemplateFile('.kube/app/values.yaml')).toBe(true);
    expect(isTemplateFile('.kube/app/deployment.yaml.ejs')).toBe(true);
    expect(isTemplateFile('.kube/service.yml')).toBe(true);
    expect(isTemplateFile('.kube/README.md')).toBe(false);
    expect(isTemplateFile('deploy/service.yaml')).toBe(false);
    expect(valuesFileNames('prod')).toEqual(['.kube/values.yaml', '.kube/values.yml', '.kube/values.prod.yaml', '.kube/values.prod.yml']);
  });

  it('knows the cluster-scoped kinds', () => {
    expect(isClusterScoped('Namespace')).toBe(true);
    expect(isClusterScoped('ClusterRoleBinding')).toBe(true);
    expect(isClusterScoped('ValidatingAdmissionPolicyBinding')).toBe(true);
    expect(isClusterScoped('Role')).toBe(false);
    expect(isClusterScoped('Deployment')).toBe(false);
  });
});

describe('mergeValues', () => {
  it('merges maps, replaces lists and scalars, deletes on null, and leaves its inputs alone', () => {
    const base = { image: { pullPolicy: 'IfNotPresent', tag: 'x' }, hosts: ['a', 'b'], replicas: 1, debug: true, extra: { keep: 1 } };
    const env = { image: { tag: 'y' }, hosts: ['c'], replicas: 3, debug: null, extra: { add: null, also: { n: null, m: 2 } } };
    const merged = mergeValues(base, env, undefined, null);
    expect(merged).toEqual({ image: { pullPolicy: 'IfNotPresent', tag: 'y' }, hosts: ['c'], replicas: 3, extra: { keep: 1, also: { m: 2 } } });
    expect(base.image.tag).toBe('x');
    (merged.hosts as string[]).push('d');
    expect(env.hosts).toEqual(['c']);
  });

  it('does not let a "__proto__" key reach the prototype', () => {
    const merged = mergeValues(JSON.parse('{"__proto__": {"polluted": true}, "a": 1}') as Record<string, unknown>);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.keys(merged)).toEqual(['__proto__', 'a']);
  });
});

describe('parseSet', () => {
  it('parses paths and types values like YAML scalars', () => {
    expect(parseSet('a.b=c')).toEqual({ path: ['a', 'b'], value: 'c' });
    expect(parseSet('a.list[0]=x')).toEqual({ path: ['a', 'list', 0], value: 'x' });
    expect(parseSet('m[1][2].k=1')).toEqual({ path: ['m', 1, 2, 'k'], value: 1 });
    expect(parseSet('a.b=')).toEqual({ path: ['a', 'b'], value: '' });
    expect(parseSet('on=true').value).toBe(true);
    expect(parseSet('n=3').value).toBe(3);
    expect(parseSet('n=-2.5').value).toBe(-2.5);
    expect(parseSet('x=null').value).toBeNull();
    expect(parseSet('x="007"').value).toBe('007');
    expect(parseSet("x='a b'").value).toBe('a b');
    expect(parseSet('x=yes').value).toBe('yes');
    expect(parseSet('color=#fff').value).toBe('#fff');
    expect(parseSet('x= padded ').value).toBe(' padded ');
    expect(parseSet('x=a=b,c=d').value).toBe('a=b,c=d');
    expect(parseSet('x=a: b').value).toBe('a: b');
    expect(parseSet('x=.inf').value).toBe('.inf');
    expect(parseSet('labels.app\\.kubernetes\\.io/name=shop')).toEqual({ path: ['labels', 'app.kubernetes.io/name'], value: 'shop' });
  });

  it('rejects what is not key=value', () => {
    expect(() => parseSet('image.tag')).toThrowErrorMatchingInlineSnapshot(
      `[ConfigError: --set "image.tag": no "="; expected key.path=value, e.g. --set image.tag=v2 or --set hosts[0]=example.com]`,
    );
    expect(() => parseSet('a..b=1')).toThrow(/empty key/);
    expect(() => parseSet('=1')).toThrow(/empty key/);
    expect(() => parseSet('[0]=1')).toThrow(/empty key/);
    expect(() => parseSet('a[x]=1')).toThrowErrorMatchingInlineSnapshot(
      `[ConfigError: --set "a[x]=1": list index "[x" must be a number in brackets; expected key.path=value, e.g. --set image.tag=v2 or --set hosts[0]=example.com]`,
    );
    expect(() => parseSet('a[0]b=1')).toThrow(/expected "\." or "\[" after "\]"/);
  });

  it('applies into lists and maps, creating what is missing', () => {
    const values: Record<string, unknown> = { hosts: ['a'], image: { tag: 'x' }, gone: 1 };
    applySet(values, parseSet('hosts[0]=b'));
    applySet(values, parseSet('hosts[1]=c'));
    applySet(values, parseSet('ingress.tls[0].secret=cert'));
    applySet(values, parseSet('gone=null'));
    expect(values).toEqual({ hosts: ['b', 'c'], image: { tag: 'x' }, ingress: { tls: [{ secret: 'cert' }] } });
    expect(() => applySet(values, parseSet('hosts[5]=x'), 'hosts[5]=x')).toThrowErrorMatchingInlineSnapshot(
      `[ConfigError: --set "hosts[5]=x": index 5 is past the end of hosts (2 items); the next index is 2]`,
    );
    expect(() => applySet(values, parseSet('image.tag.x=1'), 'image.tag.x=1')).toThrowErrorMatchingInlineSnapshot(
      `[ConfigError: --set "image.tag.x=1": image.tag is the string "x" in the values, not a mapping or list]`,
    );
    expect(() => applySet(values, parseSet('hosts.x=1'), 'hosts.x=1')).toThrow(/hosts is a list, not a mapping/);
    expect(() => applySet(values, parseSet('image[0]=1'), 'image[0]=1')).toThrow(/image is a mapping, not a list/);
  });
});

describe('renderRelease', () => {
  const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: <%= release %>-web
  labels:
    app: web
  annotations:
    checksum/config: <%= sha256(values.config) %>
spec:
  replicas: <%= values.replicas %>
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
        - name: web
          image: <%= images.app %>
          env:
            - name: GIT_COMMIT
              value: <%= quote(git.commit) %>
            - name: DB_URL
              value: <%= quote(values.db.url) %>
          resources:
<%- toYaml(values.resources, 12) %>
`;

  it('renders EJS with values, images, helpers; adds namespace and labels', () => {
    const out = render(
      { '.kube/web.yaml.ejs': deployment },
      {
        valueSources: [
          {
            origin: '.kube/values.yaml',
            values: {
              replicas: 1,
              config: { a: 1 },
              db: { url: 'postgres://db/shop?ssl=true&x=<1>' },
              resources: { limits: { cpu: '500m', memory: '256Mi' } },
            },
          },
          { origin: '.kube/values.staging.yaml', values: { replicas: 2 } },
        ],
        sets: ['resources.limits.cpu=1'],
      },
    );
    expect(out.values).toEqual({
      replicas: 2,
      config: { a: 1 },
      db: { url: 'postgres://db/shop?ssl=true&x=<1>' },
      resources: { limits: { cpu: 1, memory: '256Mi' } },
    });
    expect(out.manifests).toHaveLength(1);
    expect(out.manifests[0]!.source).toEqual({ file: '.kube/web.yaml.ejs', line: 1 });
    expect(stringify(out.manifests[0]!.object)).toMatchInlineSnapshot(`
      "apiVersion: apps/v1
      kind: Deployment
      metadata:
        name: shop-staging-web
        namespace: shop-staging
        labels:
          app: web
          app.kubernetes.io/managed-by: skiff
          skiff.io/release: shop-staging
        annotations:
          checksum/config: 015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862
          skiff.io/release-namespace: shop-staging
      spec:
        replicas: 2
        selector:
          matchLabels:
            app: web
        template:
          metadata:
            labels:
              app: web
          spec:
            containers:
              - name: web
                image: registry.local/shop/app:3f2a9c1@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
                env:
                  - name: GIT_COMMIT
                    value: 3f2a9c1d
                  - name: DB_URL
                    value: postgres://db/shop?ssl=true&x=<1>
                resources:
                  limits:
                    cpu: 1
                    memory: 256Mi
      "
    `);
  });

  it('passes a plain .yaml through unchanged, skips empty documents and records where each starts', () => {
    const text = `# shared config
---
${CM('one')}---
# nothing here
---
${CM('two', 'data:\n  mode: "0644"\n  percent: 100%>\n')}`;
    const out = render({ '.kube/config.yaml': text });
    expect(out.manifests.map((m) => [m.object.metadata.name, m.source.line])).toEqual([
      ['one', 3],
      ['two', 10],
    ]);
    expect(out.manifests[1]!.object.data).toEqual({ mode: '0644', percent: '100%>' });
  });

  it('reads YAML as kubectl does (1.1: octal modes, dates stay strings)', () => {
    const out = render({
      '.kube/c.yaml': `${CM('c', 'data:\n  since: 2024-01-31\n')}---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nx:\n  defaultMode: 0644\n`,
    });
    expect(out.manifests[0]!.object.data).toEqual({ since: '2024-01-31' });
    expect(out.manifests[1]!.object.x).toEqual({ defaultMode: 420 });
  });

  it('warns where a plain key is read as a boolean (y, n, on, off), as kubectl would read it', () => {
    const out = render({ '.kube/c.yaml': CM('c', 'data:\n  n: "3"\n  "y": "4"\n  count: "5"\n') });
    expect(out.manifests[0]!.object.data).toEqual({ false: '3', y: '4', count: '5' });
    expect(out.warnings).toEqual(['.kube/c.yaml:6: the key n is read as false (YAML 1.1, as kubectl reads it); quote it ("n") if you meant the text']);
  });

  it('orders output by file path, whatever the input order', () => {
    const out = render({ '.kube/b.yaml': CM('b'), '.kube/a/x.yaml': CM('ax'), '.kube/a.yaml': CM('a') });
    expect(out.manifests.map((m) => m.source.file)).toEqual(['.kube/a.yaml', '.kube/a/x.yaml', '.kube/b.yaml']);
  });

  it('has helpers that print YAML, base64, checksums and quoted strings', () => {
    const out = render(
      {
        '.kube/h.yaml.ejs': `${CM('h')}data:
  b64: <%= b64('hello') %>
  quoted: <%- quote('say "hi"\\n') %>
  sum-a: <%= sha256({ b: 1, a: [1, 2] }) %>
  sum-b: <%= sha256({ a: [1, 2], b: 1 }) %>
  sum-text: <%= sha256('x') %>
  ampersand: <%= values.q %>
  scalar: <%- toYaml('on') %>
  list:
<%- toYaml(values.flags, 4) %>
  block: |
<%- toYaml(values.nested, 4) %>
  empty: <%- toYaml(undefined) %>
  env: <%= env %>/<%= namespace %>/<%= project %>/<%= git.branch %>
`,
      },
      { valueSources: [{ origin: 'v', values: { q: 'a&b "c" <d>', flags: ['on', '0644'], nested: { k: 'v', list: [1, 'yes'] } } }] },
    );
    expect(out.manifests[0]!.object.data).toMatchInlineSnapshot(`
      {
        "ampersand": "a&b "c" <d>",
        "b64": "aGVsbG8=",
        "block": "k: v
      list:
        - 1
        - "yes"
      ",
        "empty": null,
        "env": "staging/shop-staging/shop/main",
        "list": [
          "on",
          "0644",
        ],
        "quoted": "say "hi"
      ",
        "scalar": "on",
        "sum-a": "94a786c3662bc7beeb598efa7d8cb58d7bea25d6c275ea9785a0230ff1f8c2ba",
        "sum-b": "94a786c3662bc7beeb598efa7d8cb58d7bea25d6c275ea9785a0230ff1f8c2ba",
        "sum-text": "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881",
      }
    `);
  });

  it('does not let one template change the values another sees', () => {
    const out = render(
      {
        '.kube/a.yaml.ejs': `<% values.replicas = 99; values.nested.k = 'changed' %>${CM('a')}`,
        '.kube/b.yaml.ejs': `${CM('b')}data:\n  r: "<%= values.replicas %>"\n  k: <%= values.nested.k %>\n`,
      },
      { valueSources: [{ origin: 'v', values: { replicas: 1, nested: { k: 'v' } } }] },
    );
    expect(out.manifests[1]!.object.data).toEqual({ r: '1', k: 'v' });
    expect(out.values).toEqual({ replicas: 1, nested: { k: 'v' } });
  });

  it('sets the namespace on namespaced objects only, and drops it from cluster-scoped ones', () => {
    const out = render({
      '.kube/a.yaml': [
        CM('default-ns'),
        CM('own-ns', '  namespace: other\n'),
        'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: other\n',
        'apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: "shop:reader"\n  namespace: ignored\n',
        'apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: issuers.example.com\nspec:\n  group: example.com\n  scope: Cluster\n  names:\n    kind: ClusterIssuer\n',
        'apiVersion: example.com/v1\nkind: ClusterIssuer\nmetadata:\n  name: letsencrypt\n',
        'apiVersion: other.io/v1\nkind: Widget\nmetadata:\n  name: w\n',
      ].join('---\n'),
    });
    expect(out.manifests.map((m) => `${m.object.kind}/${m.object.metadata.name}@${m.object.metadata.namespace ?? '-'}`)).toEqual([
      'ConfigMap/default-ns@shop-staging',
      'ConfigMap/own-ns@other',
      'Namespace/other@-',
      'ClusterRole/shop:reader@-',
      'CustomResourceDefinition/issuers.example.com@-',
      'ClusterIssuer/letsencrypt@-',
      'Widget/w@shop-staging',
    ]);
  });

  it('adds the skiff labels, keeps user labels, and leaves pod template labels alone', () => {
    const out = render({
      '.kube/a.yaml':
        'apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  labels:\n    team: shop\n    app.kubernetes.io/managed-by: Helm\nspec:\n  template:\n    metadata:\n      labels:\n        job: migrate\n',
    });
    const job = out.manifests[0]!.object;
    expect(job.metadata.labels).toEqual({ team: 'shop', 'app.kubernetes.io/managed-by': 'skiff', 'skiff.io/release': 'shop-staging' });
    expect(job.spec).toEqual({ template: { metadata: { labels: { job: 'migrate' } } } });
  });

  it('renders 1,000 template files, plain and EJS, into 1,000 objects (speed: bench/p7-render)', () => {
    const templates: TemplateFile[] = [];
    for (let i = 0; i < 1000; i++) {
      templates.push({
        path: `.kube/gen/cm-${String(i).padStart(4, '0')}.yaml${i % 2 ? '.ejs' : ''}`,
        content:
          i % 2
            ? `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-<%= ${i} %>\n  annotations:\n    checksum: <%= sha256(values.shared) %>\ndata:\n  image: <%= images.app %>\n<%- toYaml({ data: values.shared }, 2) %>\n`
            : `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-${i}\ndata:\n  key: value-${i}\n`,
      });
    }
    const out = renderRelease({ ...input({}), templates, valueSources: [{ origin: 'v', values: { shared: { a: '1', b: '2' } } }] });
    expect(out.manifests).toHaveLength(1000);
    expect(out.manifests.filter((m) => m.object.metadata.annotations?.checksum)).toHaveLength(500);
  });
});

describe('render errors', () => {
  it('names an unknown image and the images there are', () => {
    expect(failure({ '.kube/w.yaml.ejs': `${CM('w')}data:\n  image: <%= images.wrker %>\n` })).toMatchInlineSnapshot(
      `".kube/w.yaml.ejs:6: unknown image "wrker" (images.wrker); the images are "app", "worker"; define it under images: in skiff.yaml or fix the name"`,
    );
    expect(failure({ '.kube/w.yaml.ejs': `${CM('w')}data:\n  image: <%= images.x %>\n` }, { images: {} })).toMatch(
      /unknown image "x" \(images\.x\); skiff\.yaml defines no images/,
    );
  });

  it('lets JavaScript and yaml probe the images without tripping the unknown-image check', () => {
    const out = render({
      '.kube/i.yaml.ejs': `${CM('i')}data:\n  then: "<%= typeof images.then %>"\n  json: '<%- JSON.stringify(images) %>'\n  all: |\n<%- toYaml(images, 4) %>\n  has: "<%= 'x' in images %>"\n`,
    });
    const data = out.manifests[0]!.object.data as Record<string, string>;
    expect(data.then).toBe('undefined');
    expect(JSON.parse(data.json!)).toEqual({ app: IMAGE, worker: expect.any(String) });
    expect(data.all).toContain(`app: ${IMAGE}`);
    expect(data.has).toBe('false');
  });

  it('gives the template line of a runtime error', () => {
    expect(failure({ '.kube/a.yaml.ejs': `${CM('a')}data:\n  x: 1\n  y: <%= values.foo.bar %>\n` })).toMatchInlineSnapshot(
      `".kube/a.yaml.ejs:7: Cannot read properties of undefined (reading 'bar') (a missing value? check the values files, or guard it with required(value, "message"))"`,
    );
    expect(failure({ '.kube/a.yaml.ejs': `${CM('a')}<%\n  const x = 1;\n  const y = z.q;\n%>\n` })).toMatchInlineSnapshot(
      `".kube/a.yaml.ejs:5: z is not defined; templates see values, images, env, slug, url, release, namespace, project, git, toYaml, b64, sha256, required, quote, secretFile"`,
    );
  });

  it('reports required() with its message and line', () => {
    const templates = {
      '.kube/s.yaml.ejs': `${CM('s')}\n\ndata:\n  password: <%= b64(required(values.db.password, 'set db.password in .kube/values.staging.yaml or with --set')) %>\n`,
    };
    expect(failure(templates, { valueSources: [{ origin: 'v', values: { db: { password: '' } } }] })).toMatchInlineSnapshot(
      `".kube/s.yaml.ejs:8: set db.password in .kube/values.staging.yaml or with --set"`,
    );
    expect(render(templates, { sets: ['db.password=hunter2'] }).manifests[0]!.object.data).toEqual({ password: 'aHVudGVyMg==' });
    expect(failure({ '.kube/s.yaml.ejs': `${CM('s')}data:\n  p: <%= b64(values.missing) %>\n` })).toMatchInlineSnapshot(
      `".kube/s.yaml.ejs:6: b64() got undefined; give it a value, or wrap it: b64(required(x, "what is missing"))"`,
    );
  });

  it('keeps values read-only in templates, and says so', () => {
    expect(
      failure(
        { '.kube/o.yaml.ejs': `${CM('o')}data:\n  x: <%= values.hosts.sort().join(',') %>\n` },
        { valueSources: [{ origin: 'v', values: { hosts: ['b', 'a'] } }] },
      ),
    ).toMatchInlineSnapshot(
      `".kube/o.yaml.ejs:6: Cannot assign to read only property '0' of object '[object Array]' (values are read-only in templates: copy first, e.g. [...values.list].sort())"`,
    );
  });

  it('refuses a kind: List', () => {
    expect(
      failure({ '.kube/l.yaml': 'apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: a\n' }),
    ).toMatchInlineSnapshot(`".kube/l.yaml:1: kind: List is not applied as such; put each item in its own YAML document (separated by ---)"`);
  });

  it('refuses to print an object with <%= %>', () => {
    expect(
      failure({ '.kube/o.yaml.ejs': `${CM('o')}data:\n  x: <%= values.m %>\n` }, { valueSources: [{ origin: 'v', values: { m: { a: 1 } } }] }),
    ).toMatchInlineSnapshot(`".kube/o.yaml.ejs:6: <%= %> printed an object; print it with <%- toYaml(value, indent) %>"`);
  });

  it('finds the line of an EJS tag that is never closed', () => {
    expect(failure({ '.kube/a.yaml.ejs': `${CM('a')}data:\n  x: <%= values.x\n  y: 2\n` })).toMatchInlineSnapshot(
      `".kube/a.yaml.ejs:6: EJS tag "<%=" is never closed; close it with "%>""`,
    );
  });

  it('finds the line of a JavaScript syntax error in a tag', () => {
    expect(failure({ '.kube/a.yaml.ejs': `${CM('a')}data:\n  x: 1\n  y: <%= 1 + %>\n` })).toMatchInlineSnapshot(
      `".kube/a.yaml.ejs:7: JavaScript syntax error in a template tag: Unexpected token ')'"`,
    );
    expect(failure({ '.kube/a.yaml.ejs': `${CM('a')}<% if (values.on) { %>\ndata:\n  x: 1\n` })).toMatchInlineSnapshot(
      `".kube/a.yaml.ejs:5: JavaScript syntax error in a template tag: a "{" or "(" opened in a <% %> tag is never closed"`,
    );
    const nested = `${CM('a')}<% if (values.a) { %>\ndata:\n<% for (const k of ['}', "{"]) { %>\n  <%= k %>: 1\n<% } %>\n`;
    expect(failure({ '.kube/a.yaml.ejs': nested })).toMatch(/^\.kube\/a\.yaml\.ejs:5: JavaScript syntax error in a template tag: a "\{" or "\(" opened/);
  });

  it('refuses include()', () => {
    expect(failure({ '.kube/a.yaml.ejs': `<%- include('other.ejs') %>\n` })).toMatchInlineSnapshot(
      `".kube/a.yaml.ejs:1: include() is not supported; put shared parts in values, or repeat them"`,
    );
  });

  it('reports invalid YAML at its line, and says when the line is one of the rendered output', () => {
    expect(failure({ '.kube/a.yaml': `${CM('a')}data:\n  x: [1, 2\n  y: 3\n` })).toMatchInlineSnapshot(
      `".kube/a.yaml:7: invalid YAML: Flow sequence in block collection must be sufficiently indented and end with a ]"`,
    );
    // Lines kept in step with the template: same number, no note.
    expect(failure({ '.kube/a.yaml.ejs': `${CM('<%= release %>')}data:\n  x: <%= 1 %>\n  y: : 3\n` })).toMatchInlineSnapshot(
      `".kube/a.yaml.ejs:7: invalid YAML: Nested mappings are not allowed in compact mappings"`,
    );
    // A loop shifts the lines: the number is the rendered output's.
    expect(failure({ '.kube/a.yaml.ejs': `${CM('a')}data:\n<% for (const k of ['a', 'b']) { %>\n  <%= k %>: 1\n<% } %>\n  y: : 3\n` })).toMatchInlineSnapshot(
      `".kube/a.yaml.ejs:11: invalid YAML: Nested mappings are not allowed in compact mappings (in rendered output)"`,
    );
    expect(failure({ '.kube/a.yaml': `${CM('a')}data:\n  x: 1\n  x: 2\n` })).toMatch(/^\.kube\/a\.yaml:7: invalid YAML: Map keys must be unique$/);
  });

  it('wants every document to be an object with apiVersion, kind and metadata.name', () => {
    expect(failure({ '.kube/a.yaml': `${CM('a')}---\n- just\n- a list\n` })).toMatchInlineSnapshot(
      `".kube/a.yaml:6: a YAML document must be a Kubernetes object (a mapping), found a list"`,
    );
    expect(failure({ '.kube/a.yaml': `${CM('a')}---\nkind: ConfigMap\nmetadata:\n  name: b\n` })).toMatchInlineSnapshot(
      `".kube/a.yaml:6: missing apiVersion; every object needs apiVersion, kind and metadata.name"`,
    );
    expect(failure({ '.kube/a.yaml': `apiVersion: v1\nmetadata:\n  name: b\n` })).toMatch(/^\.kube\/a\.yaml:1: missing kind;/);
    expect(failure({ '.kube/a.yaml': `apiVersion: v1\nkind: ConfigMap\n` })).toMatch(/^\.kube\/a\.yaml:1: ConfigMap: missing metadata\.name;/);
    expect(failure({ '.kube/a.yaml': `apiVersion: batch/v1\nkind: Job\nmetadata:\n  generateName: migrate-\n` })).toMatchInlineSnapshot(
      `".kube/a.yaml:1: Job: missing metadata.name (generateName cannot be applied: give the object a fixed name); every object needs apiVersion, kind and metadata.name"`,
    );
    expect(failure({ '.kube/a.yaml': `apiVersion: v1\nkind: 3\nmetadata:\n  name: b\n` })).toMatch(/kind must be a non-empty string, found 3/);
    expect(failure({ '.kube/a.yaml': `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: 12\n` })).toMatch(/metadata\.name must be a string, found 12/);
  });

  it('checks the kind before it becomes part of a file name (render --output-dir)', () => {
    expect(failure({ '.kube/a.yaml': 'apiVersion: v1\nkind: ../../x\nmetadata:\n  name: b\n' })).toMatchInlineSnapshot(
      `".kube/a.yaml:1: kind "../../x" is not a kind: letters and digits, starting with a letter (e.g. ConfigMap)"`,
    );
    for (const kind of ['/etc/x', 'Config Map', 'Config.Map', '1Thing', 'a\\b']) {
      expect(failure({ '.kube/a.yaml': `apiVersion: v1\nkind: ${JSON.stringify(kind)}\nmetadata:\n  name: b\n` })).toMatch(
        /^\.kube\/a\.yaml:1: kind ".*" is not a kind/,
      );
    }
  });

  it('checks names as the API server would', () => {
    expect(failure({ '.kube/a.yaml': CM('My_Config') })).toMatchInlineSnapshot(
      `".kube/a.yaml:1: ConfigMap "My_Config": metadata.name must be a DNS subdomain: at most 253 lower-case letters, digits, "-" and ".", starting and ending with a letter or digit"`,
    );
    expect(failure({ '.kube/a.yaml': 'apiVersion: v1\nkind: Service\nmetadata:\n  name: 1web\n' })).toMatch(
      /Service "1web": metadata\.name must be a DNS-1035 label/,
    );
    expect(failure({ '.kube/a.yaml': 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a.b\n' })).toMatch(/must be a DNS label/);
    expect(failure({ '.kube/a.yaml': CM('a', '  namespace: Bad_NS\n') })).toMatch(/metadata\.namespace "Bad_NS" is not a namespace name/);
    expect(
      render({ '.kube/a.yaml': 'apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: "system:shop:Reader"\n' }).manifests,
    ).toHaveLength(1);
  });

  it('wants labels and annotations to be strings, and label values valid', () => {
    expect(failure({ '.kube/a.yaml': CM('a', '  labels:\n    version: 1.10\n') })).toMatchInlineSnapshot(
      `".kube/a.yaml:1: ConfigMap "a": metadata.labels.version must be a string, found 1.1; quote it"`,
    );
    expect(failure({ '.kube/a.yaml': CM('a', '  annotations:\n    enabled: true\n') })).toMatch(
      /metadata\.annotations\.enabled must be a string, found true; quote it/,
    );
    expect(
      failure({ '.kube/a.yaml.ejs': CM('a', '  labels:\n    branch: <%= git.branch %>\n') }, { git: { commit: 'c', branch: 'feature/x' } }),
    ).toMatchInlineSnapshot(
      `".kube/a.yaml.ejs:1: ConfigMap "a": label branch: "feature/x" is not a valid label value: at most 63 letters, digits, "-", "_" and ".", starting and ending with a letter or digit"`,
    );
  });

  it('names both places of a duplicate object', () => {
    expect(failure({ '.kube/a.yaml': CM('cfg'), '.kube/b.yaml': `${CM('other')}---\n${CM('cfg')}` })).toMatchInlineSnapshot(
      `".kube/b.yaml:6: duplicate object ConfigMap "cfg" in namespace "shop-staging": also defined at .kube/a.yaml:1; each object (kind, name, namespace) must be defined once"`,
    );
    // Same name in another namespace, or of another kind, is another object.
    expect(
      render({ '.kube/a.yaml': `${CM('cfg')}---\n${CM('cfg', '  namespace: other\n')}---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: cfg\n` }).manifests,
    ).toHaveLength(3);
  });

  it('rejects an unknown hook', () => {
    expect(failure({ '.kube/a.yaml': CM('a', '  annotations:\n    skiff.io/hook: pre-install\n') })).toMatchInlineSnapshot(
      `".kube/a.yaml:1: ConfigMap "a": annotation skiff.io/hook: "pre-install" is not a hook; use "pre-deploy" or "post-deploy""`,
    );
  });

  it('names the values source that is not a mapping, and a bad release name', () => {
    expect(failure({}, { valueSources: [{ origin: '.kube/values.staging.yaml', values: ['a'] }] })).toMatchInlineSnapshot(
      `".kube/values.staging.yaml: values must be a mapping at the top level, found a list"`,
    );
    expect(failure({}, { release: 'Shop_Staging' })).toMatchInlineSnapshot(
      `"release name "Shop_Staging" must be a DNS label of at most 53 characters (lower-case letters, digits and "-"); set environments.staging.release in skiff.yaml"`,
    );
  });

  it('carries file and line in the error detail', () => {
    try {
      render({ '.kube/a.yaml': CM('A') });
    } catch (e) {
      expect((e as ConfigError).detail).toEqual({ file: '.kube/a.yaml', line: 1 });
      return;
    }
    throw new Error('no error');
  });
});

describe('review apps and traceability', () => {
  it('templates see the environment slug and URL; every object carries the given annotations', () => {
    const out = renderRelease(
      input(
        {
          '.kube/ingress.yaml.ejs':
            'apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web\n  annotations: { team: shop }\nspec:\n  rules:\n    - host: <%= slug %>.review.shop.test\n# <%= url %>\n',
        },
        {
          env: 'review/feature-x',
          slug: 'review-feature-x-0a1b2c',
          url: 'http://review-feature-x-0a1b2c.review.shop.test',
          annotations: { 'skiff.io/commit': '3f2a9c1d' },
        },
      ),
    );
    const ingress = out.manifests[0]!.object as any;
    expect(ingress.spec.rules[0].host).toBe('review-feature-x-0a1b2c.review.shop.test');
    expect(ingress.metadata.annotations).toEqual({ team: 'shop', 'skiff.io/commit': '3f2a9c1d', 'skiff.io/release-namespace': 'shop-staging' });
  });
});

import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { findCycle } from '../../src/config/validate-images.js';
import { ConfigError, ExitCode } from '../../src/errors.js';

const FILE = 'skiff.yaml';

/** The ConfigError that parsing this text throws; fails the test when it parses. */
function configError(text: string): ConfigError {
  try {
    parseConfigText(text, FILE);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error(`expected a ConfigError for:\n${text}`);
}

const errorOf = (text: string) => configError(text).message;

/** Lines joined with "\n" and a final newline, so the line numbers in a test can be read off. */
const yaml = (...lines: string[]) => `${lines.join('\n')}\n`;

describe('parseConfigText: a valid configuration', () => {
  const full = yaml(
    /*  1 */ '# every section, every field',
    /*  2 */ 'project: shop',
    /*  3 */ 'registry: 127.0.0.1:5000/shop',
    /*  4 */ 'images:',
    /*  5 */ '  base:',
    /*  6 */ '    context: .',
    /*  7 */ '  app:',
    /*  8 */ '    context: ./services/app/',
    /*  9 */ '    dockerfile: docker/Dockerfile.prod',
    /* 10 */ '    target: runtime',
    /* 11 */ '    args:',
    /* 12 */ '      APP_ENV: production',
    /* 13 */ '      WORKERS: 4',
    /* 14 */ '      DEBUG: false',
    /* 15 */ '    dependsOn: [base]',
    /* 16 */ 'tests:',
    /* 17 */ '  unit:',
    /* 18 */ '    image: app',
    /* 19 */ '    command: ["npm", "test"]',
    /* 20 */ '    env: { CI: "true", RETRIES: 2 }',
    /* 21 */ '    workdir: /srv/app',
    /* 22 */ '    timeout: 90s',
    /* 23 */ '    reports: [/tmp/junit.xml, /tmp/coverage.xml]',
    /* 24 */ '    network: host',
    /* 25 */ '  smoke:',
    /* 26 */ '    image: base',
    /* 27 */ '    command: ./smoke && echo ok',
    /* 28 */ 'environments:',
    /* 29 */ '  staging:',
    /* 30 */ '    values: { replicas: 1 }',
    /* 31 */ '  production:',
    /* 32 */ '    namespace: shop-prod',
    /* 33 */ '    kubeContext: prod-cluster',
    /* 34 */ '    values:',
    /* 35 */ '      replicas: 3',
    /* 36 */ '      ingress: { host: shop.example.com }',
    /* 37 */ 'deploy:',
    /* 38 */ '  historyMax: 5',
    /* 39 */ '  autoRollback: true',
    /* 40 */ '  timeout: 2m30s',
  );

  it('reads every field and normalises paths', () => {
    const c = parseConfigText(full, FILE);
    expect(c.project).toBe('shop');
    expect(c.registry).toBe('127.0.0.1:5000/shop');
    expect(c.file).toBe(FILE);
    expect(c.images).toEqual({
      base: { name: 'base', context: '', dockerfile: 'Dockerfile', target: undefined, args: {}, dependsOn: [], secrets: [] },
      app: {
        name: 'app',
        context: 'services/app',
        dockerfile: 'docker/Dockerfile.prod',
        target: 'runtime',
        args: { APP_ENV: 'production', WORKERS: '4', DEBUG: 'false' },
        dependsOn: ['base'],
        secrets: [],
      },
    });
    expect(c.tests).toEqual({
      unit: {
        name: 'unit',
        image: 'app',
        command: ['npm', 'test'],
        env: { CI: 'true', RETRIES: '2' },
        workdir: '/srv/app',
        timeoutMs: 90_000,
        reports: ['/tmp/junit.xml', '/tmp/coverage.xml'],
        network: 'host',
      },
      smoke: {
        name: 'smoke',
        image: 'base',
        command: ['sh', '-c', './smoke && echo ok'],
        env: {},
        workdir: undefined,
        timeoutMs: 10 * 60_000,
        reports: [],
        network: 'none',
      },
    });
    expect(c.environments).toEqual({
      staging: {
        name: 'staging',
        dynamic: false,
        namespace: 'shop-staging',
        kubeContext: undefined,
        release: undefined,
        url: undefined,
        values: { replicas: 1 },
        autoRollback: undefined,
      },
      production: {
        name: 'production',
        dynamic: false,
        url: undefined,
        namespace: 'shop-prod',
        kubeContext: 'prod-cluster',
        release: undefined,
        values: { replicas: 3, ingress: { host: 'shop.example.com' } },
        autoRollback: undefined,
      },
    });
    expect(c.deploy).toEqual({ historyMax: 5, autoRollback: true, timeoutMs: 150_000, checkNodePlatforms: true });
  });

  it('records where each key stands, for later error messages', () => {
    const { positions } = parseConfigText(full, FILE);
    expect(positions.of('images.app.dockerfile')).toEqual({ line: 9, col: 5 });
    expect(positions.of('images.app.dependsOn[0]')).toEqual({ line: 15, col: 17 });
    expect(positions.of('tests.unit.reports[1]')).toEqual({ line: 23, col: 31 });
    // A path that is not in the file falls back to its nearest ancestor.
    expect(positions.of('images.base.dockerfile')).toEqual({ line: 5, col: 3 });
    expect(positions.of('nothing.here')).toEqual({ line: 1, col: 1 });
  });

  it('fills in the defaults of a minimal configuration', () => {
    const c = parseConfigText(
      yaml(
        'project: mini',
        'images:',
        '  web:',
        '  api:',
        '    context: .',
        'tests:',
        '  t:',
        '    image: web',
        '    command: [make]',
        'environments:',
        '  dev:',
      ),
      FILE,
    );
    expect(c.registry).toBeUndefined();
    expect(c.images.web).toEqual({ name: 'web', context: '', dockerfile: 'Dockerfile', target: undefined, args: {}, dependsOn: [], secrets: [] });
    expect(c.images.api!.context).toBe('');
    expect(c.tests.t).toMatchObject({ command: ['make'], timeoutMs: 600_000, network: 'none', reports: [], env: {} });
    expect(c.environments.dev).toMatchObject({ namespace: 'mini-dev', values: {} });
    expect(c.deploy).toEqual({ historyMax: 10, autoRollback: undefined, timeoutMs: 300_000, checkNodePlatforms: true });
  });

  it('reads a dynamic environment: {slug} in its names, URL and values, default names by slug', () => {
    const c = parseConfigText(
      yaml(
        'project: mini',
        'images:',
        '  web:',
        'environments:',
        '  review:',
        '    dynamic: true',
        '    url: http://{slug}.review.mini.test',
        '    values: { host: "{slug}.review.mini.test" }',
        '  preview:',
        '    dynamic: true',
        '    namespace: pr-{slug}',
      ),
      FILE,
    );
    expect(c.environments.review).toMatchObject({ dynamic: true, namespace: 'mini-{slug}', release: 'mini-{slug}', url: 'http://{slug}.review.mini.test' });
    expect(c.environments.preview).toMatchObject({ dynamic: true, namespace: 'pr-{slug}' });
    expect(errorOf(yaml('project: mini', 'images:', '  web:', 'environments:', '  review:', '    namespace: r-{slug}'))).toMatch(
      /skiff\.yaml:6:5: environments\.review\.namespace "r-\{slug\}" is not valid: a Kubernetes namespace name/,
    );
    expect(errorOf(yaml('project: mini', 'images:', '  web:', 'environments:', '  review:', '    dynamic: yes please'))).toMatch(
      /environments\.review\.dynamic must be true or false/,
    );
  });

  it('accepts the hello fixture', async () => {
    const { readFile } = await import('node:fs/promises');
    const text = await readFile(new URL('../../fixtures/hello/skiff.yaml', import.meta.url), 'utf8');
    const c = parseConfigText(text, FILE);
    expect(Object.keys(c.images)).toEqual(['base', 'app', 'worker']);
    expect(c.images.app).toMatchObject({ context: 'app', dependsOn: ['base'], args: { APP_ENV: 'production' } });
    expect(c.tests.unit!.timeoutMs).toBe(120_000);
  });
});

describe('parseConfigText: errors name skiff.yaml:LINE:COL and say what to fix', () => {
  it('invalid YAML syntax', () => {
    expect(errorOf(yaml('project: hello', 'images:', '  app:', '    context: app: x'))).toMatchInlineSnapshot(
      `"skiff.yaml:4:14: invalid YAML: Nested mappings are not allowed in compact mappings"`,
    );
    expect(errorOf(yaml('project: hello', 'images:', '  app:', '    context: app', '   dockerfile: x'))).toMatchInlineSnapshot(
      `"skiff.yaml:5:1: invalid YAML: All mapping items must start at the same column"`,
    );
  });

  it('duplicate key', () => {
    expect(errorOf(yaml('project: hello', 'images:', '  app: {}', '  app: {}'))).toMatchInlineSnapshot(
      `"skiff.yaml:4:3: invalid YAML: Map keys must be unique"`,
    );
  });

  it('unknown top-level key, with a suggestion when one is close', () => {
    expect(errorOf(yaml('project: hello', 'image:', '  app: {}', 'images:', '  app: {}'))).toMatchInlineSnapshot(
      `"skiff.yaml:2:1: unknown key "image" in the top level (did you mean "images"?)"`,
    );
    expect(errorOf(yaml('project: hello', 'images:', '  app: {}', 'colour: blue'))).toMatchInlineSnapshot(
      `"skiff.yaml:4:1: unknown key "colour" in the top level; allowed: project, registry, builder, platforms, images, tests, environments, deploy, charts"`,
    );
  });

  it('unknown key inside an image', () => {
    expect(errorOf(yaml('project: hello', 'images:', '  app:', '    contxt: app'))).toMatchInlineSnapshot(
      `"skiff.yaml:4:5: unknown key "contxt" in images.app (did you mean "context"?)"`,
    );
    expect(errorOf(yaml('project: hello', 'images:', '  app:', '    platform: linux/arm64'))).toMatchInlineSnapshot(
      `"skiff.yaml:4:5: unknown key "platform" in images.app (did you mean "platforms"?)"`,
    );
    expect(errorOf(yaml('project: hello', 'images:', '  app:', '    labels: {a: b}'))).toMatchInlineSnapshot(
      `"skiff.yaml:4:5: unknown key "labels" in images.app; allowed: context, dockerfile, target, args, dependsOn, secrets, platforms"`,
    );
  });

  it('wrong types: dockerfile as a list, a build arg as a mapping', () => {
    expect(errorOf(yaml('project: hello', 'images:', '  app:', '    dockerfile: [a, b]'))).toMatchInlineSnapshot(
      `"skiff.yaml:4:5: images.app.dockerfile must be a string, got a list"`,
    );
    expect(errorOf(yaml('project: hello', 'images:', '  app:', '    args:', '      OK: yes', '      X: { a: 1 }'))).toMatchInlineSnapshot(
      `"skiff.yaml:6:7: images.app.args.X must be a string, number or boolean, got a mapping"`,
    );
  });

  it('missing project', () => {
    expect(errorOf(yaml('images:', '  app: {}'))).toMatchInlineSnapshot(
      `"skiff.yaml:1:1: project is required: use lower-case letters, digits and "-" (it names releases)"`,
    );
  });

  it('invalid project name', () => {
    expect(errorOf(yaml('images:', '  app: {}', 'project: My_Shop'))).toMatchInlineSnapshot(
      `"skiff.yaml:3:1: project "My_Shop" is not valid: use lower-case letters, digits and "-" (it names releases)"`,
    );
  });

  it('tests.X.image names an image that does not exist', () => {
    expect(
      errorOf(yaml('project: hello', 'images:', '  app: {}', '  worker: {}', 'tests:', '  unit:', '    image: ap', '    command: make test')),
    ).toMatchInlineSnapshot(`"skiff.yaml:7:5: tests.unit.image names "ap", which is not an image in skiff.yaml (images: app, worker)"`);
  });

  it('dependsOn an unknown image', () => {
    expect(errorOf(yaml('project: hello', 'images:', '  app:', '    dependsOn: [base]'))).toMatchInlineSnapshot(
      `"skiff.yaml:4:17: images.app.dependsOn names "base", which is not an image in skiff.yaml (images: app)"`,
    );
  });

  it('dependsOn itself', () => {
    expect(errorOf(yaml('project: hello', 'images:', '  base: {}', '  app:', '    dependsOn:', '      - base', '      - app'))).toMatchInlineSnapshot(
      `"skiff.yaml:7:9: image "app" depends on itself"`,
    );
  });

  it('a cycle of three images names the path', () => {
    const text = yaml('project: hello', 'images:', '  a:', '    dependsOn: [b]', '  b:', '    dependsOn: [c]', '  c:', '    dependsOn: [a]');
    expect(errorOf(text)).toMatchInlineSnapshot(`"skiff.yaml:4:5: dependency cycle between images: a → b → c → a; remove one of these dependsOn entries"`);
    expect(configError(text).detail).toHaveLength(1);
  });

  it('a duration that is not one', () => {
    expect(
      errorOf(yaml('project: hello', 'images:', '  app: {}', 'tests:', '  unit:', '    image: app', '    command: make', '    timeout: 5 minutes')),
    ).toMatchInlineSnapshot(`"skiff.yaml:8:5: tests.unit.timeout must be a duration such as "90s", "5m" or "1h", got "5 minutes""`);
    expect(errorOf(yaml('project: hello', 'images:', '  app: {}', 'deploy:', '  timeout: 0'))).toMatchInlineSnapshot(
      `"skiff.yaml:5:3: deploy.timeout must be a duration such as "90s", "5m" or "1h", got 0"`,
    );
  });

  it('reports with a relative path', () => {
    expect(
      errorOf(
        yaml(
          'project: hello',
          'images:',
          '  app: {}',
          'tests:',
          '  unit:',
          '    image: app',
          '    command: make',
          '    reports: [/tmp/ok.xml, out/report.xml]',
        ),
      ),
    ).toMatchInlineSnapshot(`"skiff.yaml:8:28: tests.unit.reports[1] must be an absolute path inside the container, got "out/report.xml""`);
  });

  it('a test name that is not a plain folder name: exit 2 at its line (it names .skiff/reports/<test>)', () => {
    const withTest = (name: string) =>
      yaml('project: hello', 'images:', '  app: {}', 'tests:', `  ${JSON.stringify(name)}:`, '    image: app', '    command: make');
    const e = configError(withTest('../../..'));
    expect(e.exitCode).toBe(ExitCode.badInput);
    expect(e.message).toMatchInlineSnapshot(
      `"skiff.yaml:5:3: test name "../../.." must be at most 63 letters, digits, ".", "_" or "-", starting with a letter or digit (it names .skiff/reports/<test>)"`,
    );
    for (const bad of ['..', '.', 'a/b', '/abs', '.hidden', 'a b', 'x'.repeat(64)]) expect(errorOf(withTest(bad))).toMatch(/^skiff\.yaml:5:3: test name /);
    for (const good of ['unit', 'e2e_Tests', 'lint.v2', 'a-b']) expect(() => parseConfigText(withTest(good), FILE)).not.toThrow();
    // The one name taken by skiff's own report beside the tests' folders.
    expect(errorOf(withTest('junit.xml'))).toMatchInlineSnapshot(
      `"skiff.yaml:5:3: test name "junit.xml" is taken: .skiff/reports/junit.xml is the JUnit report of all tests; rename the test"`,
    );
  });

  it('a context outside the repository, and an absolute one', () => {
    expect(errorOf(yaml('project: hello', 'images:', '  app:', '    context: ../x'))).toMatchInlineSnapshot(
      `"skiff.yaml:4:5: images.app.context "../x" points outside the repository"`,
    );
    // Normalised first: a path that climbs out through a subdirectory is caught too.
    expect(errorOf(yaml('project: hello', 'images:', '  app:', '    context: app/../../x'))).toMatchInlineSnapshot(
      `"skiff.yaml:4:5: images.app.context "app/../../x" points outside the repository"`,
    );
    expect(errorOf(yaml('project: hello', 'images:', '  app:', '    context: /srv/app'))).toMatchInlineSnapshot(
      `"skiff.yaml:4:5: images.app.context must be a relative path inside the repository, got "/srv/app""`,
    );
  });

  it('historyMax 0', () => {
    expect(errorOf(yaml('project: hello', 'images:', '  app: {}', 'deploy:', '  historyMax: 0'))).toMatchInlineSnapshot(
      `"skiff.yaml:5:3: deploy.historyMax must be a whole number ≥ 1, got 0"`,
    );
  });

  it('deploy.checkNodePlatforms: off with false, refused unless a boolean', () => {
    const off = parseConfigText(yaml('project: hello', 'images:', '  app: {}', 'deploy:', '  checkNodePlatforms: false'), FILE);
    expect(off.deploy.checkNodePlatforms).toBe(false);
    expect(errorOf(yaml('project: hello', 'images:', '  app: {}', 'deploy:', '  checkNodePlatforms: "no"'))).toMatchInlineSnapshot(
      `"skiff.yaml:5:3: deploy.checkNodePlatforms must be true or false"`,
    );
  });

  it('an environment with a bad namespace', () => {
    expect(errorOf(yaml('project: hello', 'images:', '  app: {}', 'environments:', '  staging:', '    namespace: Staging_NS'))).toMatchInlineSnapshot(
      `"skiff.yaml:6:5: environments.staging.namespace "Staging_NS" is not valid: a Kubernetes namespace name"`,
    );
  });

  it('a file that is empty or not a mapping', () => {
    expect(errorOf('')).toMatchInlineSnapshot(`"skiff.yaml:1:1: the file is empty: define at least "project" and "images" (and 2 more problems)"`);
    expect(errorOf(yaml('- project: hello'))).toMatchInlineSnapshot(
      `"skiff.yaml:1:1: the top level must be a mapping of keys (project, images, ...), got a list (and 2 more problems)"`,
    );
  });

  it('with several problems, reports the first by line and counts the others', () => {
    const text = yaml(
      /* 1 */ 'deploy:',
      /* 2 */ '  historyMax: 0',
      /* 3 */ 'project: hello',
      /* 4 */ 'images:',
      /* 5 */ '  app:',
      /* 6 */ '    contxt: x',
      /* 7 */ '    dockerfile: [a]',
    );
    const err = configError(text);
    // deploy is checked last, but stands first in the file.
    expect(err.message).toMatchInlineSnapshot(`"skiff.yaml:2:3: deploy.historyMax must be a whole number ≥ 1, got 0 (and 2 more problems)"`);
    expect((err.detail as Array<{ line: number; path: string }>).map((p) => `${p.line}:${p.path}`)).toEqual([
      '2:deploy.historyMax',
      '6:images.app.contxt',
      '7:images.app.dockerfile',
    ]);
    expect(errorOf(yaml('project: hello', 'images:', '  app:', '    contxt: x', 'deploy:', '  historyMax: 0'))).toMatch(
      /^skiff\.yaml:4:5: unknown key "contxt" in images\.app \(did you mean "context"\?\) \(and 1 more problem\)$/,
    );
  });

  it('is a ConfigError with exit code 2', () => {
    const err = configError(yaml('project: hello'));
    expect(err.exitCode).toBe(2);
    expect(err.exitCode).toBe(ExitCode.badInput);
    expect(err.kind).toBe('config');
    expect(err.message).toBe('skiff.yaml:1:1: images is required');
  });
});

describe('findCycle', () => {
  it('finds none in a DAG and returns a closed path otherwise', () => {
    expect(findCycle({ a: { dependsOn: ['b', 'c'] }, b: { dependsOn: ['c'] }, c: { dependsOn: [] } })).toBeUndefined();
    expect(findCycle({ x: { dependsOn: [] }, a: { dependsOn: ['b'] }, b: { dependsOn: ['a'] } })).toEqual(['a', 'b', 'a']);
    // Self-dependencies and unknown names are reported elsewhere, not as cycles.
    expect(findCycle({ a: { dependsOn: ['a', 'zzz'] } })).toBeUndefined();
  });
});

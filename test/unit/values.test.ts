import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { environmentValues, parseValuesFile } from '../../src/render/values.js';

function files(entries: Record<string, string>) {
  return Object.entries(entries).map(([path, content]) => ({ path, content }));
}

/** The ConfigError message a call fails with. */
function failure(run: () => unknown): string {
  try {
    run();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).exitCode).toBe(2);
    return (e as Error).message;
  }
  throw new Error('the call did not fail');
}

describe('environmentValues', () => {
  it('reads .kube/values.yaml', () => {
    expect(environmentValues(files({ '.kube/values.yaml': 'replicas: 2\n', '.kube/app.yaml': 'kind: x\n' }), 'staging')).toEqual([
      { origin: '.kube/values.yaml', values: { replicas: 2 } },
    ]);
  });

  it('reads .kube/values.yml', () => {
    expect(environmentValues(files({ '.kube/values.yml': 'replicas: 2\n' }), 'staging')).toEqual([{ origin: '.kube/values.yml', values: { replicas: 2 } }]);
  });

  it("reads the environment's file after the base file, in either spelling", () => {
    const tree = files({
      '.kube/values.staging.yml': 'replicas: 3\n',
      '.kube/values.production.yaml': 'replicas: 9\n',
      '.kube/values.yaml': 'replicas: 1\nimage: { pullPolicy: Always }\n',
    });
    expect(environmentValues(tree, 'staging')).toEqual([
      { origin: '.kube/values.yaml', values: { replicas: 1, image: { pullPolicy: 'Always' } } },
      { origin: '.kube/values.staging.yml', values: { replicas: 3 } },
    ]);
    expect(environmentValues(tree, 'production').map((s) => s.origin)).toEqual(['.kube/values.yaml', '.kube/values.production.yaml']);
    expect(environmentValues(files({ '.kube/values.staging.yaml': 'a: 1\n' }), 'staging')).toEqual([{ origin: '.kube/values.staging.yaml', values: { a: 1 } }]);
  });

  it('reads nothing when there are no values files, and an empty file as no values', () => {
    expect(environmentValues(files({ '.kube/app/values.yaml': 'a: 1\n' }), 'staging')).toEqual([]);
    expect(environmentValues(files({ '.kube/values.yaml': '# nothing yet\n' }), 'staging')).toEqual([{ origin: '.kube/values.yaml', values: {} }]);
  });

  it('refuses a values file in both spellings, naming both', () => {
    expect(failure(() => environmentValues(files({ '.kube/values.yml': 'a: 1\n', '.kube/values.yaml': 'a: 2\n' }), 'staging'))).toBe(
      '.kube/values.yaml and .kube/values.yml both exist; keep one of them',
    );
    expect(
      failure(() => environmentValues(files({ '.kube/values.yaml': 'a: 1\n', '.kube/values.prod.yaml': 'a: 2\n', '.kube/values.prod.yml': 'a: 3\n' }), 'prod')),
    ).toBe('.kube/values.prod.yaml and .kube/values.prod.yml both exist; keep one of them');
  });

  it('refuses values that are not a mapping, at path:1:1', () => {
    expect(failure(() => environmentValues(files({ '.kube/values.yml': '- a\n- b\n' }), 'staging'))).toBe('.kube/values.yml:1:1: values must be a mapping');
    expect(failure(() => environmentValues(files({ '.kube/values.staging.yaml': 'just text\n' }), 'staging'))).toBe(
      '.kube/values.staging.yaml:1:1: values must be a mapping',
    );
  });

  it('reports invalid YAML with its position', () => {
    expect(failure(() => environmentValues(files({ '.kube/values.yaml': 'a: 1\na: 2\n' }), 'staging'))).toMatch(/^\.kube\/values\.yaml:2:1: invalid YAML: /);
  });
});

describe('parseValuesFile', () => {
  it('parses a mapping, and nothing as an empty mapping', () => {
    expect(parseValuesFile('ci/values.yaml', 'a:\n  b: [1, 2]\n')).toEqual({ a: { b: [1, 2] } });
    expect(parseValuesFile('ci/values.yaml', '')).toEqual({});
    expect(parseValuesFile('ci/values.yaml', 'null\n')).toEqual({});
  });

  it('refuses a scalar or a list', () => {
    expect(failure(() => parseValuesFile('ci/values.yaml', '42\n'))).toBe('ci/values.yaml:1:1: values must be a mapping');
    expect(failure(() => parseValuesFile('ci/values.yaml', '[1]\n'))).toBe('ci/values.yaml:1:1: values must be a mapping');
  });
});

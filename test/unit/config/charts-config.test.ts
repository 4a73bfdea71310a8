import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../../src/config/load.js';
import { ConfigError, ExitCode } from '../../../src/errors.js';

const FILE = 'skiff.yaml';

/** skiff.yaml with two environments and the given lines under charts: (line 8 is the first of them). */
const withCharts = (...lines: string[]) =>
  [
    /* 1 */ 'project: shop',
    /* 2 */ 'images:',
    /* 3 */ '  app: {}',
    /* 4 */ 'environments:',
    /* 5 */ '  staging: {}',
    /* 6 */ '  production: {}',
    /* 7 */ 'charts:',
    ...lines,
  ].join('\n') + '\n';

/** One chart "cache" with these keys (line 9 is the first of them). */
const cache = (...keys: string[]) => withCharts('  cache:', ...keys.map((k) => `    ${k}`));

function errorOf(text: string): string {
  try {
    parseConfigText(text, FILE);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).exitCode).toBe(ExitCode.badInput);
    expect((e as ConfigError).message).not.toContain('\n');
    return (e as ConfigError).message;
  }
  throw new Error(`expected a ConfigError for:\n${text}`);
}

const chartsOf = (text: string) => parseConfigText(text, FILE).charts;

describe('skiff.yaml charts: a valid section', () => {
  it('reads an OCI chart, a chart repository chart and a folder chart', () => {
    const charts = chartsOf(
      withCharts(
        '  cache:',
        '    chart: oci://127.0.0.1:5000/charts/redis',
        '    version: 19.6.4',
        '    values: .kube/charts/cache.values.yaml',
        '    environments: [staging, production]',
        '  queue:',
        '    chart: https://charts.example.com/stable/#rabbitmq',
        '    version: ^14.0.0',
        '  api:',
        '    chart: ./charts/api/',
        '    version: 1.2.0',
        '    values: ./.kube/charts/api.yml.ejs',
      ),
    );
    expect(charts).toEqual({
      cache: {
        name: 'cache',
        chart: 'oci://127.0.0.1:5000/charts/redis',
        source: { kind: 'oci', repository: '127.0.0.1:5000/charts/redis' },
        version: '19.6.4',
        values: '.kube/charts/cache.values.yaml',
        environments: ['staging', 'production'],
      },
      queue: {
        name: 'queue',
        chart: 'https://charts.example.com/stable/#rabbitmq',
        source: { kind: 'repo', url: 'https://charts.example.com/stable', name: 'rabbitmq' },
        version: '^14.0.0',
        values: undefined,
        environments: undefined,
      },
      api: {
        name: 'api',
        chart: './charts/api/',
        source: { kind: 'folder', path: 'charts/api' },
        version: '1.2.0',
        values: '.kube/charts/api.yml.ejs',
        environments: undefined,
      },
    });
  });

  it('normalises a folder path that stays inside the repository; a folder needs no version', () => {
    const source = (chart: string) => chartsOf(cache(`chart: ${chart}`)).cache!.source;
    expect(source('charts/x')).toEqual({ kind: 'folder', path: 'charts/x' });
    expect(source('./charts/x')).toEqual({ kind: 'folder', path: 'charts/x' });
    expect(source('charts//x/./')).toEqual({ kind: 'folder', path: 'charts/x' });
    expect(source('vendor/../charts/x')).toEqual({ kind: 'folder', path: 'charts/x' });
    expect(chartsOf(cache('chart: charts/x')).cache!.version).toBeUndefined();
  });

  it('accepts a range for fetched charts and every values extension', () => {
    for (const version of ['19.6.4', 'v19.6.4', '^19.6.0', '~19.6', '>=19.0.0 <20.0.0', '19.x'])
      expect(chartsOf(cache('chart: oci://r.example.com/charts/redis', `version: "${version}"`)).cache!.version).toBe(version);
    for (const ext of ['yaml', 'yml', 'yaml.ejs', 'yml.ejs'])
      expect(chartsOf(cache('chart: charts/x', `values: .kube/charts/sub/x.${ext}`)).cache!.values).toBe(`.kube/charts/sub/x.${ext}`);
  });

  it('is {} without a charts: section, or with an empty one', () => {
    const text = ['project: shop', 'images:', '  app: {}'].join('\n');
    expect(parseConfigText(text, FILE).charts).toEqual({});
    expect(parseConfigText(`${text}\ncharts:\n`, FILE).charts).toEqual({});
  });
});

describe('skiff.yaml charts: errors name skiff.yaml:LINE:COL and say what to fix', () => {
  it('a chart name that is not a DNS label of at most 53 characters', () => {
    expect(errorOf(withCharts('  Cache_1:', '    chart: charts/x'))).toMatchInlineSnapshot(
      `"skiff.yaml:8:3: chart name "Cache_1" must be at most 53 lower-case letters, digits and "-", starting and ending with a letter or digit (it names where the chart's objects come from in messages, e.g. "chart cache: templates/master.yaml")"`,
    );
    expect(errorOf(withCharts(`  ${'c'.repeat(54)}:`, '    chart: charts/x'))).toMatch(/^skiff\.yaml:8:3: chart name "c{54}" must be at most 53 /);
    expect(chartsOf(withCharts(`  ${'c'.repeat(53)}:`, '    chart: charts/x'))).toHaveProperty('c'.repeat(53));
  });

  it('an unknown key, and a chart without chart:', () => {
    expect(errorOf(cache('chart: charts/x', 'vesion: 1.0.0'))).toMatchInlineSnapshot(
      `"skiff.yaml:10:5: unknown key "vesion" in charts.cache (did you mean "version"?)"`,
    );
    expect(errorOf(cache('chart: charts/x', 'namespace: cache'))).toMatchInlineSnapshot(
      `"skiff.yaml:10:5: unknown key "namespace" in charts.cache; allowed: chart, version, values, environments"`,
    );
    expect(errorOf(cache('version: 1.0.0'))).toMatchInlineSnapshot(
      `"skiff.yaml:8:3: charts.cache.chart is required: use oci://host[:port]/path or https://<chart repository>#<chart>, or a folder in the repository, e.g. chart: oci://registry.example.com/charts/redis"`,
    );
    expect(errorOf(withCharts('  cache:'))).toMatch(/^skiff\.yaml:8:3: charts\.cache\.chart is required/);
    expect(errorOf(cache('chart: ""'))).toMatchInlineSnapshot(
      `"skiff.yaml:9:5: charts.cache.chart is empty: use oci://host[:port]/path or https://<chart repository>#<chart>, or a folder in the repository"`,
    );
  });

  it('an OCI reference with a tag, a digest, upper case, or no path', () => {
    expect(errorOf(cache('chart: oci://127.0.0.1:5000/charts/redis:19.6.4', 'version: 19.6.4'))).toMatchInlineSnapshot(
      `"skiff.yaml:9:5: charts.cache.chart "oci://127.0.0.1:5000/charts/redis:19.6.4" has a tag or digest: name the repository only and put the version in version:, e.g. chart: oci://registry.example.com/charts/redis with version: 19.6.4"`,
    );
    expect(errorOf(cache(`chart: oci://r.example.com/charts/redis@sha256:${'a'.repeat(64)}`, 'version: 19.6.4'))).toMatch(
      /charts\.cache\.chart .* has a tag or digest/,
    );
    expect(errorOf(cache('chart: oci://r.example.com/Charts/Redis', 'version: 19.6.4'))).toMatchInlineSnapshot(
      `"skiff.yaml:9:5: charts.cache.chart "oci://r.example.com/Charts/Redis" is not valid: use oci://host[:port]/path with the path in lower case, e.g. oci://registry.example.com/charts/redis"`,
    );
    expect(errorOf(cache('chart: oci://127.0.0.1:5000', 'version: 19.6.4'))).toMatch(
      /^skiff\.yaml:9:5: charts\.cache\.chart "oci:\/\/127\.0\.0\.1:5000" is not valid/,
    );
  });

  it('a chart repository URL without #<chart>, with credentials, or another scheme', () => {
    expect(errorOf(cache('chart: https://charts.example.com/stable', 'version: 1.0.0'))).toMatchInlineSnapshot(
      `"skiff.yaml:9:5: charts.cache.chart "https://charts.example.com/stable" names a chart repository but not the chart in it: add #<chart>, e.g. https://charts.example.com/stable#redis"`,
    );
    expect(errorOf(cache('chart: "https://charts.example.com/stable#"', 'version: 1.0.0'))).toMatch(/names a chart repository but not the chart in it/);
    expect(errorOf(cache('chart: https://me:hunter2@charts.example.com/stable#redis', 'version: 1.0.0'))).toMatchInlineSnapshot(
      `"skiff.yaml:9:5: charts.cache.chart has credentials in its URL: remove them; skiff reads chart registry credentials from the same places as image pushes"`,
    );
    expect(errorOf(cache('chart: s3://bucket/charts#redis', 'version: 1.0.0'))).toMatchInlineSnapshot(
      `"skiff.yaml:9:5: charts.cache.chart "s3://bucket/charts#redis" is not valid: skiff cannot fetch charts over s3://; use oci://host[:port]/path or https://<chart repository>#<chart>, or a folder in the repository"`,
    );
  });

  it('a folder outside the repository, absolute, the root, inside .kube/ or the project chart', () => {
    expect(errorOf(cache('chart: ../charts/x'))).toMatchInlineSnapshot(
      `"skiff.yaml:9:5: charts.cache.chart "../charts/x" points outside the repository; put the chart in a folder of the repository, e.g. charts/cache"`,
    );
    // Normalised first: a path that climbs out through a subdirectory is refused too.
    expect(errorOf(cache('chart: charts/../../x'))).toMatch(/^skiff\.yaml:9:5: charts\.cache\.chart "charts\/\.\.\/\.\.\/x" points outside the repository/);
    expect(errorOf(cache('chart: /srv/charts/x'))).toMatchInlineSnapshot(
      `"skiff.yaml:9:5: charts.cache.chart "/srv/charts/x" must be a relative path to a chart folder inside the repository, e.g. charts/cache, or oci://host[:port]/path or https://<chart repository>#<chart>"`,
    );
    expect(errorOf(cache('chart: ./'))).toMatchInlineSnapshot(
      `"skiff.yaml:9:5: charts.cache.chart "./" names the repository's root; put the chart in a folder of its own, e.g. charts/cache"`,
    );
    expect(errorOf(cache('chart: .kube/charts/x'))).toMatchInlineSnapshot(
      `"skiff.yaml:9:5: charts.cache.chart ".kube/charts/x" is inside .kube/, whose files are skiff's templates and chart values; move the chart out, e.g. to charts/cache"`,
    );
    expect(errorOf(cache('chart: ./.kube'))).toMatch(/is inside \.kube\//);
    expect(errorOf(cache('chart: .helm/'))).toMatchInlineSnapshot(
      `"skiff.yaml:9:5: charts.cache.chart ".helm/" is the project's own chart, which skiff renders without a charts: entry; remove this entry"`,
    );
  });

  it('a version that is missing, not a version, a number, or a range for a folder', () => {
    expect(errorOf(cache('chart: oci://r.example.com/charts/redis'))).toMatchInlineSnapshot(
      `"skiff.yaml:8:3: charts.cache.version is required: use an exact version (19.6.4) or a range (^19.6.0, ~19.6, >=19.0.0 <20.0.0), which "skiff charts update" resolves and locks"`,
    );
    expect(errorOf(cache('chart: https://charts.example.com#redis'))).toMatch(/^skiff\.yaml:8:3: charts\.cache\.version is required/);
    expect(errorOf(cache('chart: oci://r.example.com/charts/redis', 'version: latest'))).toMatchInlineSnapshot(
      `"skiff.yaml:10:5: charts.cache.version "latest" is not a version or a range: use an exact version (19.6.4) or a range (^19.6.0, ~19.6, >=19.0.0 <20.0.0)"`,
    );
    expect(errorOf(cache('chart: oci://r.example.com/charts/redis', 'version: 1.0'))).toMatchInlineSnapshot(
      `"skiff.yaml:10:5: charts.cache.version must be a string, got a number; quote it (version: "1.0"), as YAML reads 1.0 as the number 1"`,
    );
    expect(errorOf(cache('chart: charts/x', 'version: ^1.2.0'))).toMatchInlineSnapshot(
      `"skiff.yaml:10:5: charts.cache.version "^1.2.0" is not an exact version: a folder chart's version is the one in its Chart.yaml; write it exactly (e.g. 1.2.0) or leave version out"`,
    );
  });

  it('values outside .kube/charts/, with "..", absolute, or not YAML', () => {
    expect(errorOf(cache('chart: charts/x', 'values: values/cache.yaml'))).toMatchInlineSnapshot(
      `"skiff.yaml:10:5: charts.cache.values "values/cache.yaml" must be a file under .kube/charts/ (the folder of chart values, which are never objects of their own), e.g. .kube/charts/cache.values.yaml"`,
    );
    expect(errorOf(cache('chart: charts/x', 'values: .kube/cache.yaml'))).toMatch(
      /^skiff\.yaml:10:5: charts\.cache\.values "\.kube\/cache\.yaml" must be a file under \.kube\/charts\//,
    );
    expect(errorOf(cache('chart: charts/x', 'values: .kube/charts/../../secrets.yaml'))).toMatchInlineSnapshot(
      `"skiff.yaml:10:5: charts.cache.values ".kube/charts/../../secrets.yaml" has a ".." segment; name the file by its plain path under .kube/charts/, e.g. .kube/charts/cache.values.yaml"`,
    );
    // Even one that would end up back inside .kube/charts/.
    expect(errorOf(cache('chart: charts/x', 'values: .kube/charts/../charts/x.yaml'))).toMatch(/has a "\.\." segment/);
    expect(errorOf(cache('chart: charts/x', 'values: /etc/x.yaml'))).toMatchInlineSnapshot(
      `"skiff.yaml:10:5: charts.cache.values must be a relative path inside the repository, under .kube/charts/, got "/etc/x.yaml"; e.g. .kube/charts/cache.values.yaml"`,
    );
    expect(errorOf(cache('chart: charts/x', 'values: .kube/charts/cache.json'))).toMatchInlineSnapshot(
      `"skiff.yaml:10:5: charts.cache.values ".kube/charts/cache.json" must end in .yaml, .yml, .yaml.ejs, .yml.ejs, e.g. .kube/charts/cache.values.yaml"`,
    );
    expect(errorOf(cache('chart: charts/x', 'values: .kube/charts/'))).toMatch(/must be a file under \.kube\/charts\//);
  });

  it('environments that are empty, not a list, or name an undeclared environment', () => {
    expect(errorOf(cache('chart: charts/x', 'environments: [staging, prod]'))).toMatchInlineSnapshot(
      `"skiff.yaml:10:29: charts.cache.environments names "prod", which is not an environment in skiff.yaml (environments: staging, production)"`,
    );
    expect(errorOf(cache('chart: charts/x', 'environments: []'))).toMatchInlineSnapshot(
      `"skiff.yaml:10:5: charts.cache.environments is empty: name at least one environment, or leave environments out to deploy the chart in every one"`,
    );
    expect(errorOf(cache('chart: charts/x', 'environments: staging'))).toMatchInlineSnapshot(
      `"skiff.yaml:10:5: charts.cache.environments must be a list of environment names, got a string, e.g. environments: [staging, production]"`,
    );
    const noEnvironments = ['project: shop', 'images:', '  app: {}', 'charts:', '  cache:', '    chart: charts/x', '    environments: [staging]'].join('\n');
    expect(errorOf(noEnvironments)).toMatchInlineSnapshot(
      `"skiff.yaml:7:20: charts.cache.environments names "staging", which is not an environment in skiff.yaml (no environments are declared)"`,
    );
  });

  it('lists charts among the top-level keys', () => {
    expect(errorOf(['project: shop', 'images:', '  app: {}', 'chart:', '  cache: {}'].join('\n'))).toMatchInlineSnapshot(
      `"skiff.yaml:4:1: unknown key "chart" in the top level (did you mean "charts"?)"`,
    );
    expect(errorOf(['project: shop', 'images:', '  app: {}', 'charts: [redis]'].join('\n'))).toMatchInlineSnapshot(
      `"skiff.yaml:4:1: charts must be a mapping, got a list"`,
    );
  });
});

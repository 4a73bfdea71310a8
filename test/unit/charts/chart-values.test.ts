// What the project's own chart sees of the release (.Values.skiff, .Values.werf,
// .Values.global.env), the version a chart folder's Chart.yaml gives, and the
// chart changes `skiff diff` shows between the deployed revision and a render.
import { describe, expect, it } from 'vitest';
import { chartVersion, ownChartValues } from '../../../src/charts/render-charts.js';
import type { ChartFile } from '../../../src/charts/chart-files.js';
import { chartChanges } from '../../../src/actions/diff.js';
import { ConfigError, ExitCode } from '../../../src/errors.js';
import type { ChartRecord } from '../../../src/release/release-record.js';

const IMAGES = { app: '127.0.0.1:5000/shop/app:3f2a', worker: '127.0.0.1:5000/shop/worker:9c1d' };

const release = (values: Record<string, unknown>, url?: string) => ({
  values,
  images: IMAGES,
  env: 'staging',
  namespace: 'shop-staging',
  release: 'shop-staging',
  slug: 'staging',
  url,
});

describe('ownChartValues', () => {
  it("gives the own chart skiff's merged values plus .Values.skiff, .Values.werf and .Values.global.env", () => {
    expect(ownChartValues(release({ replicas: 2, ingress: { host: 'shop.example.com' } }, 'https://shop.example.com'))).toEqual({
      replicas: 2,
      ingress: { host: 'shop.example.com' },
      global: { env: 'staging' },
      skiff: { images: IMAGES, env: 'staging', namespace: 'shop-staging', release: 'shop-staging', slug: 'staging', url: 'https://shop.example.com' },
      werf: { image: IMAGES, env: 'staging', namespace: 'shop-staging', name: 'shop-staging' },
    });
  });

  it('gives .Values.skiff.url as "" when the environment has no URL, so templates can test it', () => {
    expect(ownChartValues(release({})).skiff).toMatchObject({ url: '' });
  });

  it("keeps the project's other global values, with env set to the environment", () => {
    const values = ownChartValues(release({ global: { imageRegistry: 'mirror.example.com', env: 'from-values' } }));
    expect(values.global).toEqual({ imageRegistry: 'mirror.example.com', env: 'staging' });
  });

  it("the release's facts win over values of the same name, and the merged values are left as they were", () => {
    const input = { skiff: { env: 'production' }, werf: { env: 'production' }, global: { env: 'production' } };
    const values = ownChartValues(release(input)) as { skiff: { env: string }; werf: { env: string }; global: { env: string } };
    expect([values.skiff.env, values.werf.env, values.global.env]).toEqual(['staging', 'staging', 'staging']);
    expect(input).toEqual({ skiff: { env: 'production' }, werf: { env: 'production' }, global: { env: 'production' } });
  });

  it('is plain JSON (what skiff writes for helm): nothing lost in the round trip', () => {
    const values = ownChartValues(release({ a: [1, 'two', { three: true }] }));
    expect(JSON.parse(JSON.stringify(values))).toEqual(values);
  });
});

const files = (chartYaml?: string): ChartFile[] => [
  { path: 'templates/x.yaml', content: Buffer.from('kind: ConfigMap\n') },
  ...(chartYaml === undefined ? [] : [{ path: 'Chart.yaml', content: Buffer.from(chartYaml) }]),
];

/** The ConfigError (exit 2, one line) that f throws. */
function configError(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).exitCode).toBe(ExitCode.badInput);
    expect((e as ConfigError).message).not.toContain('\n');
    return (e as ConfigError).message;
  }
  throw new Error('expected a ConfigError');
}

describe('chartVersion', () => {
  it('reads version from Chart.yaml', () => {
    expect(chartVersion(files('apiVersion: v2\nname: cache\nversion: 1.4.0-rc.1\n'), 'charts/cache/Chart.yaml', 'chart cache')).toBe('1.4.0-rc.1');
  });

  it('reads a version YAML takes for a number as Helm does (1.10 is 1.1)', () => {
    expect(chartVersion(files('apiVersion: v2\nname: cache\nversion: 1.10\n'), 'charts/cache/Chart.yaml', 'chart cache')).toBe('1.1');
  });

  it('a folder without Chart.yaml: exit 2 naming the chart and what a chart folder has', () => {
    expect(configError(() => chartVersion(files(), 'charts/cache/Chart.yaml', 'chart cache'))).toBe(
      'chart cache: charts/cache/Chart.yaml does not exist; a chart folder has a Chart.yaml (apiVersion: v2, name, version)',
    );
  });

  it('invalid YAML: exit 2 naming the file, one line', () => {
    expect(configError(() => chartVersion(files('name: [cache\nversion: 1.0.0\n'), '.helm/Chart.yaml', '.helm'))).toMatch(
      /^\.helm\/Chart\.yaml: invalid YAML: \S/,
    );
  });

  it.each([
    ['no version', 'apiVersion: v2\nname: cache\n'],
    ['an empty file', ''],
    ['a version that is a list', 'apiVersion: v2\nname: cache\nversion: [1]\n'],
  ])('%s: exit 2 saying to add one', (_, text) => {
    expect(configError(() => chartVersion(files(text), '.helm/Chart.yaml', '.helm'))).toBe('.helm/Chart.yaml: has no version; add version: 0.1.0');
  });
});

const digest = (c: string) => `sha256:${c.repeat(64)}`;
const chart = (name: string, version: string, d: string): ChartRecord => ({ name, chart: `oci://127.0.0.1:5000/charts/${name}`, version, digest: digest(d) });

describe('chartChanges', () => {
  const cache = chart('cache', '19.6.4', 'a');
  const queue = chart('queue', '14.2.1', 'b');

  it('nothing when the charts are the same (and when there are none)', () => {
    expect(chartChanges([cache, queue], [{ ...queue }, { ...cache }])).toEqual([]);
    expect(chartChanges(undefined, undefined)).toEqual([]);
    expect(chartChanges([], [])).toEqual([]);
  });

  it('an added chart has only "to", version and the start of its digest', () => {
    expect(chartChanges([cache], [cache, queue])).toEqual([{ chart: 'queue', to: '14.2.1 (sha256:bbbbbbbbbbbb)' }]);
    // A release deployed before it had charts has none in its record.
    expect(chartChanges(undefined, [cache])).toEqual([{ chart: 'cache', to: '19.6.4 (sha256:aaaaaaaaaaaa)' }]);
  });

  it('a removed chart has only "from"', () => {
    expect(chartChanges([cache, queue], [queue])).toEqual([{ chart: 'cache', from: '19.6.4 (sha256:aaaaaaaaaaaa)' }]);
  });

  it('a version change shows both versions', () => {
    expect(chartChanges([cache], [chart('cache', '19.7.0', 'c')])).toEqual([
      { chart: 'cache', from: '19.6.4 (sha256:aaaaaaaaaaaa)', to: '19.7.0 (sha256:cccccccccccc)' },
    ]);
  });

  it('a change of content under the same version (a folder chart edited, a chart re-pushed) is a change', () => {
    expect(chartChanges([cache], [chart('cache', '19.6.4', 'd')])).toEqual([
      { chart: 'cache', from: '19.6.4 (sha256:aaaaaaaaaaaa)', to: '19.6.4 (sha256:dddddddddddd)' },
    ]);
  });

  it("lists changed and added charts in the render's order, then removed ones", () => {
    const changes = chartChanges([cache, queue, chart('old', '1.0.0', 'e')], [chart('web', '0.1.0', 'f'), chart('queue', '15.0.0', 'b'), cache]);
    expect(changes.map((c) => `${c.chart} ${c.from ? 'from' : ''}${c.from && c.to ? '+' : ''}${c.to ? 'to' : ''}`)).toEqual([
      'web to',
      'queue from+to',
      'old from',
    ]);
  });
});

import { describe, expect, it } from 'vitest';
import { formatLock, LOCK_FILE, lockedCharts, parseLock, type ChartLock, type LockedChart } from '../../../src/charts/lock-file.js';
import type { ChartConfig } from '../../../src/config/project-config.js';
import { ConfigError, ExitCode } from '../../../src/errors.js';

const DIGEST_A = `sha256:${'a'.repeat(64)}`;
const DIGEST_B = `sha256:${'0123456789abcdef'.repeat(4)}`;
const REDIS = 'oci://127.0.0.1:5000/charts/redis';

const redis: LockedChart = { chart: REDIS, requested: '19.6.4', version: '19.6.4', digest: DIGEST_A };
const queue: LockedChart = { chart: 'https://charts.example.com/stable#rabbitmq', requested: '^14.0.0', version: '14.2.1', digest: DIGEST_B };

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

const lines = (...l: string[]) => `${l.join('\n')}\n`;
const parseError = (text: string) => configError(() => parseLock(text, LOCK_FILE));

/** A lock with one chart "cache" whose fields are these lines (line 4 is the first of them). */
const cacheEntry = (...fields: string[]) => lines('# header', 'charts:', '  cache:', ...fields.map((f) => `    ${f}`));

describe('formatLock and parseLock', () => {
  it('writes the header, charts sorted by name and each entry in one key order', () => {
    const text = formatLock({ charts: { queue, cache: { digest: DIGEST_A, version: '19.6.4', requested: '19.6.4', chart: REDIS } } });
    expect(text).toBe(
      lines(
        '# skiff.lock: chart versions and digests resolved by "skiff charts update"; commit it.',
        'charts:',
        '  cache:',
        '    chart: oci://127.0.0.1:5000/charts/redis',
        '    requested: 19.6.4',
        '    version: 19.6.4',
        `    digest: ${DIGEST_A}`,
        '  queue:',
        '    chart: https://charts.example.com/stable#rabbitmq',
        '    requested: ^14.0.0',
        '    version: 14.2.1',
        `    digest: ${DIGEST_B}`,
      ),
    );
  });

  it('reads back what it wrote, whatever the order it was given', () => {
    const lock: ChartLock = { charts: { queue, cache: redis } };
    expect(parseLock(formatLock(lock), LOCK_FILE)).toEqual(lock);
    expect(formatLock(parseLock(formatLock(lock), LOCK_FILE))).toBe(formatLock({ charts: { cache: redis, queue } }));
  });

  it('quotes a version YAML would read as a number, and reads it back as the string', () => {
    const lock: ChartLock = { charts: { cache: { ...redis, requested: '1.0', version: '1.0.0' } } };
    expect(formatLock(lock)).toContain('requested: "1.0"');
    expect(parseLock(formatLock(lock), LOCK_FILE)).toEqual(lock);
  });

  it('writes and reads a lock without charts', () => {
    expect(formatLock({ charts: {} })).toBe(lines('# skiff.lock: chart versions and digests resolved by "skiff charts update"; commit it.', 'charts: {}'));
    expect(parseLock(formatLock({ charts: {} }), LOCK_FILE)).toEqual({ charts: {} });
    expect(parseLock('charts:\n', LOCK_FILE)).toEqual({ charts: {} });
  });
});

describe('parseLock: errors name skiff.lock:LINE and say to run skiff charts update', () => {
  it('invalid YAML, an empty file, the wrong top level', () => {
    expect(parseError(lines('charts:', '  cache:', '    chart: a: b'))).toMatchInlineSnapshot(
      `"skiff.lock:3: invalid YAML: Nested mappings are not allowed in compact mappings; run skiff charts update"`,
    );
    expect(parseError(lines('charts:', '  cache: {}', '  cache: {}'))).toMatch(
      /^skiff\.lock:3: invalid YAML: Map keys must be unique; run skiff charts update$/,
    );
    expect(parseError('# only a comment\n')).toMatchInlineSnapshot(`"skiff.lock:1: the file is empty; run skiff charts update"`);
    expect(parseError(lines('- cache'))).toMatchInlineSnapshot(
      `"skiff.lock:1: the top level must be a mapping with the key "charts"; run skiff charts update"`,
    );
    expect(parseError(lines('charts: {}', 'images: {}'))).toMatchInlineSnapshot(
      `"skiff.lock:2: unknown key "images" in the top level; run skiff charts update"`,
    );
    expect(parseError(lines('# header', 'charts: [cache]'))).toMatchInlineSnapshot(
      `"skiff.lock:2: charts must be a mapping of chart names; run skiff charts update"`,
    );
  });

  it('an entry of the wrong shape: not a mapping, a field missing, unknown or not a string', () => {
    expect(parseError(lines('charts:', '  cache: redis'))).toMatchInlineSnapshot(
      `"skiff.lock:2: chart cache: must be a mapping of chart, requested, version, digest; run skiff charts update"`,
    );
    expect(parseError(cacheEntry(`chart: ${REDIS}`, 'requested: 19.6.4', `digest: ${DIGEST_A}`))).toMatchInlineSnapshot(
      `"skiff.lock:3: chart cache: version is missing; run skiff charts update"`,
    );
    expect(parseError(cacheEntry(`chart: ${REDIS}`, 'requested: 19.6.4', 'version: 19.6.4', `digest: ${DIGEST_A}`, 'size: 12'))).toMatchInlineSnapshot(
      `"skiff.lock:8: chart cache: unknown key "size"; run skiff charts update"`,
    );
    expect(parseError(cacheEntry(`chart: ${REDIS}`, 'requested: 19.6.4', 'version: [19.6.4]', `digest: ${DIGEST_A}`))).toMatch(
      /^skiff\.lock:6: chart cache: version must be a non-empty string; run skiff charts update$/,
    );
  });

  it('a digest that is not sha256:<64 hex>', () => {
    for (const digest of ['sha256:abc', `sha512:${'a'.repeat(64)}`, `sha256:${'A'.repeat(64)}`, 'a'.repeat(64)])
      expect(parseError(cacheEntry(`chart: ${REDIS}`, 'requested: 19.6.4', 'version: 19.6.4', `digest: ${digest}`))).toMatch(
        /^skiff\.lock:7: chart cache: digest ".*" is not sha256:<64 hex digits>; run skiff charts update$/,
      );
    expect(parseError(cacheEntry(`chart: ${REDIS}`, 'requested: 19.6.4', 'version: 19.6.4', 'digest: sha256:abc'))).toMatchInlineSnapshot(
      `"skiff.lock:7: chart cache: digest "sha256:abc" is not sha256:<64 hex digits>; run skiff charts update"`,
    );
  });

  it('a version that is not exact, a request that is not a range, a version outside its request', () => {
    expect(parseError(cacheEntry(`chart: ${REDIS}`, 'requested: ^19.6.0', 'version: ^19.6.0', `digest: ${DIGEST_A}`))).toMatchInlineSnapshot(
      `"skiff.lock:6: chart cache: version "^19.6.0" is not an exact version; run skiff charts update"`,
    );
    expect(parseError(cacheEntry(`chart: ${REDIS}`, 'requested: latest', 'version: 19.6.4', `digest: ${DIGEST_A}`))).toMatchInlineSnapshot(
      `"skiff.lock:5: chart cache: requested "latest" is not a version or a range; run skiff charts update"`,
    );
    expect(parseError(cacheEntry(`chart: ${REDIS}`, 'requested: ^19.6.0', 'version: 20.0.0', `digest: ${DIGEST_A}`))).toMatchInlineSnapshot(
      `"skiff.lock:6: chart cache: version 20.0.0 does not satisfy the requested ^19.6.0; run skiff charts update"`,
    );
  });
});

/** A chart of skiff.yaml as the config validator makes it. */
function chart(name: string, chartRef: string, version?: string): ChartConfig {
  const source: ChartConfig['source'] = chartRef.startsWith('oci://')
    ? { kind: 'oci', repository: chartRef.slice(6) }
    : chartRef.startsWith('https://')
      ? { kind: 'repo', url: chartRef.split('#')[0]!, name: chartRef.split('#')[1]! }
      : { kind: 'folder', path: chartRef };
  return { name, chart: chartRef, source, version };
}

const configOf = (...charts: ChartConfig[]) => ({ file: 'skiff.yaml', charts: Object.fromEntries(charts.map((c) => [c.name, c])) });

describe('lockedCharts: skiff.yaml and skiff.lock agree, or exit 2 naming the chart', () => {
  it('returns the locked entry of every fetched chart; folder charts are not in the lock', () => {
    const config = configOf(chart('cache', REDIS, '19.6.4'), chart('queue', queue.chart, '^14.0.0'), chart('api', 'charts/api'));
    expect(lockedCharts(config, { charts: { cache: redis, queue } })).toEqual({ cache: redis, queue });
  });

  it('needs no lock when every chart is a folder, or there are none', () => {
    expect(lockedCharts(configOf(chart('api', 'charts/api', '1.0.0')), undefined)).toEqual({});
    expect(lockedCharts(configOf(), undefined)).toEqual({});
    expect(lockedCharts(configOf(), { charts: {} })).toEqual({});
  });

  it('no lock at all', () => {
    expect(configError(() => lockedCharts(configOf(chart('cache', REDIS, '19.6.4')), undefined))).toMatchInlineSnapshot(
      `"skiff.yaml has charts but no skiff.lock: run "skiff charts update" and commit skiff.lock"`,
    );
  });

  it('a chart that is not in the lock', () => {
    const config = configOf(chart('cache', REDIS, '19.6.4'), chart('queue', queue.chart, '^14.0.0'));
    expect(configError(() => lockedCharts(config, { charts: { cache: redis } }))).toMatchInlineSnapshot(
      `"chart queue: skiff.yaml asks for https://charts.example.com/stable#rabbitmq ^14.0.0, skiff.lock does not have it; run "skiff charts update" and commit skiff.lock"`,
    );
  });

  it('a version request that changed', () => {
    expect(configError(() => lockedCharts(configOf(chart('cache', REDIS, '19.7.0')), { charts: { cache: redis } }))).toMatchInlineSnapshot(
      `"chart cache: skiff.yaml asks for oci://127.0.0.1:5000/charts/redis 19.7.0, skiff.lock has 19.6.4; run "skiff charts update" and commit skiff.lock"`,
    );
    // A range that the locked version satisfies is still a change: the lock records the request as written.
    expect(configError(() => lockedCharts(configOf(chart('cache', REDIS, '^19.6.0')), { charts: { cache: redis } }))).toMatch(
      /^chart cache: skiff\.yaml asks for oci:\/\/127\.0\.0\.1:5000\/charts\/redis \^19\.6\.0, skiff\.lock has 19\.6\.4; /,
    );
  });

  it('a chart source that changed', () => {
    const moved = chart('cache', 'oci://registry.example.com/charts/redis', '19.6.4');
    expect(configError(() => lockedCharts(configOf(moved), { charts: { cache: redis } }))).toMatchInlineSnapshot(
      `"chart cache: skiff.yaml asks for oci://registry.example.com/charts/redis 19.6.4, skiff.lock has oci://127.0.0.1:5000/charts/redis 19.6.4; run "skiff charts update" and commit skiff.lock"`,
    );
  });

  it('a lock entry for a chart that is gone from skiff.yaml, or is now a folder', () => {
    expect(configError(() => lockedCharts(configOf(), { charts: { cache: redis } }))).toMatchInlineSnapshot(
      `"chart cache is in skiff.lock but not in skiff.yaml; run "skiff charts update" and commit skiff.lock"`,
    );
    expect(configError(() => lockedCharts(configOf(chart('cache', 'charts/redis')), { charts: { cache: redis } }))).toMatchInlineSnapshot(
      `"chart cache is in skiff.lock but is a folder in skiff.yaml, which the commit pins; run "skiff charts update" and commit skiff.lock"`,
    );
  });

  it('names the first chart and counts the others; every problem is in the detail', () => {
    const config = configOf(chart('cache', REDIS, '19.7.0'), chart('queue', queue.chart, '^15.0.0'));
    let error: ConfigError | undefined;
    try {
      lockedCharts(config, { charts: { cache: redis, queue, old: redis } });
    } catch (e) {
      error = e as ConfigError;
    }
    expect(error?.message).toMatchInlineSnapshot(
      `"chart cache: skiff.yaml asks for oci://127.0.0.1:5000/charts/redis 19.7.0, skiff.lock has 19.6.4 (and 2 more charts); run "skiff charts update" and commit skiff.lock"`,
    );
    expect(error?.detail).toHaveLength(3);
  });
});

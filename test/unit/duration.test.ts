import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../../src/core/duration.js';

describe('parseDuration', () => {
  it.each([
    ['250ms', 250],
    ['90s', 90_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['1h30m', 5_400_000],
    ['2m30s', 150_000],
    ['1m500ms', 60_500],
    ['1.5s', 1_500],
    ['0.5h', 1_800_000],
    ['  10s  ', 10_000],
    ['0s', 0],
  ])('%j → %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it('reads a bare number as seconds, as a string or a number', () => {
    expect(parseDuration('90')).toBe(90_000);
    expect(parseDuration('1.5')).toBe(1_500);
    expect(parseDuration(90)).toBe(90_000);
    expect(parseDuration(0)).toBe(0);
  });

  it.each(['', '   ', '5 minutes', '5min', 'm', '1h 30m', '5m30', '-5s', '5d', 'abc', '1e3s', '.5s', 's5'])('rejects %j', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });

  it('rejects negative and non-finite numbers', () => {
    expect(parseDuration(-1)).toBeUndefined();
    expect(parseDuration(Number.NaN)).toBeUndefined();
    expect(parseDuration(Number.POSITIVE_INFINITY)).toBeUndefined();
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0ms'],
    [999, '999ms'],
    [1_000, '1.0s'],
    [1_049, '1.0s'],
    [12_345, '12.3s'],
    [59_949, '59.9s'],
    [59_950, '1m00s'],
    [59_999, '1m00s'],
    [60_000, '1m00s'],
    [61_000, '1m01s'],
    [119_499, '1m59s'],
    [119_600, '2m00s'],
    [150_000, '2m30s'],
    [3_600_000, '60m00s'],
  ])('%d ms → %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it('round-trips whole minutes and seconds through parseDuration', () => {
    for (const text of ['1m00s', '2m30s', '59m59s']) expect(formatDuration(parseDuration(text)!)).toBe(text);
    expect(parseDuration(formatDuration(12_300))).toBe(12_300);
  });
});

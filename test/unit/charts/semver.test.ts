import { describe, expect, it } from 'vitest';
import { compareVersions, isVersionConstraint, maxSatisfying, parseVersion, satisfies } from '../../../src/charts/semver.js';

describe('parseVersion', () => {
  it.each([
    ['1.2.3', { major: 1, minor: 2, patch: 3, prerelease: [], build: [] }],
    ['v1.2.3', { major: 1, minor: 2, patch: 3, prerelease: [], build: [] }],
    ['1.2', { major: 1, minor: 2, patch: 0, prerelease: [], build: [] }],
    ['1', { major: 1, minor: 0, patch: 0, prerelease: [], build: [] }],
    ['1.0.0-rc.1+build.5', { major: 1, minor: 0, patch: 0, prerelease: ['rc', '1'], build: ['build', '5'] }],
    ['2.3.5-20161202202307-sha.e8fc5e5', { major: 2, minor: 3, patch: 5, prerelease: ['20161202202307-sha', 'e8fc5e5'], build: [] }],
    ['1.2.3-0abc', { major: 1, minor: 2, patch: 3, prerelease: ['0abc'], build: [] }],
    ['19.6.4', { major: 19, minor: 6, patch: 4, prerelease: [], build: [] }],
  ])('%s', (text, expected) => {
    expect(parseVersion(text)).toEqual({ ...expected, original: text });
  });

  it.each(['', 'abc', '1.2.3.4', 'V1.2.3', ' 1.2.3', '1.2.3-', '1.2.3-beta.01', '1.2.3+', '1.2.3-a..b', 'latest', '1.x', '99999999999999999999.0.0'])(
    'refuses %j',
    (text) => {
      expect(parseVersion(text)).toBeUndefined();
    },
  );
});

describe('compareVersions', () => {
  // Each list is in ascending precedence (the semver 2.0 spec's own example first).
  it.each([
    [['1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0']],
    [['0.9.9', '1.0.0', '1.0.1', '1.1.0', '1.10.0', '2.0.0', '10.0.0']],
    [['1.0.0-2', '1.0.0-10', '1.0.0-1a', '1.0.0-a']],
  ])('orders %j', (ascending) => {
    const shuffled = [...ascending].reverse();
    expect(shuffled.sort(compareVersions)).toEqual(ascending);
  });

  it.each([
    ['1.2.3', 'v1.2.3'],
    ['1.2.3+build.1', '1.2.3+build.2'],
    ['1.2', '1.2.0'],
  ])('%s equals %s', (a, b) => {
    expect(compareVersions(a, b)).toBe(0);
  });

  it('puts strings that are not versions before every version', () => {
    expect(['1.0.0', 'latest', '0.1.0', 'dev'].sort(compareVersions)).toEqual(['dev', 'latest', '0.1.0', '1.0.0']);
  });
});

describe('isVersionConstraint', () => {
  it.each([
    '1.2.3',
    'v1.2.3',
    '=1.2.3',
    '!=1.2.3',
    '>1.2',
    '<2',
    '>= 1.2',
    '=>1.2',
    '<=1.4.5',
    '=<1.4.5',
    '~1.2.3',
    '~>1.2',
    '^0.2.3',
    '1.2.x',
    '1.X',
    '*',
    '1.2.*',
    '1.2 - 1.4.5',
    '>=1.2, <2.0',
    '>= 1.2 < 2.0',
    '>=1.2,<2.0',
    '^1.2 || ^2.0',
    '1.0.0-beta.1',
    '2.3.5-20161202202307-sha.e8fc5e5',
    '12.3.34 ~1.2.3',
  ])('accepts %j', (constraint) => {
    expect(isVersionConstraint(constraint)).toBe(true);
  });

  it.each([
    'abc',
    '>=',
    '1.2.3.4',
    '',
    ' ',
    '>= bar',
    'BAR >= 1.2.3',
    '12.3.34~ 1.2.3',
    '1.2.3 ||',
    '|| 1.2.3',
    '>=1.2,',
    ',>=1.2',
    '>=1.2,,<2',
    'v1.2.3-beta.01',
    '1.2.3 - ',
    '>> 1.2',
    'latest',
  ])('refuses %j', (constraint) => {
    expect(isVersionConstraint(constraint)).toBe(false);
  });
});

describe('satisfies', () => {
  it.each([
    // exact and =
    ['1.2.3', '1.2.3', true],
    ['1.2.3', 'v1.2.3', true],
    ['1.2.3', '1.2.3+build.7', true],
    ['1.2.3+build.1', '1.2.3', true],
    ['1.2.3', '1.2.4', false],
    ['=1.2.3', '1.2.3', true],
    ['= 2.0', '2.0.0', true],
    ['= 2.0', '2.0.5', true],
    ['= 2.0', '2.1.0', false],
    ['=0', '1.0.0', false],
    // !=
    ['!=1.2.3', '1.2.4', true],
    ['!=1.2.3', '1.2.3', false],
    ['!=4.1', '4.1.0', false],
    ['!=4.1', '5.1.0', true],
    ['!=4.x', '4.1.0', false],
    ['!=4.x', '5.1.0', true],
    ['!=4.1.x', '4.2.0', true],
    // >
    ['>1.2.3', '1.2.4', true],
    ['>1.2.3', '1.2.3', false],
    ['>1.1', '1.1.9', false],
    ['>1.1', '1.2.0', true],
    ['>11', '11.1.0', false],
    ['>11', '12.0.0', true],
    // <
    ['<1.2.3', '1.2.2', true],
    ['<1.2.3', '1.2.3', false],
    ['<1.1', '1.0.9', true],
    ['<1.1', '1.1.0', false],
    ['<1.x', '0.9.0', true],
    ['<1.x', '1.1.1', false],
    // >=
    ['>=1.2.3', '1.2.3', true],
    ['>=1.2.3', '1.2.2', false],
    ['>=1.1', '4.1.0', true],
    ['=>1.1', '1.1.0', true],
    ['>=1.1', '0.0.9', false],
    // <=
    ['<=1.2.3', '1.2.3', true],
    ['<=1.2.3', '1.2.4', false],
    ['<=1.1', '1.1.7', true],
    ['=<1.1', '1.2.0', false],
    ['<=1.x', '1.9.0', true],
    ['<=2.x', '3.0.0', false],
    // ~
    ['~1.2.3', '1.2.3', true],
    ['~1.2.3', '1.2.9', true],
    ['~1.2.3', '1.2.2', false],
    ['~1.2.3', '1.3.0', false],
    ['~1.2', '1.2.0', true],
    ['~1.2', '1.3.0', false],
    ['~>1.2', '1.2.7', true],
    ['~1', '1.9.9', true],
    ['~1', '2.0.0', false],
    ['~0.2.3', '0.2.5', true],
    ['~0.2.3', '0.3.0', false],
    ['~*', '2.1.1', true],
    // ^
    ['^1.2.3', '1.2.3', true],
    ['^1.2.3', '1.9.0', true],
    ['^1.2.3', '1.2.2', false],
    ['^1.2.3', '2.0.0', false],
    ['^0.2.3', '0.2.9', true],
    ['^0.2.3', '0.3.0', false],
    ['^0.2.3', '0.2.2', false],
    ['^0.0.3', '0.0.3', true],
    ['^0.0.3', '0.0.4', false],
    ['^0.0', '0.0.9', true],
    ['^0.0', '0.1.0', false],
    ['^0', '0.9.0', true],
    ['^0', '1.0.0', false],
    ['^1.x', '1.1.1', true],
    ['^1.x', '2.0.0', false],
    // wildcards
    ['1.2.x', '1.2.9', true],
    ['1.2.x', '1.3.0', false],
    ['1.2.*', '1.2.0', true],
    ['1.2.*', '1.1.9', false],
    ['1.x', '1.9.9', true],
    ['1.X', '2.0.0', false],
    ['1.2', '1.2.5', true],
    ['2', '2.1.1', true],
    ['2', '3.0.0', false],
    ['*', '0.0.1', true],
    ['*', '99.0.0', true],
    ['x', '1.0.0', true],
    // hyphen ranges (inclusive at both ends; a partial upper end covers all it names)
    ['1.2 - 1.4.5', '1.2.0', true],
    ['1.2 - 1.4.5', '1.4.5', true],
    ['1.2 - 1.4.5', '1.4.6', false],
    ['1.2 - 1.4.5', '1.1.9', false],
    ['1.1 - 2', '2.9.0', true],
    ['1.1 - 2', '3.0.0', false],
    ['1.0.0 - 2.0.0, <=1.5.0', '1.6.0', false],
    ['1.1-3', '4.3.2', false],
    // AND by comma or space
    ['>=1.2, <2.0', '1.5.0', true],
    ['>=1.2, <2.0', '2.0.0', false],
    ['>=1.2, <2.0', '1.1.0', false],
    ['>= 1.2 < 2.0', '1.9.9', true],
    ['>= 1.2 < 2.0', '2.0.1', false],
    ['>=1.1    <2    !=1.2.3', '1.2.3', false],
    ['>=1.1    <2    !=1.2.3', '1.2.4', true],
    // OR
    ['^1.2 || ^3.0', '1.5.0', true],
    ['^1.2 || ^3.0', '3.1.0', true],
    ['^1.2 || ^3.0', '2.0.0', false],
    ['>=1.1, <2, !=1.2.3 || > 3', '4.1.2', true],
    ['>=1.1, <2, !=1.2.3 || > 3', '3.1.2', false],
    ['>=1.1, <2, !=1.2.3 || >= 3', '3.0.0', true],
  ] as const)('%j with %s -> %s', (constraint, version, expected) => {
    expect(satisfies(version, constraint)).toBe(expected);
  });

  it.each([
    // A pre-release satisfies only a constraint that names a pre-release itself.
    ['>=1.0.0', '1.2.0-beta.1', false],
    ['*', '1.2.3-alpha.1', false],
    ['^1.2.0', '1.2.1-alpha.1', false],
    ['~1.1', '1.1.1-alpha', false],
    ['1.2.x', '1.2.3-rc.1', false],
    ['<=1.1', '0.1.0-alpha', false],
    ['*-0', '1.2.3-alpha.1', true],
    ['>=0.0.0-0', '3.4.5-beta.1', true],
    ['^1.2.0-alpha.0', '1.2.1-alpha.1', true],
    ['^1.2.0-alpha.2', '1.2.0-alpha.1', false],
    ['~1.2.3-beta.2', '1.2.3-beta.4', true],
    ['~1.2.3-beta.2', '1.2.4-beta.2', true],
    ['~1.2.3-beta.2', '1.3.4-beta.2', false],
    ['>1.2.3-alpha.1', '1.2.3-alpha.2', true],
    ['>1.2.3-alpha.1', '1.2.3-alpha.1', false],
    ['1.0.0-rc.1', '1.0.0-rc.1', true],
    ['1.0.0-rc.1', '1.0.0-rc.2', false],
    // A release still satisfies a constraint naming a pre-release.
    ['>=1.0.0-rc.1', '1.0.0', true],
    ['~1.1.1-beta', '1.1.1', true],
    // Pre-release identifiers: numeric below alphanumeric, numeric compared as numbers.
    ['>1.0.0-beta.2', '1.0.0-beta.11', true],
    ['<1.0.0-beta.11', '1.0.0-beta.2', true],
    ['>1.0.0-beta.2', '1.0.0-beta.a', true],
    ['>1.0.0-beta.a', '1.0.0-beta.2', false],
    ['>1.0.0-beta', '1.0.0-beta.1', true],
    // Decided per OR branch, AND-ed comparators share the branch's pre-release naming.
    ['>= 1.0.0 <= 2.0.0-beta', '1.0.1-beta', true],
    ['>= 1.0.0 <= 2.0.0-beta || > 3', '3.0.1-beta', false],
    ['>= 1.0.0 <= 2.0.0-beta != 1.0.1-beta || > 3', '1.0.1-beta', false],
  ] as const)('pre-release: %j with %s -> %s', (constraint, version, expected) => {
    expect(satisfies(version, constraint)).toBe(expected);
  });

  it.each([
    ['abc', '1.2.3'],
    ['>=', '1.2.3'],
    ['1.2.3.4', '1.2.3'],
    ['>=1.0.0', 'latest'],
    ['*', ''],
  ])('is false for %j with %j (one of them does not parse)', (constraint, version) => {
    expect(satisfies(version, constraint)).toBe(false);
  });
});

describe('maxSatisfying', () => {
  const published = ['19.5.0', '19.6.4', 'latest', '19.6.10', '20.0.0-rc.1', '18.19.4', 'v19.7.0', '20.1.0', 'not.a.version'];

  it.each([
    ['19.6.4', '19.6.4'],
    ['~19.6', '19.6.10'],
    ['^19.5', 'v19.7.0'],
    ['>=18, <20', 'v19.7.0'],
    ['*', '20.1.0'],
    ['<20.0.0', 'v19.7.0'],
    ['>=20.0.0-0 <20.1.0', '20.0.0-rc.1'],
    ['18.x || 19.5.x', '19.5.0'],
    ['^21', undefined],
    ['19.6.5', undefined],
    ['>=', undefined],
  ] as const)('%j picks %s', (constraint, expected) => {
    expect(maxSatisfying(published, constraint)).toBe(expected);
  });

  it('returns the version as written, and the first of versions equal but for build metadata', () => {
    expect(maxSatisfying(['1.2.3+b', 'v1.2.3+a', '1.2.2'], '^1')).toBe('1.2.3+b');
  });

  it('returns undefined for an empty list', () => {
    expect(maxSatisfying([], '*')).toBeUndefined();
  });
});

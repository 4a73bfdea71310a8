// Chart versions and version constraints, read the way Helm reads them: Helm resolves chart
// versions with Masterminds/semver v3, so a range in skiff.yaml must pick the version `helm`
// would pick. Versions are semver 2.0 parsed as Masterminds' NewVersion does (a leading "v",
// "1.2" meaning 1.2.0, leading zeros coerced); constraints follow its NewConstraint, quirks
// included (">11" means ">=12.0.0"; "<=1.2" admits every 1.2.x). Pure: no I/O.

/** A parsed semantic version. Build metadata is kept but never affects comparison. */
export interface Version {
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
  /** Pre-release identifiers ("rc.1" -> ["rc", "1"]); empty for a release. */
  readonly prerelease: readonly string[];
  /** Build metadata identifiers ("+build.5" -> ["build", "5"]). */
  readonly build: readonly string[];
  /** The string as given. */
  readonly original: string;
}

type Operator = '=' | '!=' | '>' | '<' | '>=' | '<=' | '~' | '^';
/** The first part written as x/X/* or left out ("1.2" has a wildcard patch). */
type Wildcard = 'none' | 'major' | 'minor' | 'patch';

interface Comparator {
  op: Operator;
  /** The constraint's version with wildcard parts set to 0. */
  version: Version;
  wildcard: Wildcard;
}

/** Comparators that must all hold; a pre-release satisfies the group only if one names a pre-release. */
interface AndGroup {
  comparators: Comparator[];
  admitsPrerelease: boolean;
}

const IDENTIFIERS = '[0-9A-Za-z-]+(?:\\.[0-9A-Za-z-]+)*';
const VERSION_RE = new RegExp(`^v?(\\d+)(?:\\.(\\d+))?(?:\\.(\\d+))?(?:-(${IDENTIFIERS}))?(?:\\+(${IDENTIFIERS}))?$`);

// A version inside a constraint may use x, X or * for a part.
const PART = '(?:\\d+|[xX*])';
const CONSTRAINT_VERSION = `v?(${PART})(?:\\.(${PART}))?(?:\\.(${PART}))?(?:-(${IDENTIFIERS}))?(?:\\+${IDENTIFIERS})?`;
const PLAIN_CONSTRAINT_VERSION = CONSTRAINT_VERSION.replace(/\((?!\?)/g, '(?:');
// Longest operators first so "=>" is not read as "=" followed by junk; "" is an implicit "=".
const OPERATORS = '!=|>=|=>|<=|=<|~>|>|<|=|~|\\^|';
const COMPARATOR_SOURCE = `\\s*(${OPERATORS})\\s*${CONSTRAINT_VERSION}\\s*`;
const HYPHEN_RANGE_RE = new RegExp(`\\s*(${PLAIN_CONSTRAINT_VERSION})\\s+-\\s+(${PLAIN_CONSTRAINT_VERSION})\\s*`, 'g');

const OPERATOR_ALIASES: Record<string, Operator> = {
  '': '=',
  '=': '=',
  '!=': '!=',
  '>': '>',
  '<': '<',
  '>=': '>=',
  '=>': '>=',
  '<=': '<=',
  '=<': '<=',
  '~': '~',
  '~>': '~',
  '^': '^',
};

/**
 * Parses a semantic version ("1.2.3", "v1.2.3-rc.1+build.5", and as Helm also accepts, "1.2"
 * or "1" with the missing parts 0). Returns undefined for anything else, including parts too
 * large to hold exactly and numeric pre-release identifiers with leading zeros ("1.0.0-01").
 */
export function parseVersion(v: string): Version | undefined {
  const match = VERSION_RE.exec(v);
  if (!match) return undefined;
  const [, majorText = '', minorText = '0', patchText = '0', prereleaseText, buildText] = match;
  const numbers = [majorText, minorText, patchText].map(Number);
  if (!numbers.every((n) => Number.isSafeInteger(n))) return undefined;
  const prerelease = prereleaseText === undefined ? [] : prereleaseText.split('.');
  if (!prerelease.every(isValidPrereleaseIdentifier)) return undefined;
  const [major = 0, minor = 0, patch = 0] = numbers;
  return { major, minor, patch, prerelease, build: buildText === undefined ? [] : buildText.split('.'), original: v };
}

function isValidPrereleaseIdentifier(identifier: string): boolean {
  return !/^\d+$/.test(identifier) || identifier === '0' || !identifier.startsWith('0');
}

/**
 * Orders two versions by semver 2 precedence: negative when a < b, 0 when equal (build metadata
 * ignored), positive when a > b. So that a list of registry tags can be sorted as it is, a string
 * that is not a version sorts before every version, and two such strings compare as text.
 */
export function compareVersions(a: string, b: string): number {
  const left = parseVersion(a);
  const right = parseVersion(b);
  if (left && right) return compareParsed(left, right);
  if (left) return 1;
  if (right) return -1;
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareParsed(a: Version, b: Version): number {
  return Math.sign(a.major - b.major) || Math.sign(a.minor - b.minor) || Math.sign(a.patch - b.patch) || comparePrerelease(a.prerelease, b.prerelease);
}

/** A release ranks above its pre-releases; otherwise identifiers compare one by one. */
function comparePrerelease(a: readonly string[], b: readonly string[]): number {
  if (a.length === 0 || b.length === 0) return Math.sign(b.length - a.length);
  for (let i = 0; i < Math.min(a.length, b.length); i += 1) {
    const order = compareIdentifier(a[i] ?? '', b[i] ?? '');
    if (order !== 0) return order;
  }
  return Math.sign(a.length - b.length);
}

/** Numeric identifiers compare as numbers and rank below alphanumeric ones, which compare in ASCII. */
function compareIdentifier(a: string, b: string): number {
  if (a === b) return 0;
  const aNumeric = /^\d+$/.test(a);
  const bNumeric = /^\d+$/.test(b);
  if (aNumeric && bNumeric) {
    // No leading zeros (parseVersion refuses them), so the longer number is the larger.
    return a.length !== b.length ? Math.sign(a.length - b.length) : a < b ? -1 : 1;
  }
  if (aNumeric !== bNumeric) return aNumeric ? -1 : 1;
  return a < b ? -1 : 1;
}

/**
 * Whether `c` is a version constraint Helm accepts: an exact version ("1.2.3", "=1.2.3"), a
 * comparison (!=, >, <, >=, <=), tilde (~1.2), caret (^0.2.3), wildcards (1.2.x, 1.*, *), a
 * hyphen range ("1.2 - 1.4.5"), comparators joined by "," or spaces (AND) and by "||" (OR).
 */
export function isVersionConstraint(c: string): boolean {
  return parseConstraint(c) !== undefined;
}

/**
 * Whether `version` satisfies `constraint`, by Masterminds/semver v3's rules: a pre-release only
 * satisfies an OR branch in which some comparator itself names a pre-release. False when either
 * string does not parse (check with isVersionConstraint first to tell the two apart).
 */
export function satisfies(version: string, constraint: string): boolean {
  const parsedVersion = parseVersion(version);
  const groups = parseConstraint(constraint);
  return parsedVersion !== undefined && groups !== undefined && matches(parsedVersion, groups);
}

/**
 * The highest of `versions` that satisfies `constraint`, returned as given (a leading "v" kept).
 * Strings that are not versions are skipped; of versions equal but for build metadata the first
 * listed wins. Undefined when nothing satisfies it or the constraint does not parse.
 */
export function maxSatisfying(versions: string[], constraint: string): string | undefined {
  const groups = parseConstraint(constraint);
  if (!groups) return undefined;
  let best: Version | undefined;
  for (const text of versions) {
    const version = parseVersion(text);
    if (!version || !matches(version, groups)) continue;
    if (!best || compareParsed(version, best) > 0) best = version;
  }
  return best?.original;
}

function matches(version: Version, groups: AndGroup[]): boolean {
  return groups.some(
    (group) =>
      (version.prerelease.length === 0 || group.admitsPrerelease) && group.comparators.every((comparator) => CHECKS[comparator.op](version, comparator)),
  );
}

/** OR groups of AND-ed comparators, or undefined when `text` is not a constraint Helm accepts. */
function parseConstraint(text: string): AndGroup[] | undefined {
  // A hyphen range needs spaces around the "-" ("1.2-3" is the pre-release 1.2.0-3).
  const rewritten = text.replace(HYPHEN_RANGE_RE, (_whole, low: string, high: string) => `>= ${low}, <= ${high} `);
  const groups: AndGroup[] = [];
  for (const branch of rewritten.split('||')) {
    const comparators = parseAndGroup(branch);
    if (!comparators) return undefined;
    groups.push({ comparators, admitsPrerelease: comparators.some((c) => c.version.prerelease.length > 0) });
  }
  return groups;
}

/** Comparators separated by a comma or by whitespace ("> 1.1 < 2" is two: an operator may be followed by spaces). */
function parseAndGroup(text: string): Comparator[] | undefined {
  const pattern = new RegExp(COMPARATOR_SOURCE, 'y');
  const comparators: Comparator[] = [];
  let at = 0;
  while (comparators.length === 0 || at < text.length) {
    if (comparators.length > 0) {
      // The previous comparator's pattern ends in \s*: a space it took is a separator too.
      if (text[at] === ',') at += 1;
      else if (!/\s/.test(text[at - 1] ?? '')) return undefined;
    }
    pattern.lastIndex = at;
    const match = pattern.exec(text);
    const comparator = match ? toComparator(match) : undefined;
    if (!comparator) return undefined;
    comparators.push(comparator);
    at = pattern.lastIndex;
  }
  return comparators;
}

function toComparator(match: RegExpExecArray): Comparator | undefined {
  const [, opText = '', major = '', minor, patch, prerelease] = match;
  const op = OPERATOR_ALIASES[opText];
  const wildcard: Wildcard = isX(major) ? 'major' : minor === undefined || isX(minor) ? 'minor' : patch === undefined || isX(patch) ? 'patch' : 'none';
  const kept = { none: 3, patch: 2, minor: 1, major: 0 }[wildcard];
  const parts = [major, minor, patch].map((part, i) => (i < kept ? part : '0'));
  const version = parseVersion(`${parts.join('.')}${prerelease === undefined ? '' : `-${prerelease}`}`);
  return op && version ? { op, version, wildcard } : undefined;
}

function isX(part: string): boolean {
  return part === 'x' || part === 'X' || part === '*';
}

type Check = (v: Version, c: Comparator) => boolean;

const CHECKS: Record<Operator, Check> = {
  '=': (v, c) => (c.wildcard === 'none' ? compareParsed(v, c.version) === 0 : tilde(v, c)),
  '!=': notEqual,
  '>': greaterThan,
  '<': (v, c) => compareParsed(v, c.version) < 0,
  '>=': (v, c) => compareParsed(v, c.version) >= 0,
  '<=': lessOrEqual,
  '~': tilde,
  '^': caret,
};

/** "!=1.x" excludes all of 1.x; "!=1.2" all of 1.2.x with the same pre-release. */
function notEqual(v: Version, c: Comparator): boolean {
  const con = c.version;
  switch (c.wildcard) {
    case 'minor':
      return v.major !== con.major;
    case 'patch':
      return v.major !== con.major || v.minor !== con.minor || comparePrerelease(v.prerelease, con.prerelease) !== 0;
    default:
      return compareParsed(v, con) !== 0;
  }
}

/** ">1" means a higher major, ">1.2" a higher minor within 1 or a higher major. */
function greaterThan(v: Version, c: Comparator): boolean {
  const con = c.version;
  if (c.wildcard === 'none' || c.wildcard === 'major') return compareParsed(v, con) > 0;
  if (v.major !== con.major) return v.major > con.major;
  return c.wildcard === 'patch' && v.minor > con.minor;
}

/** "<=1" admits all of 1.x, "<=1.2" all of 1.2.x. ("<=*" admits only 0.0.x, as in Masterminds.) */
function lessOrEqual(v: Version, c: Comparator): boolean {
  const con = c.version;
  if (c.wildcard === 'none') return compareParsed(v, con) <= 0;
  if (v.major !== con.major) return v.major < con.major;
  return c.wildcard === 'minor' || v.minor <= con.minor;
}

/** ~1.2.3 and ~1.2 are >=1.2.x <1.3.0; ~1 is >=1.0.0 <2.0.0; ~0.0.0 and ~* admit anything. */
function tilde(v: Version, c: Comparator): boolean {
  const con = c.version;
  if (compareParsed(v, con) < 0) return false;
  const minorOrPatchWild = c.wildcard === 'minor' || c.wildcard === 'patch';
  if (con.major === 0 && con.minor === 0 && con.patch === 0 && !minorOrPatchWild) return true;
  if (v.major !== con.major) return false;
  return c.wildcard === 'minor' || v.minor === con.minor;
}

/** ^1.2.3 is <2.0.0; ^0.2.3 is <0.3.0; ^0.0.3 is exactly 0.0.3; ^0.0 is <0.1.0; ^0 is <1.0.0. */
function caret(v: Version, c: Comparator): boolean {
  const con = c.version;
  if (compareParsed(v, con) < 0) return false;
  if (con.major > 0 || c.wildcard === 'minor') return v.major === con.major;
  if (v.major > 0) return false;
  if (con.minor > 0 || c.wildcard === 'patch') return v.minor === con.minor;
  if (v.minor > 0) return false;
  return v.patch === con.patch;
}

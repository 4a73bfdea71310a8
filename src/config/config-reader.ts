import { posix } from 'node:path';
import { parseDuration } from '../core/duration.js';
import type { PositionIndex } from './project-config.js';

/** One problem in skiff.yaml, at its key path's line and column. */
export interface ConfigProblem {
  path: string;
  line: number;
  col: number;
  message: string;
}

export type Plain = Record<string, unknown>;

/** Project, environment, namespace and release names. */
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** Build args, test env and build secrets' env name environment variables. */
export const ENV_VAR = /^[A-Za-z_][A-Za-z0-9_]*$/;

export const typeName = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'a mapping' : `a ${typeof v}`);
export const isPlain = (v: unknown): v is Plain => typeof v === 'object' && v !== null && !Array.isArray(v);

export interface StringRule {
  required?: boolean;
  pattern?: { test(v: string): boolean };
  hint?: string;
}

/**
 * Reads skiff.yaml's plain data key path by key path: each reader returns the
 * value when it has the right shape and otherwise records a problem at that
 * path (and returns undefined or the default), so one pass finds every problem.
 */
export class ConfigReader {
  readonly problems: ConfigProblem[] = [];

  constructor(private readonly positions: PositionIndex) {}

  problem(path: string, message: string): void {
    const { line, col } = this.positions.of(path);
    this.problems.push({ path, line, col, message });
  }

  mapping(v: unknown, path: string, required = false): Plain | undefined {
    if (v === undefined || v === null) {
      if (required) this.problem(path, `${path} is required`);
      return undefined;
    }
    if (!isPlain(v)) {
      this.problem(path, `${path} must be a mapping, got ${typeName(v)}`);
      return undefined;
    }
    return v;
  }

  /** Reports each key of obj not among keys, with the nearest known key when one is a typo away. */
  knownKeys(obj: Plain, path: string, keys: string[]): void {
    for (const k of Object.keys(obj)) {
      if (keys.includes(k)) continue;
      const p = path ? `${path}.${k}` : k;
      const near = keys.find((known) => editDistance(known, k) <= 2);
      this.problem(p, `unknown key "${k}" in ${path || 'the top level'}${near ? ` (did you mean "${near}"?)` : `; allowed: ${keys.join(', ')}`}`);
    }
  }

  string(v: unknown, path: string, rule: StringRule = {}): string | undefined {
    if (v === undefined || v === null) {
      if (rule.required) this.problem(path, `${path} is required${rule.hint ? `: ${rule.hint}` : ''}`);
      return undefined;
    }
    if (typeof v !== 'string') {
      this.problem(path, `${path} must be a string, got ${typeName(v)}`);
      return undefined;
    }
    if (rule.pattern && !rule.pattern.test(v)) {
      this.problem(path, `${path} "${v}" is not valid${rule.hint ? `: ${rule.hint}` : ''}`);
      return undefined;
    }
    return v;
  }

  /** A mapping of scalars, as strings (build args, env); keys checked against keyPattern. */
  stringMap(v: unknown, path: string, keyPattern?: RegExp): Record<string, string> {
    const out: Record<string, string> = {};
    const obj = this.mapping(v, path);
    if (!obj) return out;
    for (const [k, val] of Object.entries(obj)) {
      if (keyPattern && !keyPattern.test(k)) this.problem(`${path}.${k}`, `${path}: "${k}" is not a valid variable name`);
      if (typeof val === 'string' || typeof val === 'number' || typeof val === 'boolean') out[k] = String(val);
      else this.problem(`${path}.${k}`, `${path}.${k} must be a string, number or boolean, got ${typeName(val)}`);
    }
    return out;
  }

  stringList(v: unknown, path: string): string[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) {
      this.problem(path, `${path} must be a list of strings, got ${typeName(v)}`);
      return [];
    }
    const out: string[] = [];
    v.forEach((item: unknown, i) => {
      if (typeof item === 'string') out.push(item);
      else this.problem(`${path}[${i}]`, `${path}[${i}] must be a string, got ${typeName(item)}`);
    });
    return out;
  }

  /** Milliseconds. */
  duration(v: unknown, path: string, fallbackMs: number): number {
    if (v === undefined || v === null) return fallbackMs;
    const ms = typeof v === 'string' || typeof v === 'number' ? parseDuration(v) : undefined;
    if (ms === undefined || ms <= 0) {
      this.problem(path, `${path} must be a duration such as "90s", "5m" or "1h", got ${JSON.stringify(v)}`);
      return fallbackMs;
    }
    return ms;
  }

  /** A path inside the repository, normalised without "./" or a trailing "/"; "" is the root. */
  relativePath(v: unknown, path: string, fallback: string): string {
    const s = this.string(v, path) ?? fallback;
    if (posix.isAbsolute(s) || s.includes('\\')) {
      this.problem(path, `${path} must be a relative path inside the repository, got "${s}"`);
      return fallback;
    }
    const norm = posix.normalize(s);
    if (norm === '..' || norm.startsWith('../')) {
      this.problem(path, `${path} "${s}" points outside the repository`);
      return fallback;
    }
    return norm === '.' ? '' : norm.replace(/\/$/, '');
  }
}

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) dp[0]![j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) dp[i]![j] = Math.min(dp[i - 1]![j]! + 1, dp[i]![j - 1]! + 1, dp[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
  return dp[a.length]![b.length]!;
}

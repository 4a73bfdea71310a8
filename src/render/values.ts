import { parse } from 'yaml';
import { parseYamlWithPositions } from '../config/yaml-positions.js';
import { ConfigError } from '../errors.js';
import type { TemplateFile } from './render-release.js';

// ---------------------------------------------------------------------------
// Values files

const VALUES_FILE = /^\.kube\/values(\.[^/]+)?\.ya?ml$/;

/**
 * Values files sit directly in .kube/: values.yaml and values.<env>.yaml.
 * A values.yaml deeper down is a template (and fails as one, loudly, rather
 * than being ignored).
 */
export function isValuesFile(path: string): boolean {
  return VALUES_FILE.test(path);
}

/** The values files of an environment, in merge order (each in .yaml and .yml spelling; read those that exist). */
export function valuesFileNames(env: string): string[] {
  return ['.kube/values.yaml', '.kube/values.yml', `.kube/values.${env}.yaml`, `.kube/values.${env}.yml`];
}

/** Parses a values file (or a --values file): a mapping, or nothing. */
export function parseValuesFile(path: string, content: string): unknown {
  const { value } = parseYamlWithPositions(content, path);
  if (value !== null && value !== undefined && (typeof value !== 'object' || Array.isArray(value)))
    throw new ConfigError(`${path}:1:1: values must be a mapping`);
  return value ?? {};
}

/** A parsed values source; origin (a file name or config key) is for messages. */
export interface ValueSource {
  origin: string;
  values: unknown;
}

/**
 * The parsed values files of an environment, in merge order: values.yaml then
 * values.<env>.yaml, each in its .yaml or .yml spelling. A file in both
 * spellings is an error rather than a silent choice.
 */
export function environmentValues(files: TemplateFile[], env: string): ValueSource[] {
  const names = valuesFileNames(env);
  const out: ValueSource[] = [];
  for (const spellings of [names.slice(0, 2), names.slice(2)]) {
    const found = spellings.map((path) => files.find((f) => f.path === path)).filter((f) => f !== undefined);
    if (found.length > 1) throw new ConfigError(`${found.map((f) => f.path).join(' and ')} both exist; keep one of them`);
    for (const f of found) out.push({ origin: f.path, values: parseValuesFile(f.path, f.content) });
  }
  return out;
}

// ---------------------------------------------------------------------------
// Values

export type Values = Record<string, unknown>;

export function isPlainMap(v: unknown): v is Values {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Sets a key even when it is "__proto__", which plain assignment would not. */
function put(target: Values, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else target[key] = value;
}

export function cloneValue(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(cloneValue);
  if (isPlainMap(v)) {
    const out: Values = {};
    for (const [k, x] of Object.entries(v)) put(out, k, cloneValue(x));
    return out;
  }
  return v;
}

function mergeInto(base: Values, over: Values): void {
  for (const [k, v] of Object.entries(over)) {
    if (v === null) {
      delete base[k];
      continue;
    }
    const current = Object.hasOwn(base, k) ? base[k] : undefined;
    if (isPlainMap(v) && isPlainMap(current)) {
      mergeInto(current, v);
    } else if (isPlainMap(v)) {
      const fresh: Values = {};
      mergeInto(fresh, v); // drops nulls, as Helm does
      put(base, k, fresh);
    } else {
      put(base, k, cloneValue(v));
    }
  }
}

/**
 * Helm's values merge: maps merge recursively, lists and scalars replace, and
 * null deletes a key. The inputs are not modified.
 */
export function mergeValues(...layers: Array<Values | null | undefined>): Values {
  const out: Values = {};
  for (const layer of layers) if (layer) mergeInto(out, layer);
  return out;
}

export interface SetExpression {
  /** Map keys and list indexes, e.g. ["hosts", 0, "name"]. */
  path: Array<string | number>;
  value: unknown;
}

const SET_HINT = 'expected key.path=value, e.g. --set image.tag=v2 or --set hosts[0]=example.com';

/**
 * Parses one --set expression: `a.b=c`, `a.list[0]=x`, `a\.b=c` for a key
 * with a dot. The value is typed like a YAML scalar (true, 3, null, "quoted
 * string"); anything else, or an empty value, stays the literal string.
 * One expression sets one key: commas are part of the value.
 */
export function parseSet(expr: string): SetExpression {
  const fail = (what: string) => new ConfigError(`--set "${expr}": ${what}; ${SET_HINT}`);
  const path: Array<string | number> = [];
  let key = '';
  let keyOpen = true; // a name segment may (still) be written
  let i = 0;
  const endName = () => {
    if (keyOpen) {
      if (key === '') throw fail('empty key');
      path.push(key);
      key = '';
      keyOpen = false;
    }
  };
  for (; i < expr.length; i++) {
    const c = expr[i]!;
    if (c === '=') break;
    if (c === '\\' && i + 1 < expr.length) {
      if (!keyOpen) throw fail(`unexpected "${expr[i + 1]}" after "]"`);
      key += expr[++i];
    } else if (c === '.') {
      endName();
      keyOpen = true;
    } else if (c === '[') {
      endName();
      const close = expr.indexOf(']', i);
      const index = close < 0 ? '' : expr.slice(i + 1, close);
      if (!/^\d+$/.test(index)) throw fail(`list index "[${index}" must be a number in brackets`);
      path.push(Number(index));
      i = close;
    } else {
      if (!keyOpen) throw fail(`expected "." or "[" after "]", found "${c}"`);
      key += c;
    }
  }
  if (i >= expr.length) throw fail('no "="');
  endName();
  return { path, value: scalarOf(expr.slice(i + 1)) };
}

function scalarOf(raw: string): unknown {
  if (raw === '') return '';
  if (raw.startsWith('"') || raw.startsWith("'")) {
    try {
      const v: unknown = parse(raw);
      if (typeof v === 'string') return v;
    } catch {
      // not a complete quoted scalar: keep it literally
    }
    return raw;
  }
  // Only untouched tokens get a type: "#fff" is no YAML comment here and " x" keeps its space.
  if (raw.trim() !== raw || raw.includes('#')) return raw;
  try {
    const v: unknown = parse(raw);
    if (v === null || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) return v;
  } catch {
    // e.g. "a: b: c": a string
  }
  return raw;
}

function typeName(v: unknown): string {
  if (Array.isArray(v)) return 'a list';
  if (isPlainMap(v)) return 'a mapping';
  return `the ${typeof v} ${JSON.stringify(v)}`;
}

function pathText(path: ReadonlyArray<string | number>): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

/** Applies one --set to values in place; null deletes a key. */
export function applySet(values: Values, set: SetExpression, expr = pathText(set.path)): void {
  const fail = (what: string) => new ConfigError(`--set "${expr}": ${what}`);
  let node: Values | unknown[] = values;
  set.path.forEach((seg, depth) => {
    const last = depth === set.path.length - 1;
    const here = pathText(set.path.slice(0, depth + 1));
    if (typeof seg === 'string') {
      if (!isPlainMap(node)) throw fail(`${pathText(set.path.slice(0, depth))} is a list, not a mapping; use an index like [0]`);
      const map: Values = node;
      if (last) {
        if (set.value === null) delete map[seg];
        else put(map, seg, set.value);
        return;
      }
      let next = Object.hasOwn(map, seg) ? map[seg] : undefined;
      if (next === undefined || next === null) {
        next = typeof set.path[depth + 1] === 'number' ? [] : {};
        put(map, seg, next);
      }
      if (!isPlainMap(next) && !Array.isArray(next)) throw fail(`${here} is ${typeName(next)} in the values, not a mapping or list`);
      node = next;
    } else {
      if (!Array.isArray(node)) throw fail(`${pathText(set.path.slice(0, depth))} is a mapping, not a list; use .key`);
      const list: unknown[] = node;
      if (seg > list.length)
        throw fail(`index ${seg} is past the end of ${pathText(set.path.slice(0, depth))} (${list.length} items); the next index is ${list.length}`);
      if (last) {
        list[seg] = set.value;
        return;
      }
      let next = list[seg];
      if (next === undefined || next === null) {
        next = typeof set.path[depth + 1] === 'number' ? [] : {};
        list[seg] = next;
      }
      if (!isPlainMap(next) && !Array.isArray(next)) throw fail(`${here} is ${typeName(next)} in the values, not a mapping or list`);
      node = next;
    }
  });
}

export function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

/** Merges the values sources in order (each a mapping, or nothing), then applies the --set expressions. */
export function resolveValues(sources: ValueSource[], sets: string[]): Values {
  const layers: Values[] = [];
  for (const { origin, values } of sources) {
    if (values === null || values === undefined) continue;
    if (!isPlainMap(values)) throw new ConfigError(`${origin}: values must be a mapping at the top level, found ${typeName(values)}`);
    layers.push(values);
  }
  const values = mergeValues(...layers);
  for (const expr of sets) applySet(values, parseSet(expr), expr);
  return values;
}

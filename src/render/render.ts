import { createHash } from 'node:crypto';
import { Script } from 'node:vm';
import ejs from 'ejs';
import { isMap, isScalar, isSeq, LineCounter, parse, parseAllDocuments, stringify, visit, type Tags } from 'yaml';
import { ConfigError } from '../errors.js';
import type { KubeObject, Manifest } from '../release/types.js';
import { describeObject, objectKey, apiGroup } from './object-key.js';
import { HOOK_ANNOTATION, HOOKS } from './order.js';

export interface TemplateFile {
  /** Repository-relative, e.g. ".kube/app/deployment.yaml.ejs". */
  path: string;
  content: string;
}

export interface RenderInput {
  /** Every template under .kube/ (see isTemplateFile); values files are not templates. */
  templates: TemplateFile[];
  /** Parsed values in merge order; origin (a file name or config key) is for messages. */
  valueSources: Array<{ origin: string; values: unknown }>;
  /** --set expressions, applied after every values source. */
  sets: string[];
  /** Image name → "registry/app:tag@sha256:...". */
  images: Record<string, string>;
  env: string;
  release: string;
  namespace: string;
  project: string;
  git: { commit: string; branch?: string; tag?: string };
}

export interface RenderOutput {
  manifests: Manifest[];
  /** The merged values, --set applied. */
  values: Record<string, unknown>;
  /** Things that render but are likely not what was meant, with file:line. */
  warnings: string[];
}

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const RELEASE_LABEL = 'skiff.io/release';

// ---------------------------------------------------------------------------
// Files

const TEMPLATE_FILE = /^\.kube\/.+\.ya?ml(\.ejs)?$/;
const VALUES_FILE = /^\.kube\/values(\.[^/]+)?\.ya?ml$/;

/**
 * Values files sit directly in .kube/: values.yaml and values.<env>.yaml.
 * A values.yaml deeper down is a template (and fails as one, loudly, rather
 * than being ignored).
 */
export function isValuesFile(path: string): boolean {
  return VALUES_FILE.test(path);
}

/** A file under .kube/ that renders to manifests: *.yaml, *.yml, *.yaml.ejs, *.yml.ejs, values files excepted. */
export function isTemplateFile(path: string): boolean {
  return TEMPLATE_FILE.test(path) && !isValuesFile(path);
}

/** The values files of an environment, in merge order (each in .yaml and .yml spelling; read those that exist). */
export function valuesFileNames(env: string): string[] {
  return ['.kube/values.yaml', '.kube/values.yml', `.kube/values.${env}.yaml`, `.kube/values.${env}.yml`];
}

// ---------------------------------------------------------------------------
// Values

type Values = Record<string, unknown>;

function isPlainMap(v: unknown): v is Values {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Sets a key even when it is "__proto__", which plain assignment would not. */
function put(target: Values, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else target[key] = value;
}

function cloneValue(v: unknown): unknown {
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
      if (seg > list.length) throw fail(`index ${seg} is past the end of ${pathText(set.path.slice(0, depth))} (${list.length} items); the next index is ${list.length}`);
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

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

// ---------------------------------------------------------------------------
// Template helpers

/** Thrown by helpers inside a template; the renderer adds file and line. */
class TemplateProblem extends Error {
  constructor(readonly what: string) {
    super(what);
  }
}

/** kubectl reads YAML 1.1 without timestamps (dates stay strings); so do we. */
const K8S_YAML = {
  version: '1.1' as const,
  customTags: (tags: Tags) => tags.filter((t) => typeof t === 'string' || t.tag !== 'tag:yaml.org,2002:timestamp'),
};

function toYaml(value: unknown, indent = 0): string {
  // YAML 1.1 with its timestamp tag, so that "on", "0644" and dates come out quoted.
  const text = stringify(value === undefined ? null : value, { version: '1.1', lineWidth: 0 }).replace(/\n$/, '');
  if (!indent) return text;
  const pad = ' '.repeat(indent);
  return text
    .split('\n')
    .map((l) => (l === '' ? l : pad + l))
    .join('\n');
}

function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (typeof v === 'object' && v !== null) {
    const entries = Object.entries(v)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${stableJson(x)}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

function present(helper: string, v: unknown): void {
  if (v === undefined || v === null) {
    throw new TemplateProblem(`${helper}() got ${String(v)}; give it a value, or wrap it: ${helper}(required(x, "what is missing"))`);
  }
}

const helpers = {
  toYaml,
  b64(v: unknown): string {
    present('b64', v);
    return Buffer.from(String(v), 'utf8').toString('base64');
  },
  sha256(v: unknown): string {
    present('sha256', v);
    return createHash('sha256')
      .update(typeof v === 'string' ? v : stableJson(v))
      .digest('hex');
  },
  required<T>(v: T, message?: string): T {
    if (v === undefined || v === null || v === '') throw new TemplateProblem(message || 'a required value is missing');
    return v;
  },
  quote(v: unknown): string {
    present('quote', v);
    return JSON.stringify(String(v));
  },
};

/** Names probed by JavaScript, EJS, yaml or test tooling, which must not count as image look-ups. */
const PROBED = new Set([...Object.getOwnPropertyNames(Object.prototype), 'then', 'toJSON', 'inspect', 'nodeType', '$$typeof', 'asymmetricMatch']);

function imagesProxy(images: Record<string, string>): Record<string, string> {
  const target: Record<string, string> = Object.freeze({ ...images });
  const names = Object.keys(target);
  return new Proxy(target, {
    get(t, key, receiver) {
      if (typeof key === 'symbol' || Object.hasOwn(t, key) || PROBED.has(key)) return Reflect.get(t, key, receiver) as unknown;
      throw new TemplateProblem(
        `unknown image "${key}" (images.${key}); ` +
          (names.length ? `the images are ${names.map((n) => `"${n}"`).join(', ')}` : 'skiff.yaml defines no images') +
          `; define it under images: in skiff.yaml or fix the name`,
      );
    },
  });
}

/** `<%= %>` prints scalars as they are (no HTML escaping in YAML) and refuses to print a mapping or list. */
function printScalar(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'object' || typeof v === 'function') {
    throw new TemplateProblem(`<%= %> printed ${Array.isArray(v) ? 'a list' : 'an object'}; print it with <%- toYaml(value, indent) %>`);
  }
  return String(v);
}

const LOCALS = ['values', 'images', 'env', 'release', 'namespace', 'project', 'git', ...Object.keys(helpers)];

// ---------------------------------------------------------------------------
// Rendering

function renderError(file: string, line: number | undefined, what: string, cause?: unknown): ConfigError {
  return new ConfigError(`${file}${line === undefined ? '' : `:${line}`}: ${what}`, { cause, detail: { file, line } });
}

function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = text.indexOf('\n'); i >= 0 && i < offset; i = text.indexOf('\n', i + 1)) line++;
  return line;
}

const EJS_TOKEN = /(<%%|%%>|<%=|<%-|<%_|<%#|<%|%>|-%>|_%>)/g;

/** The line of the first EJS tag that is never closed (what EJS reports without a line). */
function unclosedTagLine(text: string): { tag: string; line: number } | undefined {
  const tokens = ejsTokens(text);
  for (let i = 0; i < tokens.length; i++) {
    const { t, at } = tokens[i]!;
    if (t.startsWith('<%') && t !== '<%%') {
      const close = tokens[i + 2]?.t;
      if (close !== '%>' && close !== '-%>' && close !== '_%>') return { tag: t, line: lineAt(text, at) };
    }
  }
  return undefined;
}

/** Splits a template into EJS tags and text, as EJS does. */
function ejsTokens(text: string): Array<{ t: string; at: number }> {
  const tokens: Array<{ t: string; at: number }> = [];
  let last = 0;
  for (const m of text.matchAll(EJS_TOKEN)) {
    if (m.index > last) tokens.push({ t: text.slice(last, m.index), at: last });
    tokens.push({ t: m[0], at: m.index });
    last = m.index + m[0].length;
  }
  if (last < text.length) tokens.push({ t: text.slice(last), at: last });
  return tokens;
}

/** The line of the last "{" in a tag that no later tag closes (string literals skipped). */
function unclosedBraceLine(text: string): number | undefined {
  const open: number[] = [];
  const tokens = ejsTokens(text);
  for (let i = 1; i < tokens.length; i++) {
    const opener = tokens[i - 1]!.t;
    if (!opener.startsWith('<%') || opener === '<%%' || opener === '<%#') continue;
    const { t: code, at } = tokens[i]!;
    let quote = '';
    for (let j = 0; j < code.length; j++) {
      const c = code[j]!;
      if (quote) {
        if (c === '\\') j++;
        else if (c === quote) quote = '';
      } else if (c === '"' || c === "'" || c === '`') quote = c;
      else if (c === '{') open.push(lineAt(text, at + j));
      else if (c === '}') open.pop();
    }
  }
  return open.at(-1);
}

/** Where a JavaScript syntax error in a template's tags is: compile the generated code again to get its line. */
function syntaxErrorLine(text: string, generated: string): { line: number; what: string } | undefined {
  const wrapped = `(function (locals, escapeFn, include, rethrow) {\n${generated}\n})`;
  try {
    new Script(wrapped, { filename: 'skiff-template.js' });
    return undefined;
  } catch (e) {
    const stack = String((e as Error).stack ?? '');
    const at = /^skiff-template\.js:(\d+)/.exec(stack);
    const what = (e as Error).message;
    if (!at) return { line: 1, what };
    const errorLine = Number(at[1]);
    if (errorLine >= wrapped.split('\n').length) {
      // Only the closing of our own wrapper failed: a tag opened a block and none closed it.
      const line = unclosedBraceLine(text) ?? lineAt(text, text.length);
      return { line, what: 'a "{" or "(" opened in a <% %> tag is never closed' };
    }
    // EJS writes "; __line = N" after each chunk that ends a template line.
    const lines = generated.split('\n');
    for (let i = Math.min(errorLine - 2, lines.length - 1); i >= 0; i--) {
      const set = /^\s*; __line = (\d+)$/.exec(lines[i]!);
      if (set) return { line: Number(set[1]), what };
    }
    return { line: 1, what };
  }
}

type Compiled = (scope: Record<string, unknown>) => string;

function compileTemplate(file: string, text: string): Compiled {
  const template = new ejs.Template(text, {
    filename: file,
    strict: false,
    _with: false,
    localsName: 'locals',
    destructuredLocals: LOCALS,
    compileDebug: true,
    escape: printScalar,
    includer: () => {
      throw new TemplateProblem('include() is not supported; put shared parts in values, or repeat them');
    },
  });
  try {
    return template.compile() as Compiled;
  } catch (e) {
    const message = (e as Error).message ?? String(e);
    if (message.startsWith('Could not find matching close tag')) {
      const open = unclosedTagLine(text);
      throw renderError(file, open?.line ?? 1, `EJS tag "${open?.tag ?? '<%'}" is never closed; close it with "%>"`, e);
    }
    if (e instanceof SyntaxError) {
      const found = syntaxErrorLine(text, template.source);
      const what = found?.what ?? message.split(' in ')[0]!;
      throw renderError(file, found?.line ?? 1, `JavaScript syntax error in a template tag: ${what}`, e);
    }
    throw renderError(file, 1, `cannot compile the template: ${message}`, e);
  }
}

function runTemplate(file: string, compiled: Compiled, scope: Record<string, unknown>): string {
  try {
    return compiled(scope);
  } catch (e) {
    if (!(e instanceof Error)) throw renderError(file, undefined, `the template threw ${JSON.stringify(e)}`, e);
    // EJS prefixes the message with "<file>:<line>\n<context>\n\n".
    const at = e.message.startsWith(`${file}:`) ? /^[^\n]*:(\d+)\n/.exec(e.message) : null;
    const line = at ? Number(at[1]) : undefined;
    if (e instanceof TemplateProblem) throw renderError(file, line, e.what, e);
    const original = at ? e.message.slice(e.message.indexOf('\n\n') + 2) : e.message;
    const hint =
      e instanceof ReferenceError
        ? `; templates see ${LOCALS.join(', ')}`
        : e instanceof TypeError && /read[- ]only|not extensible|Cannot (add|delete) property/i.test(original)
          ? ' (values are read-only in templates: copy first, e.g. [...values.list].sort())'
          : e instanceof TypeError
            ? ' (a missing value? check the values files, or guard it with required(value, "message"))'
            : '';
    throw renderError(file, line, `${original}${hint}`, e);
  }
}

const INLINE_TAG = /<%[=-](?:(?!%>)[^\n])*?%>/g;

/**
 * Whether line `line` of the rendered output is line `line` of the template:
 * every template line up to it is either copied unchanged or only has
 * `<%= %>`/`<%- %>` tags that printed a single line.
 */
function sameLine(template: string, rendered: string, line: number): boolean {
  if (template === rendered || !template.includes('<%')) return true;
  const src = template.split('\n', line);
  const out = rendered.split('\n', line);
  if (src.length < line || out.length < line) return false;
  for (let i = 0; i < line; i++) {
    const s = src[i]!;
    const o = out[i]!;
    if (s === o) continue;
    // Anything but single-line <%= %> and <%- %> tags may add or remove lines.
    if (s.replace(INLINE_TAG, '').includes('<%') || !s.includes('%>') || /[-_]%>/.test(s)) return false;
    const literal = s.split(INLINE_TAG).map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    if (!new RegExp(`^${literal.join('.*')}$`).test(o)) return false;
  }
  return true;
}

interface RenderedFile {
  file: string;
  template: string;
  text: string;
}

/** " (in rendered output)" when the line number is not the template's own. */
function note(r: RenderedFile, line: number): string {
  return sameLine(r.template, r.text, line) ? '' : ' (in rendered output)';
}

function problemAt(r: RenderedFile, line: number, what: string): ConfigError {
  return renderError(r.file, line, `${what}${note(r, line)}`);
}

function parseManifests(r: RenderedFile, warnings: string[]): Manifest[] {
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(r.text, { ...K8S_YAML, lineCounter, prettyErrors: false, uniqueKeys: true });
  const out: Manifest[] = [];
  for (const doc of docs) {
    const error = doc.errors[0];
    if (error) {
      const line = lineCounter.linePos(error.pos[0]).line;
      const what = error.message.split('\n')[0]!.replace(/ at line \d+, column \d+.*$/, '');
      throw problemAt(r, line, `invalid YAML: ${what}`);
    }
    // YAML 1.1 (kubectl's reading) turns plain keys like y, n, on, off into booleans.
    visit(doc, {
      Pair(_, pair) {
        const key = pair.key;
        if (isScalar(key) && typeof key.value === 'boolean' && key.type === 'PLAIN' && key.range) {
          const line = lineCounter.linePos(key.range[0]).line;
          warnings.push(`${r.file}:${line}: the key ${key.source} is read as ${key.value} (YAML 1.1, as kubectl reads it)${note(r, line)}; quote it ("${key.source}") if you meant the text`);
        }
      },
    });
    const contents = doc.contents;
    if (contents === null) continue;
    const line = lineCounter.linePos(contents.range?.[0] ?? 0).line;
    if (!isMap(contents)) {
      const value: unknown = doc.toJS();
      if (value === null) continue;
      const found = isSeq(contents) ? 'a list' : `the scalar ${JSON.stringify(value)}`;
      throw problemAt(r, line, `a YAML document must be a Kubernetes object (a mapping), found ${found}`);
    }
    const object = doc.toJS({ maxAliasCount: 100 }) as Record<string, unknown>;
    out.push({ object: object as KubeObject, source: { file: r.file, line } });
  }
  return out;
}

// ---------------------------------------------------------------------------
// Validation

const CLUSTER_SCOPED = new Set([
  'Namespace',
  'Node',
  'PersistentVolume',
  'StorageClass',
  'ClusterRole',
  'ClusterRoleBinding',
  'CustomResourceDefinition',
  'PriorityClass',
  'IngressClass',
  'APIService',
  'MutatingWebhookConfiguration',
  'ValidatingWebhookConfiguration',
  'CSIDriver',
  'CSINode',
  'RuntimeClass',
  'VolumeAttachment',
  'ValidatingAdmissionPolicy',
  'ValidatingAdmissionPolicyBinding',
  'MutatingAdmissionPolicy',
  'MutatingAdmissionPolicyBinding',
  'CertificateSigningRequest',
  'ClusterTrustBundle',
  'FlowSchema',
  'PriorityLevelConfiguration',
  'IPAddress',
  'ServiceCIDR',
  'DeviceClass',
  'ResourceSlice',
]);

/** Built-in kinds without a namespace. Custom resources are namespaced unless a CRD in the release says otherwise. */
export function isClusterScoped(kind: string): boolean {
  return CLUSTER_SCOPED.has(kind);
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const RBAC_KINDS = new Set(['Role', 'ClusterRole', 'RoleBinding', 'ClusterRoleBinding']);

/** What the API server would say about a name, or undefined when it is valid. */
function nameProblem(kind: string, name: string): string | undefined {
  if (RBAC_KINDS.has(kind)) {
    // RBAC names are path segments: "system:aggregate-to-view" is fine.
    return name === '.' || name === '..' || /[/%]/.test(name) ? 'must not be "." or ".." or contain "/" or "%"' : undefined;
  }
  if (kind === 'Namespace' && !(name.length <= 63 && DNS_LABEL.test(name))) {
    return 'must be a DNS label: at most 63 lower-case letters, digits and "-", starting and ending with a letter or digit';
  }
  if (kind === 'Service' && !(name.length <= 63 && DNS_1035_LABEL.test(name))) {
    return 'must be a DNS-1035 label: at most 63 lower-case letters, digits and "-", starting with a letter and ending with a letter or digit';
  }
  if (!(name.length <= 253 && DNS_SUBDOMAIN.test(name))) {
    return 'must be a DNS subdomain: at most 253 lower-case letters, digits, "-" and ".", starting and ending with a letter or digit';
  }
  return undefined;
}

function clusterScopedCustomKinds(manifests: Manifest[]): Set<string> {
  const out = new Set<string>();
  for (const { object } of manifests) {
    if (object.kind !== 'CustomResourceDefinition') continue;
    const spec = object.spec as { group?: unknown; scope?: unknown; names?: { kind?: unknown } } | undefined;
    if (spec?.scope === 'Cluster' && typeof spec.group === 'string' && typeof spec.names?.kind === 'string') {
      out.add(`${spec.group}/${spec.names.kind}`);
    }
  }
  return out;
}

function checkStringMap(r: RenderedFile, line: number, who: string, field: string, map: unknown, isLabels: boolean): void {
  if (map === undefined || map === null) return;
  if (!isPlainMap(map)) throw problemAt(r, line, `${who}: metadata.${field} must be a mapping of strings`);
  for (const [k, v] of Object.entries(map)) {
    if (typeof v !== 'string') {
      throw problemAt(r, line, `${who}: metadata.${field}.${k} must be a string, found ${JSON.stringify(v)}; quote it`);
    }
    if (isLabels && !(v.length <= 63 && LABEL_VALUE.test(v))) {
      throw problemAt(
        r,
        line,
        `${who}: label ${k}: "${v}" is not a valid label value: at most 63 letters, digits, "-", "_" and ".", starting and ending with a letter or digit`,
      );
    }
  }
}

function validateAndComplete(manifests: Manifest[], fileOf: Map<Manifest, RenderedFile>, input: RenderInput): void {
  const customClusterKinds = clusterScopedCustomKinds(manifests);
  const seen = new Map<string, Manifest>();
  for (const m of manifests) {
    const r = fileOf.get(m)!;
    const line = m.source.line;
    const o = m.object as unknown as Record<string, unknown>;
    for (const field of ['apiVersion', 'kind'] as const) {
      if (o[field] === undefined) throw problemAt(r, line, `missing ${field}; every object needs apiVersion, kind and metadata.name`);
      if (typeof o[field] !== 'string' || o[field] === '') throw problemAt(r, line, `${field} must be a non-empty string, found ${JSON.stringify(o[field])}`);
    }
    const kind = o.kind as string;
    if (kind === 'List' || kind.endsWith('List')) {
      if (Array.isArray(o.items)) throw problemAt(r, line, `kind: ${kind} is not applied as such; put each item in its own YAML document (separated by ---)`);
    }
    const meta = o.metadata;
    if (meta === undefined || meta === null) throw problemAt(r, line, `${kind}: missing metadata.name; every object needs apiVersion, kind and metadata.name`);
    if (!isPlainMap(meta)) throw problemAt(r, line, `${kind}: metadata must be a mapping`);
    if (meta.name === undefined || meta.name === null) {
      const hint = meta.generateName !== undefined ? ' (generateName cannot be applied: give the object a fixed name)' : '';
      throw problemAt(r, line, `${kind}: missing metadata.name${hint}; every object needs apiVersion, kind and metadata.name`);
    }
    if (typeof meta.name !== 'string') throw problemAt(r, line, `${kind}: metadata.name must be a string, found ${JSON.stringify(meta.name)}`);
    const name = meta.name;
    const who = `${kind} "${name}"`;
    const bad = nameProblem(kind, name);
    if (bad) throw problemAt(r, line, `${who}: metadata.name ${bad}`);
    checkStringMap(r, line, who, 'labels', meta.labels, true);
    checkStringMap(r, line, who, 'annotations', meta.annotations, false);
    const hook = (meta.annotations as Record<string, string> | undefined)?.[HOOK_ANNOTATION];
    if (hook !== undefined && !(HOOKS as readonly string[]).includes(hook)) {
      throw problemAt(r, line, `${who}: annotation ${HOOK_ANNOTATION}: "${hook}" is not a hook; use ${HOOKS.map((h) => `"${h}"`).join(' or ')}`);
    }

    const clusterScoped = isClusterScoped(kind) || customClusterKinds.has(`${apiGroup(o.apiVersion as string)}/${kind}`);
    const { name: _name, namespace, labels, ...rest } = meta;
    let ns: string | undefined;
    if (!clusterScoped) {
      if (namespace === undefined || namespace === null || namespace === '') ns = input.namespace;
      else if (typeof namespace !== 'string' || !(namespace.length <= 63 && DNS_LABEL.test(namespace))) {
        throw problemAt(r, line, `${who}: metadata.namespace ${JSON.stringify(namespace)} is not a namespace name (a DNS label)`);
      } else ns = namespace;
    }
    // Rebuilt so that name and namespace lead, as kubectl prints them; a
    // namespace on a cluster-scoped object is dropped, as the API server does.
    const metadata: KubeObject['metadata'] = { name };
    if (ns !== undefined) metadata.namespace = ns;
    metadata.labels = { ...(labels as Record<string, string> | undefined), [MANAGED_BY_LABEL]: 'skiff', [RELEASE_LABEL]: input.release };
    Object.assign(metadata, rest);
    m.object.metadata = metadata;

    const key = objectKey(m.object);
    const first = seen.get(key);
    if (first) {
      throw problemAt(
        r,
        line,
        `duplicate object ${describeObject(m.object)}: also defined at ${first.source.file}:${first.source.line}; each object (kind, name, namespace) must be defined once`,
      );
    }
    seen.set(key, m);
  }
}

/**
 * Renders .kube/ for one environment: merges values, runs every template
 * through EJS, parses the YAML documents, validates them, and adds namespace
 * and skiff labels. Throws ConfigError (exit 2) naming template:line.
 */
export function renderRelease(input: RenderInput): RenderOutput {
  if (!(input.release.length <= 53 && DNS_LABEL.test(input.release))) {
    throw new ConfigError(
      `release name "${input.release}" must be a DNS label of at most 53 characters (lower-case letters, digits and "-"); set environments.${input.env}.release in skiff.yaml`,
    );
  }
  const layers: Values[] = [];
  for (const { origin, values } of input.valueSources) {
    if (values === null || values === undefined) continue;
    if (!isPlainMap(values)) throw new ConfigError(`${origin}: values must be a mapping at the top level, found ${typeName(values)}`);
    layers.push(values);
  }
  const values = mergeValues(...layers);
  for (const expr of input.sets) applySet(values, parseSet(expr), expr);

  const scope: Record<string, unknown> = {
    values: deepFreeze(cloneValue(values)),
    images: imagesProxy(input.images),
    env: input.env,
    release: input.release,
    namespace: input.namespace,
    project: input.project,
    git: Object.freeze({ ...input.git }),
    ...helpers,
  };

  const templates = [...input.templates].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const manifests: Manifest[] = [];
  const warnings: string[] = [];
  const fileOf = new Map<Manifest, RenderedFile>();
  for (const t of templates) {
    // Without a tag there is nothing to run: the file is its own output (and a stray "%>" survives).
    const text = t.content.includes('<%') ? runTemplate(t.path, compileTemplate(t.path, t.content), scope) : t.content;
    const r: RenderedFile = { file: t.path, template: t.content, text };
    for (const m of parseManifests(r, warnings)) {
      manifests.push(m);
      fileOf.set(m, r);
    }
  }
  validateAndComplete(manifests, fileOf, input);
  return { manifests, values, warnings };
}

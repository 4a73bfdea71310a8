import { createHash } from 'node:crypto';
import { Script } from 'node:vm';
import ejs from 'ejs';
import { stringify } from 'yaml';
import { ConfigError } from '../errors.js';
import type { RenderInput, TemplateFile } from './render-release.js';
import { cloneValue, deepFreeze, type Values } from './values.js';

// ---------------------------------------------------------------------------
// Template helpers

/** Thrown by helpers inside a template; the renderer adds file and line. */
class TemplateProblem extends Error {
  constructor(readonly what: string) {
    super(what);
  }
}

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

/** A helper that prints its argument needs a scalar: an object or list would print as "[object Object]". */
function scalarArg(helper: string, v: unknown): void {
  present(helper, v);
  if (typeof v === 'object' || typeof v === 'function') {
    throw new TemplateProblem(
      `${helper}() got ${Array.isArray(v) ? 'a list' : 'an object'}; give it a string or number, or print structures with toYaml(value, indent)`,
    );
  }
}

const helpers = {
  toYaml,
  b64(v: unknown): string {
    scalarArg('b64', v);
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
    scalarArg('quote', v);
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
  if (typeof v === 'string') return v;
  return typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint' ? v.toString() : '';
}

/** secretFile(path): a decrypted file under .kube/secret/; an unknown path is a template error naming it. */
function secretFileHelper(files: Readonly<Record<string, string>>): (path: unknown) => string {
  return (path) => {
    if (typeof path === 'string' && Object.hasOwn(files, path)) return files[path]!;
    const names = Object.keys(files).sort();
    const known = names.length ? `the secret files are ${names.map((n) => `"${n}"`).join(', ')}` : 'there are none';
    throw new TemplateProblem(
      `secretFile(${JSON.stringify(path)}): no such file under .kube/secret/ (${known}); add it with "skiff secret edit .kube/secret/${typeof path === 'string' ? path : '<path>'}"`,
    );
  };
}

const LOCALS = ['values', 'images', 'env', 'slug', 'url', 'release', 'namespace', 'project', 'git', ...Object.keys(helpers), 'secretFile'];

/** What templates see: the values (read-only), images, release facts and the helpers, named as in LOCALS. */
export function templateScope(
  values: Values,
  input: Pick<RenderInput, 'images' | 'env' | 'slug' | 'url' | 'release' | 'namespace' | 'project' | 'git' | 'secretFiles'>,
): Record<string, unknown> {
  return {
    values: deepFreeze(cloneValue(values)),
    images: imagesProxy(input.images),
    env: input.env,
    slug: input.slug,
    url: input.url,
    release: input.release,
    namespace: input.namespace,
    project: input.project,
    git: Object.freeze({ ...input.git }),
    secretFile: secretFileHelper(input.secretFiles ?? {}),
    ...helpers,
  };
}

// ---------------------------------------------------------------------------
// EJS: compile and run, with the template line in every error

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

export interface RenderedFile {
  file: string;
  template: string;
  text: string;
}

/** Runs one template through EJS. */
export function renderTemplate(t: TemplateFile, scope: Record<string, unknown>): RenderedFile {
  // Without a tag there is nothing to run: the file is its own output (and a stray "%>" survives).
  const text = t.content.includes('<%') ? runTemplate(t.path, compileTemplate(t.path, t.content), scope) : t.content;
  return { file: t.path, template: t.content, text };
}

// ---------------------------------------------------------------------------
// Positions: rendered lines back to template lines

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

/** " (in rendered output)" when the line number is not the template's own. */
export function note(r: RenderedFile, line: number): string {
  return sameLine(r.template, r.text, line) ? '' : ' (in rendered output)';
}

export function problemAt(r: RenderedFile, line: number, what: string): ConfigError {
  return renderError(r.file, line, `${what}${note(r, line)}`);
}

/**
 * Owns the encrypted part of .kube/: secret-values.yaml and
 * secret-values.<env>.yaml (keys in clear, each scalar encrypted on its own)
 * and the files under secret/ (each encrypted whole): parsed, decrypted for a
 * render (loadSecretInputs) and for the secret commands.
 */
import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node, type Scalar } from 'yaml';
import { MissingSecretKeyError, projectKeys, type SecretKeys } from './key-lookup.js';
import type { Reporter, RunContext } from '../context.js';
import { CURRENT_PREFIX, decryptSecret, isLegacyCiphertext, isSkiffCiphertext, SecretFormatError, showKeyPath, type SecretPlace } from './crypto.js';
import { MIN_SECRET_LENGTH, secretForms } from './material.js';
import { decryptWerfSecret, isWerfCiphertext } from './werf-format.js';
import { ConfigError } from '../errors.js';
import { isSecretFile, type TemplateFile } from '../render/render-release.js';
import type { ValueSource } from '../render/values.js';

export const SECRET_DIR = '.kube/secret/';
export function isSecretValuesFile(path: string): boolean {
  return isSecretFile(path) && !path.startsWith(SECRET_DIR);
}

/** The secret-values files of an environment in merge order, each in its .yaml and .yml spelling. */
export function secretValuesFileNames(env: string): string[] {
  return ['.kube/secret-values.yaml', '.kube/secret-values.yml', `.kube/secret-values.${env}.yaml`, `.kube/secret-values.${env}.yml`];
}

// ---------------------------------------------------------------------------
// One value or file

/** Where a ciphertext stands, for messages: `file:line: key.path: …`. */
export interface SecretWhere {
  file: string;
  line?: number;
  /** The key path of a value; none for a whole file. */
  path?: ReadonlyArray<string | number>;
}

export function describeWhere(where: SecretWhere): string {
  return `${where.file}${where.line === undefined ? '' : `:${where.line}`}${where.path ? `: ${showKeyPath(where.path)}` : ''}`;
}

function fixHint(problem: SecretFormatError['problem'], where: SecretWhere): string {
  if (problem === 'other-key') return '; set SKIFF_SECRET_KEY to the key it was encrypted with (or rotate it: skiff secret rotate-key)';
  if (problem === 'bad-key') return '';
  if (where.file === 'stdin') return '; give the key path (or --file) it was encrypted for';
  return where.path
    ? `; restore it from Git, or set the value again with "skiff secret edit ${where.file}"`
    : `; restore it from Git, or encrypt the file again with "skiff secret edit ${where.file}"`;
}

/** The text of one ciphertext, skiff's or werf's; any problem is exit 2 naming file, line and key path. */
export async function openSecret(text: string, place: SecretPlace, keys: SecretKeys, where: SecretWhere): Promise<string> {
  const needs = where.file;
  try {
    if (isSkiffCiphertext(text.trim())) {
      const plain = decryptSecret(text, await keys.skiff(needs), place);
      return new TextDecoder('utf-8', { fatal: true }).decode(plain);
    }
    return decryptWerfSecret(text, await keys.werf(needs));
  } catch (e) {
    if (e instanceof SecretFormatError) throw new ConfigError(`${describeWhere(where)}: ${e.message}${fixHint(e.problem, where)}`, { cause: e });
    if (e instanceof TypeError)
      throw new ConfigError(`${describeWhere(where)}: the decrypted data is not UTF-8 text; secret files hold text (base64-encode binary files)`);
    throw e;
  }
}

export type CiphertextKind = 'skiff' | 'werf' | 'plain';

export function ciphertextKind(text: string): CiphertextKind {
  const t = text.trim();
  return isSkiffCiphertext(t) ? 'skiff' : isWerfCiphertext(t) ? 'werf' : 'plain';
}

// ---------------------------------------------------------------------------
// Secret-values files

/** One scalar of a secret-values file: where it stands and its node (null values included). */
export interface SecretScalar {
  path: Array<string | number>;
  line: number;
  node: Scalar;
}

export interface SecretValuesDoc {
  doc: Document;
  scalars: SecretScalar[];
}

/**
 * Parses a secret-values file: a mapping whose leaves are scalars. Invalid
 * YAML, another top level, aliases (a ciphertext belongs to one key path) and
 * an empty file (unless `allowEmpty`, for a file being created) are exit 2.
 */
export function parseSecretValues(file: string, text: string, opts: { allowEmpty?: boolean } = {}): SecretValuesDoc {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const lineOf = (node: Node | null | undefined) => lineCounter.linePos(node?.range?.[0] ?? 0).line;
  const first = doc.errors[0];
  if (first) {
    const what = first.message.split('\n')[0]!.replace(/ at line \d+, column \d+.*$/, '');
    throw new ConfigError(`${file}:${lineCounter.linePos(first.pos[0]).line}: invalid YAML: ${what}`);
  }
  const scalars: SecretScalar[] = [];
  if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) {
    if (opts.allowEmpty) return { doc, scalars };
    throw new ConfigError(`${file}: the file is empty; add encrypted values with "skiff secret edit ${file}", or delete the file`);
  }
  if (!isMap(doc.contents)) throw new ConfigError(`${file}:${lineOf(doc.contents)}: a secret-values file is a mapping of keys to values`);
  const walk = (node: unknown, path: Array<string | number>) => {
    if (isAlias(node))
      throw new ConfigError(`${file}:${lineOf(node)}: ${showKeyPath(path)}: YAML aliases are not supported in secret-values files; repeat the value`);
    if (isMap(node)) {
      for (const pair of node.items) {
        const k: unknown = isPair(pair) && isScalar(pair.key) ? pair.key.value : undefined;
        if (typeof k !== 'string' && typeof k !== 'number' && typeof k !== 'boolean') {
          throw new ConfigError(`${file}:${lineOf(pair.key as Node)}: keys of a secret-values file are plain names`);
        }
        walk(pair.value, [...path, String(k)]);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => walk(item, [...path, i]));
    } else if (isScalar(node)) {
      scalars.push({ path, line: lineOf(node), node });
    }
    // else `key:` with nothing after it: null, as in any values file
  };
  walk(doc.contents, []);
  return { doc, scalars };
}

/** The text a scalar holds (what skiff encrypts): strings as they are, numbers and booleans as written. */
export function scalarText(node: Scalar): string | null {
  if (node.value === null || node.value === undefined) return null;
  if (typeof node.value === 'string') return node.value;
  const v: unknown = node.value;
  return node.source ?? (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint' ? String(v) : JSON.stringify(v));
}

/** A plain value where a ciphertext belongs: exit 2, fixed by `skiff secret edit`. */
function plainValueError(file: string, s: SecretScalar): ConfigError {
  return new ConfigError(
    `${file}:${s.line}: ${showKeyPath(s.path)}: the value is not encrypted (a plain value in a secret-values file); encrypt it with "skiff secret edit ${file}"`,
  );
}

/** One decrypted value of a secret-values file. */
export interface DecryptedValue {
  path: Array<string | number>;
  line: number;
  text: string;
  /** An old skiff:v1 value, not bound to its file. */
  legacy: boolean;
}

/**
 * Decrypts every value of a secret-values file, in place in its document;
 * returns each decrypted value with its key path, and whether it is an old
 * skiff:v1 value (not bound to its file). A v1 value in a file that also holds
 * v2 values is refused: that mix is what a v1 value of another environment's
 * file pasted here looks like.
 */
export async function decryptSecretValues(file: string, parsed: SecretValuesDoc, keys: SecretKeys): Promise<DecryptedValue[]> {
  const legacy = parsed.scalars.filter((s) => typeof s.node.value === 'string' && isLegacyCiphertext(s.node.value));
  const bound = parsed.scalars.some((s) => typeof s.node.value === 'string' && s.node.value.trim().startsWith(CURRENT_PREFIX));
  if (legacy.length > 0 && bound) {
    const s = legacy[0]!;
    throw new ConfigError(
      `${file}:${s.line}: ${showKeyPath(s.path)} is an old skiff:v1 value, not bound to its file, in a file that holds skiff:v2 values: a v1 value copied here from another environment's file would decrypt, so it is refused; if it is this file's own, upgrade it with "skiff secret edit ${file}" (or skiff secret rotate-key)`,
    );
  }
  const out: DecryptedValue[] = [];
  for (const s of parsed.scalars) {
    const text = scalarText(s.node);
    if (text === null) continue;
    if (typeof s.node.value !== 'string' || ciphertextKind(text) === 'plain') throw plainValueError(file, s);
    const plain = await openSecret(text, { value: s.path, valuesFile: file }, keys, { file, line: s.line, path: s.path });
    out.push({ path: s.path, line: s.line, text: plain, legacy: legacy.includes(s) });
    s.node.value = plain;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Secret files

export function secretFilePath(repoPath: string): string {
  return repoPath.slice(SECRET_DIR.length);
}

/** Decrypts one file under .kube/secret/ (given by its repository path). */
export async function decryptSecretFile(repoPath: string, content: string, keys: SecretKeys): Promise<string> {
  const name = secretFilePath(repoPath);
  if (!content.trim()) throw new ConfigError(`${repoPath}: the file is empty; put the encrypted file here with "skiff secret edit ${repoPath}", or delete it`);
  if (ciphertextKind(content) === 'plain') {
    throw new ConfigError(
      `${repoPath}: the file is not encrypted; files under ${SECRET_DIR} are secret files read with secretFile('${name}'): encrypt it with "skiff secret edit ${repoPath}" (templates belong elsewhere in .kube/)`,
    );
  }
  return openSecret(content, { file: name }, keys, { file: repoPath });
}

// ---------------------------------------------------------------------------
// For a render

export interface SecretInputs {
  /** The decrypted secret-values files of the environment, in merge order. */
  sources: ValueSource[];
  /** The decrypted files under .kube/secret/, by their path below it (what secretFile() takes). */
  files: Record<string, string>;
  /** Secret strings in the forms a template writes them (as is, in a URL, base64…), 6 characters or more, and where each comes from. */
  strings: Array<[string, string]>;
  /** Every decrypted value and file whole, whatever its length: masked wherever a stored value equals one. */
  values: string[];
}

/**
 * Decrypts the secret-values files of an environment and every secret file,
 * from the files of .kube/ being rendered. Nothing encrypted, nothing looked
 * up: a project without secrets needs no key. Without a key, a secret file is
 * an error only when a template reads it.
 */
export async function loadSecretInputs(ctx: RunContext, root: string, files: readonly TemplateFile[], env: string): Promise<SecretInputs> {
  const result: SecretInputs = { sources: [], files: {}, strings: [], values: [] };
  const encrypted = files.filter((f) => isSecretFile(f.path));
  if (encrypted.length === 0) return result;
  const keys = projectKeys(ctx, root);
  const remember = (text: string, origin: string) => {
    result.values.push(text);
    for (const form of secretForms(text)) result.strings.push([form, origin]);
  };
  const names = secretValuesFileNames(env);
  for (const spellings of [names.slice(0, 2), names.slice(2)]) {
    const found = spellings.map((path) => encrypted.find((f) => f.path === path)).filter((f) => f !== undefined);
    if (found.length > 1) throw new ConfigError(`${found.map((f) => f.path).join(' and ')} both exist; keep one of them`);
    for (const f of found) {
      const parsed = parseSecretValues(f.path, f.content);
      for (const d of await decryptSecretValues(f.path, parsed, keys)) {
        remember(d.text, `secret-values ${f.path} ${showKeyPath(d.path)}`);
        warnOfValue(ctx.reporter, f.path, d);
      }
      result.sources.push({ origin: f.path, values: parsed.doc.toJS() as unknown });
    }
  }
  for (const f of encrypted.filter((x) => x.path.startsWith(SECRET_DIR))) {
    const text = await decryptSecretFileOrDefer(f, keys, result.files);
    if (text !== undefined) remember(text, `secret file ${f.path}`);
  }
  return result;
}

/** What a render says of a decrypted value: an old skiff:v1 one to upgrade, one too short to look for in other text. */
function warnOfValue(reporter: Reporter, file: string, d: DecryptedValue): void {
  if (d.legacy) {
    reporter.warn(
      `${file}:${d.line}: ${showKeyPath(d.path)} is an old skiff:v1 value, not bound to its file; run skiff secret edit ${file} or skiff secret rotate-key to upgrade it`,
    );
  }
  if (d.text.length > 0 && d.text.length < MIN_SECRET_LENGTH) {
    reporter.warn(
      `${file}:${d.line}: ${showKeyPath(d.path)} is shorter than ${MIN_SECRET_LENGTH} characters: skiff masks it in Secrets and in the stored values, but does not look for it in other text`,
    );
  }
}

/**
 * A secret file's text, put in `files` by its path under .kube/secret/. With
 * no key, undefined, and the file is an error only if a template reads it (an
 * environment without secrets, a review app).
 */
async function decryptSecretFileOrDefer(f: TemplateFile, keys: SecretKeys, files: Record<string, string>): Promise<string | undefined> {
  let text: string;
  try {
    text = await decryptSecretFile(f.path, f.content, keys);
  } catch (e) {
    if (!(e instanceof MissingSecretKeyError)) throw e;
    Object.defineProperty(files, secretFilePath(f.path), {
      enumerable: true,
      get: () => {
        throw new MissingSecretKeyError(e.message);
      },
    });
    return undefined;
  }
  files[secretFilePath(f.path)] = text;
  return text;
}

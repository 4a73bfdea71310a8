import { spawn } from 'node:child_process';
import { accessSync, constants, rmSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { Scalar } from 'yaml';
import { childEnv } from '../adapters/child-env.js';
import { findRepoRoot } from '../adapters/git.js';
import { createTemporaryBeside, isTemporaryName, refuseSymlinks, replaceInside, writeNoFollow } from '../adapters/repo-files.js';
import { findWerfKey, oldSecretKey, OLD_KEY_ENV, requireSecretKey, WERF_KEY_ENV } from './key-lookup.js';
import type { RunContext } from '../context.js';
import {
  ciphertextKeyId,
  encryptSecret,
  generateSecretKey,
  isLegacyCiphertext,
  parseKeyPath,
  showKeyPath,
  type SecretKey,
  type SecretPlace,
} from './crypto.js';
import { ConfigError, ExitCode, isSkiffError, SkiffError } from '../errors.js';
import { isSecretFile } from '../render/render.js';
import {
  ciphertextKind,
  isSecretValuesFile,
  openSecret,
  parseSecretValues,
  projectKeys,
  scalarText,
  SECRET_DIR,
  secretFilePath,
  type SecretKeys,
} from './secret-values.js';

// ---------------------------------------------------------------------------
// generate-key, encrypt, decrypt

export interface GenerateKeyResult {
  /** 64 hex characters: AES-256. */
  key: string;
}

/** skiff secret generate-key: a new random key. */
export function runGenerateKey(): GenerateKeyResult {
  return { key: generateSecretKey() };
}

/** Where a value from stdin goes: a key path of a secret-values file, or a file under .kube/secret/. */
export interface SecretTargetOptions {
  /** A key path, e.g. db.password: the value is bound to it. */
  keyPath?: string;
  /** The secret-values file a key path's value goes in (repository path; default .kube/secret-values.yaml): the value is bound to it too. */
  valuesFile?: string;
  /** A path under .kube/secret/, e.g. tls/key.pem (".kube/secret/" in front is accepted). */
  file?: string;
}

function placeOf(opts: SecretTargetOptions, command: string): SecretPlace | undefined {
  if (opts.keyPath !== undefined && opts.file !== undefined) throw new ConfigError(`${command}: give a key path or --file, not both`);
  if (opts.keyPath !== undefined) {
    const path = parseKeyPath(opts.keyPath);
    if (!path) throw new ConfigError(`${command}: "${opts.keyPath}" is not a key path; write it as in the values, e.g. db.password or hosts[0]`);
    const valuesFile = (opts.valuesFile ?? '.kube/secret-values.yaml').replace(/\\/g, '/').replace(/^\.\//, '');
    if (!isSecretValuesFile(valuesFile)) {
      throw new ConfigError(
        `${command}: --values-file "${opts.valuesFile}" is not a secret-values file; give its path from the repository root, e.g. .kube/secret-values.production.yaml`,
      );
    }
    return { value: path, valuesFile };
  }
  if (opts.valuesFile !== undefined) throw new ConfigError(`${command}: --values-file goes with a key path (the value's place in that file)`);
  if (opts.file !== undefined) {
    const file = opts.file.replace(/\\/g, '/').replace(/^(\.\/)?\.kube\/secret\//, '');
    if (!file || isAbsolute(file) || file.split('/').some((p) => p === '..' || p === '' || p === '.')) {
      throw new ConfigError(`${command}: --file "${opts.file}" is not a path under ${SECRET_DIR}; give it as secretFile() takes it, e.g. tls/key.pem`);
    }
    return { file };
  }
  return undefined;
}

async function repoRootOrUndefined(ctx: RunContext): Promise<string | undefined> {
  try {
    return await findRepoRoot(ctx.cwd);
  } catch (e) {
    if (isSkiffError(e) && e.kind === 'config') return undefined; // outside a repository: the key comes from the environment or ~/.skiff
    throw e;
  }
}

function utf8(bytes: Buffer, what: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new ConfigError(`${what} is not UTF-8 text; secrets are text (base64-encode a binary file first)`);
  }
}

export interface EncryptOptions extends SecretTargetOptions {
  /** The value (one final newline is dropped) or the file's bytes. */
  input: Buffer;
}

export interface EncryptResult {
  ciphertext: string;
  keyId: string;
}

/** skiff secret encrypt: one value (bound to its key path) or one file (bound to its path under .kube/secret/). */
export async function runEncrypt(ctx: RunContext, opts: EncryptOptions): Promise<EncryptResult> {
  const place = placeOf(opts, 'skiff secret encrypt');
  if (!place) {
    throw new ConfigError(
      'skiff secret encrypt: say where the value goes: a key path (skiff secret encrypt db.password) or a secret file (skiff secret encrypt --file tls/key.pem)',
    );
  }
  const key = await requireSecretKey(ctx.env, await repoRootOrUndefined(ctx), 'skiff secret encrypt');
  let text = utf8(opts.input, 'the input');
  if ('value' in place) text = text.replace(/\r?\n$/, '');
  return { ciphertext: encryptSecret(text, key, place), keyId: key.id };
}

export interface DecryptOptions extends SecretTargetOptions {
  /** A ciphertext: skiff's (needs the key path or file it belongs to) or werf's. */
  input: string;
}

export interface DecryptResult {
  plaintext: string;
}

/** skiff secret decrypt: the text of one value or file read from stdin. */
export async function runDecrypt(ctx: RunContext, opts: DecryptOptions): Promise<DecryptResult> {
  const place = placeOf(opts, 'skiff secret decrypt');
  const kind = ciphertextKind(opts.input);
  if (kind === 'plain') throw new ConfigError('stdin: not a ciphertext of skiff ("skiff:v2:…") or werf (hex starting with 1000 or 0200)');
  if (kind === 'skiff' && !place) {
    throw new ConfigError(
      'skiff secret decrypt: a skiff value is bound to where it belongs: give its key path (skiff secret decrypt db.password) or --file <path under .kube/secret/>',
    );
  }
  const keys = projectKeys(ctx.env, await repoRootOrUndefined(ctx));
  const plaintext = await openSecret(opts.input, place ?? { file: '' }, keys, {
    file: 'stdin',
    path: place && 'value' in place ? place.value : undefined,
  });
  return { plaintext };
}

// ---------------------------------------------------------------------------
// edit

export interface EditOptions {
  /** The secret-values file or secret file, relative to the working directory. */
  file: string;
  /** Runs the editor on the plain copy (default: $VISUAL, $EDITOR, vi, on the terminal). */
  editor?: (file: string, signal: AbortSignal) => Promise<void>;
  /** Asked when the edited text is not valid: true opens the editor again on it. */
  retry?: (problem: string) => Promise<boolean>;
}

export interface EditResult {
  file: string;
  created: boolean;
  /** Nothing changed: the file is as it was. */
  unchanged: boolean;
  /** Key paths (or the file) encrypted anew; every other value kept its ciphertext. */
  encrypted: string[];
  /** Values whose ciphertext was kept. */
  kept: number;
}

/**
 * skiff secret edit: the file decrypted into a private temporary file (0600,
 * in /dev/shm where the machine has it), the editor opened on it, and only
 * the values that changed encrypted again, so unchanged values keep their
 * ciphertext and the Git diff shows what changed. The plain copy is removed
 * on every way out: saved, editor failed, skiff interrupted.
 */
export async function runEdit(ctx: RunContext, opts: EditOptions): Promise<EditResult> {
  const root = await findRepoRoot(ctx.cwd);
  const abs = resolve(ctx.cwd, opts.file);
  const rel = relative(root, abs).split(sep).join('/');
  if (!isSecretFile(rel) || rel === SECRET_DIR.slice(0, -1)) {
    throw new ConfigError(
      `${opts.file}: not a secret file; skiff secret edit works on .kube/secret-values.yaml, .kube/secret-values.<env>.yaml and files under ${SECRET_DIR}`,
    );
  }
  // A symlink at the file or a folder on the way: refused before anything is decrypted.
  await refuseSymlinks(root, rel);
  const keys = projectKeys(ctx.env, root);
  const key = await keys.skiff(rel);
  let current: string | undefined;
  try {
    current = await readFile(abs, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const editor = opts.editor ?? terminalEditor(ctx.env);
  const edit = isSecretValuesFile(rel) ? await valuesEdit(rel, current ?? '', keys, key) : await fileEdit(rel, current, keys, key);
  const result = await withPrivateCopy(basename(rel), edit.plain, async (copy) => {
    for (;;) {
      await editor(copy, ctx.signal);
      if (ctx.signal.aborted) throw interrupted();
      const text = await readFile(copy, 'utf8');
      if (text === edit.plain && !edit.dirty) return undefined;
      try {
        return edit.encrypt(text);
      } catch (e) {
        if (!(e instanceof ConfigError) || !opts.retry || !(await opts.retry(e.message))) throw e;
      }
    }
  });
  if (!result || result.content === current) return { file: rel, created: false, unchanged: true, encrypted: [], kept: result?.kept ?? 0 };
  // The file changed while the editor was open (a git pull, another edit): writing would drop that change
  // without a word, and dropping the edit would lose the user's work. Keep both: the edit, encrypted, beside it.
  const now = await readFile(abs, 'utf8').catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? undefined : Promise.reject(e)));
  if (now !== current) {
    const kept = await createTemporaryBeside(abs, result.content, 'skiff-conflict');
    throw new ConfigError(
      `${rel} changed while the editor was open; it is left as it is now, and your edit is saved, encrypted, in ${relative(root, kept)}: compare the two, keep what you need in ${rel}, and delete the other`,
    );
  }
  await replaceInside(root, rel, result.content);
  return { file: rel, created: current === undefined, unchanged: false, encrypted: result.encrypted, kept: result.kept };
}

interface PreparedEdit {
  /** What the editor shows. */
  plain: string;
  /** The file holds plain values, or values written before they were bound to their file: it is written (encrypted) even when the text is saved as it was. */
  dirty: boolean;
  /** The file's new content from the edited text; throws ConfigError when the text is not valid. */
  encrypt(edited: string): { content: string; encrypted: string[]; kept: number };
}

/** A secret-values file: every value decrypted in place (comments and order kept), plain values shown as they are. */
async function valuesEdit(rel: string, current: string, keys: SecretKeys, key: SecretKey): Promise<PreparedEdit> {
  const parsed = parseSecretValues(rel, current, { allowEmpty: true });
  const before = new Map<string, { text: string; ciphertext?: string }>();
  let dirty = false;
  for (const s of parsed.scalars) {
    const text = scalarText(s.node);
    if (text === null) continue;
    const id = JSON.stringify(s.path);
    if (typeof s.node.value !== 'string' || ciphertextKind(text) === 'plain') {
      before.set(id, { text });
      dirty = true;
      continue;
    }
    const plain = await openSecret(text, { value: s.path, valuesFile: rel }, keys, { file: rel, line: s.line, path: s.path });
    before.set(id, { text: plain, ciphertext: text });
    if (isLegacyCiphertext(text)) dirty = true; // written again, bound to this file
    s.node.value = plain;
    delete s.node.type; // the plain text picks its own YAML style
  }
  const plain = parsed.scalars.length || current.trim() ? parsed.doc.toString() : '';
  return {
    plain,
    dirty,
    encrypt(edited) {
      const next = parseSecretValues(rel, edited, { allowEmpty: true });
      if (next.doc.contents === null) throw new ConfigError(`${rel}: the edited file is empty; nothing was written (to remove the file: git rm ${rel})`);
      const encrypted: string[] = [];
      let kept = 0;
      for (const s of next.scalars) {
        const text = scalarText(s.node);
        if (text === null) continue;
        const old = before.get(JSON.stringify(s.path));
        const node: Scalar = s.node;
        // A value written before values were bound to their file is encrypted again (upgraded).
        if (old?.ciphertext !== undefined && old.text === text && !isLegacyCiphertext(old.ciphertext)) {
          node.value = old.ciphertext;
          kept++;
        } else {
          node.value = encryptSecret(text, key, { value: s.path, valuesFile: rel });
          encrypted.push(showKeyPath(s.path));
        }
        node.type = 'PLAIN';
      }
      return { content: next.doc.toString(), encrypted, kept };
    },
  };
}

/** A file under .kube/secret/: decrypted whole; a plain one is shown as it is and encrypted on save. */
async function fileEdit(rel: string, current: string | undefined, keys: SecretKeys, key: SecretKey): Promise<PreparedEdit> {
  const name = secretFilePath(rel);
  const encryptedBefore = current !== undefined && current.trim() !== '' && ciphertextKind(current) !== 'plain';
  const plain = encryptedBefore ? await openSecret(current, { file: name }, keys, { file: rel }) : (current ?? '');
  return {
    plain,
    dirty: encryptedBefore ? isLegacyCiphertext(current) : current !== undefined && current.trim() !== '',
    encrypt(edited) {
      if (encryptedBefore && edited === plain && !isLegacyCiphertext(current)) return { content: current, encrypted: [], kept: 1 };
      return { content: `${encryptSecret(edited, key, { file: name })}\n`, encrypted: [rel], kept: 0 };
    },
  };
}

function interrupted(): SkiffError {
  return new SkiffError('interrupted', ExitCode.interrupted, 'interrupted: nothing was written, and the plain copy was removed');
}

/** Memory-backed storage where there is some, so the plain copy never reaches a disk. */
function privateBase(): string {
  try {
    accessSync('/dev/shm', constants.W_OK | constants.X_OK);
    return '/dev/shm';
  } catch {
    return tmpdir();
  }
}

/**
 * Runs `body` with a private copy of `text` (a 0700 folder, a 0600 file),
 * removed when body ends in any way, and on process exit should skiff be
 * made to exit first (a second Ctrl-C).
 */
async function withPrivateCopy<T>(name: string, text: string, body: (file: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(privateBase(), 'skiff-secret-'));
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  process.once('exit', cleanup);
  try {
    const file = join(dir, name);
    await writeFile(file, text, { mode: 0o600, flag: 'wx' });
    return await body(file);
  } finally {
    process.off('exit', cleanup);
    await rm(dir, { recursive: true, force: true });
  }
}

/** $VISUAL or $EDITOR (with its arguments, through sh), else vi, on the terminal; the key variables are not passed on. */
function terminalEditor(env: NodeJS.ProcessEnv): (file: string, signal: AbortSignal) => Promise<void> {
  const editor = env.VISUAL?.trim() || env.EDITOR?.trim() || 'vi';
  const editorEnv = childEnv(env); // no keys, no registry passwords
  return (file, signal) =>
    new Promise((resolvePromise, reject) => {
      // exec: the editor replaces the shell, so stopping it reaches the editor itself.
      const child = spawn('sh', ['-c', `exec ${editor} "$1"`, 'skiff-edit', file], { stdio: 'inherit', env: editorEnv });
      const stop = () => child.kill('SIGTERM');
      signal.addEventListener('abort', stop, { once: true });
      child.on('error', (e) => reject(new ConfigError(`cannot start the editor "${editor}": ${e.message}; set EDITOR`)));
      child.on('exit', (code, sig) => {
        signal.removeEventListener('abort', stop);
        if (signal.aborted) return reject(interrupted());
        if (code === 0) return resolvePromise();
        reject(new ConfigError(`the editor "${editor}" ${sig ? `was stopped by ${sig}` : `exited with code ${code}`}; nothing was written`));
      });
    });
}

// ---------------------------------------------------------------------------
// rotate-key

export interface RotateOptions {
  /** Also convert values in werf's format (key: WERF_SECRET_KEY, else SKIFF_OLD_SECRET_KEY). */
  fromWerf?: boolean;
}

export interface RotateResult {
  /** The id of the key every value is now encrypted with. */
  keyId: string;
  /** Every secret file, with how many of its values (a secret file: 1) were encrypted again. */
  files: Array<{ file: string; rotated: number }>;
}

/**
 * skiff secret rotate-key: every secret file under .kube/ re-encrypted with
 * the current key, from SKIFF_OLD_SECRET_KEY (and, with --from-werf, werf's
 * key). All or nothing: every file is decrypted and encrypted in memory
 * first, and a failure while writing puts back the files already written.
 */
export async function runRotateKey(ctx: RunContext, opts: RotateOptions): Promise<RotateResult> {
  const root = await findRepoRoot(ctx.cwd);
  const key = await requireSecretKey(ctx.env, root, 'skiff secret rotate-key');
  const old = oldSecretKey(ctx.env);
  const werf = opts.fromWerf ? await findWerfKey(ctx.env, root, true) : undefined;
  if (opts.fromWerf && !werf) throw new ConfigError(`skiff secret rotate-key --from-werf reads werf's key from ${WERF_KEY_ENV} (or ${OLD_KEY_ENV}); set it`);
  if (!opts.fromWerf && !old) {
    throw new ConfigError(
      `skiff secret rotate-key reads the old key from ${OLD_KEY_ENV} and the new one where skiff finds its key (SKIFF_SECRET_KEY…); set ${OLD_KEY_ENV}`,
    );
  }
  if (old && old.id === key.id) throw new ConfigError(`${OLD_KEY_ENV} is the current key (key id ${key.id}); set the new key in SKIFF_SECRET_KEY`);
  const keys: SecretKeys = {
    skiff: async () => old!,
    werf: async (needs) => {
      if (werf) return werf;
      throw new ConfigError(`${needs} holds values in werf's format; convert them with "skiff secret rotate-key --from-werf"`);
    },
  };
  const rewrite = async (text: string, place: SecretPlace, where: { file: string; line?: number; path?: Array<string | number> }) => {
    const id = ciphertextKeyId(text);
    if (id === key.id) {
      if (!isLegacyCiphertext(text)) return undefined; // rotated already
      // Of the new key, but written before values were bound to their file: upgraded.
      return encryptSecret(await openSecret(text, place, { ...keys, skiff: async () => key }, where), key, place);
    }
    if (ciphertextKind(text) === 'skiff' && id !== undefined && id !== old?.id) {
      const at = `${where.file}${where.line === undefined ? '' : `:${where.line}`}${where.path ? `: ${showKeyPath(where.path)}` : ''}`;
      throw new ConfigError(
        `${at}: encrypted with a key that is neither the new key (id ${key.id}) nor ${OLD_KEY_ENV} (${old ? `id ${old.id}` : 'not set'}); nothing was rotated`,
      );
    }
    return encryptSecret(await openSecret(text, place, keys, where), key, place);
  };

  const planned: Array<{ abs: string; file: string; before: string; after: string; rotated: number }> = [];
  for (const file of await secretFilesIn(root)) {
    const abs = join(root, file);
    const before = await readFile(abs, 'utf8');
    let after = before;
    let rotated = 0;
    if (isSecretValuesFile(file)) {
      const parsed = parseSecretValues(file, before);
      for (const s of parsed.scalars) {
        const text = scalarText(s.node);
        if (text === null) continue;
        if (typeof s.node.value !== 'string' || ciphertextKind(text) === 'plain') {
          throw new ConfigError(
            `${file}:${s.line}: ${showKeyPath(s.path)}: the value is not encrypted; encrypt it first ("skiff secret edit ${file}"); nothing was rotated`,
          );
        }
        const next = await rewrite(text, { value: s.path, valuesFile: file }, { file, line: s.line, path: s.path });
        if (next === undefined) continue;
        s.node.value = next;
        s.node.type = 'PLAIN';
        rotated++;
      }
      if (rotated) after = parsed.doc.toString();
    } else {
      if (!before.trim()) throw new ConfigError(`${file}: the file is empty; delete it or encrypt one; nothing was rotated`);
      if (ciphertextKind(before) === 'plain')
        throw new ConfigError(`${file}: the file is not encrypted; encrypt it first ("skiff secret edit ${file}"); nothing was rotated`);
      const next = await rewrite(before, { file: secretFilePath(file) }, { file });
      if (next !== undefined) {
        after = `${next}\n`;
        rotated = 1;
      }
    }
    planned.push({ abs, file, before, after, rotated });
  }
  const changed = planned.filter((p) => p.after !== p.before);
  await writeAllOrNothing(root, changed);
  return { keyId: key.id, files: planned.map(({ file, rotated }) => ({ file, rotated })) };
}

/** Every secret file under .kube/ in the working tree, repository-relative, sorted. */
async function secretFilesIn(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string) => {
    let entries;
    try {
      entries = await readdir(join(root, dir), { withFileTypes: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    for (const e of entries) {
      const rel = `${dir}/${e.name}`;
      if (e.isDirectory()) await walk(rel);
      else if (e.isFile() && isSecretFile(rel) && !isTemporaryName(rel)) out.push(rel);
    }
  };
  await walk('.kube');
  return out.sort();
}

/** Writes every file or none: new contents beside the files first, then renamed over them; any failure puts back what was replaced. */
async function writeAllOrNothing(root: string, changes: Array<{ abs: string; file: string; before: string; after: string }>): Promise<void> {
  // No write through a symlink at .kube or a folder below it (the files themselves are never symlinks here).
  for (const c of changes) await refuseSymlinks(root, c.file);
  const staged = new Map<(typeof changes)[number], string>();
  const replaced: typeof changes = [];
  let at = '';
  try {
    for (const c of changes) {
      at = c.file;
      staged.set(c, await createTemporaryBeside(c.abs, c.after, 'skiff-rotate'));
    }
    for (const c of changes) {
      at = c.file;
      await rename(staged.get(c)!, c.abs);
      staged.delete(c);
      replaced.push(c);
    }
  } catch (e) {
    for (const c of replaced) await writeNoFollow(c.abs, c.before, c.file).catch(() => undefined);
    for (const tmp of staged.values()) await rm(tmp, { force: true }).catch(() => undefined);
    throw new ConfigError(`cannot write ${at}: ${(e as Error).message}; every secret file was left as it was`, { cause: e });
  }
}

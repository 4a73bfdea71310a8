/**
 * Owns `skiff secret edit`: a secret-values file or a secret file decrypted
 * for the editor, and only the values that changed encrypted again, so
 * unchanged values keep their ciphertext and the Git diff shows what changed.
 * The plain copy lives in private-copy.ts, the editor in terminal-editor.ts.
 */
import { readFile } from 'node:fs/promises';
import { basename, relative, resolve, sep } from 'node:path';
import type { Scalar } from 'yaml';
import { findRepoRoot } from '../adapters/git.js';
import { createTemporaryBeside, refuseSymlinks, replaceInside } from '../adapters/repo-files.js';
import type { RunContext } from '../context.js';
import { ConfigError } from '../errors.js';
import { isSecretFile } from '../render/render-release.js';
import { encryptSecret, isLegacyCiphertext, showKeyPath, type SecretKey } from './crypto.js';
import { projectKeys, type SecretKeys } from './key-lookup.js';
import { withPrivateCopy } from './private-copy.js';
import { ciphertextKind, isSecretValuesFile, openSecret, parseSecretValues, scalarText, SECRET_DIR, secretFilePath } from './secret-values.js';
import { editInterrupted, terminalEditor, type FileEditor } from './terminal-editor.js';

export interface EditOptions {
  /** The secret-values file or secret file, relative to the working directory. */
  file: string;
  /** Runs the editor on the plain copy (default: $VISUAL, $EDITOR, vi, on the terminal). */
  editor?: FileEditor;
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

/** A file's new content from an edit. */
interface EncryptedEdit {
  content: string;
  encrypted: string[];
  kept: number;
}

interface PreparedEdit {
  /** What the editor shows. */
  plain: string;
  /** The file holds plain values, or values written before they were bound to their file: it is written (encrypted) even when the text is saved as it was. */
  dirty: boolean;
  /** The file's new content from the edited text; throws ConfigError when the text is not valid. */
  encrypt(edited: string): EncryptedEdit;
}

/**
 * skiff secret edit: the file decrypted into a private temporary file (0600,
 * in /dev/shm where the machine has it), the editor opened on it, and only
 * the values that changed encrypted again. The plain copy is removed on every
 * way out: saved, editor failed, skiff interrupted.
 */
export async function runEdit(ctx: RunContext, opts: EditOptions): Promise<EditResult> {
  const root = await findRepoRoot(ctx.cwd, ctx.env);
  const abs = resolve(ctx.cwd, opts.file);
  const rel = relative(root, abs).split(sep).join('/');
  if (!isSecretFile(rel) || rel === SECRET_DIR.slice(0, -1)) {
    throw new ConfigError(
      `${opts.file}: not a secret file; skiff secret edit works on .kube/secret-values.yaml, .kube/secret-values.<env>.yaml and files under ${SECRET_DIR}`,
    );
  }
  // A symlink at the file or a folder on the way: refused before anything is decrypted.
  await refuseSymlinks(root, rel);
  const keys = projectKeys(ctx, root);
  const key = await keys.skiff(rel);
  const current = await readIfPresent(abs);
  const editor = opts.editor ?? terminalEditor(ctx.env);
  const edit = isSecretValuesFile(rel) ? await valuesEdit(rel, current ?? '', keys, key) : await fileEdit(rel, current, keys, key);
  const result = await withPrivateCopy(basename(rel), edit.plain, (copy) => editUntilValid(ctx, opts, editor, edit, copy));
  if (!result || result.content === current) return { file: rel, created: false, unchanged: true, encrypted: [], kept: result?.kept ?? 0 };
  await refuseChangedMeanwhile(root, abs, rel, current, result.content);
  await replaceInside(root, rel, result.content);
  return { file: rel, created: current === undefined, unchanged: false, encrypted: result.encrypted, kept: result.kept };
}

/** The file's text, undefined when it does not exist. */
async function readIfPresent(abs: string): Promise<string | undefined> {
  try {
    return await readFile(abs, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** Opens the editor on the copy until its text encrypts (or the user gives up); undefined when it was saved unchanged. */
async function editUntilValid(ctx: RunContext, opts: EditOptions, editor: FileEditor, edit: PreparedEdit, copy: string): Promise<EncryptedEdit | undefined> {
  for (;;) {
    await editor(copy, ctx.signal);
    if (ctx.signal.aborted) throw editInterrupted();
    const text = await readFile(copy, 'utf8');
    if (text === edit.plain && !edit.dirty) return undefined;
    try {
      return edit.encrypt(text);
    } catch (e) {
      if (!(e instanceof ConfigError) || !opts.retry || !(await opts.retry(e.message))) throw e;
    }
  }
}

/**
 * The file changed while the editor was open (a git pull, another edit): writing would drop that change
 * without a word, and dropping the edit would lose the user's work. Keep both: the edit, encrypted, beside it.
 */
async function refuseChangedMeanwhile(root: string, abs: string, rel: string, before: string | undefined, content: string): Promise<void> {
  if ((await readIfPresent(abs)) === before) return;
  const kept = await createTemporaryBeside(abs, content, 'skiff-conflict');
  throw new ConfigError(
    `${rel} changed while the editor was open; it is left as it is now, and your edit is saved, encrypted, in ${relative(root, kept)}: compare the two, keep what you need in ${rel}, and delete the other`,
  );
}

/** A value as the editor showed it, and its ciphertext when it had one. */
type ShownValue = { text: string; ciphertext?: string };

/** A secret-values file: every value decrypted in place (comments and order kept), plain values shown as they are. */
async function valuesEdit(rel: string, current: string, keys: SecretKeys, key: SecretKey): Promise<PreparedEdit> {
  const parsed = parseSecretValues(rel, current, { allowEmpty: true });
  const before = new Map<string, ShownValue>();
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
  return { plain, dirty, encrypt: (edited) => encryptValues(rel, edited, before, key) };
}

/** The edited secret-values file with each changed value encrypted and every other keeping its ciphertext. */
function encryptValues(rel: string, edited: string, before: ReadonlyMap<string, ShownValue>, key: SecretKey): EncryptedEdit {
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

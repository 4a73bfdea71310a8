/**
 * Owns `skiff secret rotate-key`: every secret file under .kube/ encrypted
 * again with the current key, from SKIFF_OLD_SECRET_KEY (and, with
 * --from-werf, werf's key), all files or none.
 */
import { readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { findRepoRoot } from '../adapters/git.js';
import { createTemporaryBeside, isTemporaryName, refuseSymlinks, writeNoFollow } from '../adapters/repo-files.js';
import type { RunContext } from '../context.js';
import { ConfigError } from '../errors.js';
import { isSecretFile } from '../render/render-release.js';
import { ciphertextKeyId, encryptSecret, isLegacyCiphertext, showKeyPath, type SecretKey, type SecretPlace } from './crypto.js';
import { findWerfKey, oldSecretKey, OLD_KEY_ENV, requireSecretKey, WERF_KEY_ENV, type SecretKeys } from './key-lookup.js';
import {
  ciphertextKind,
  describeWhere,
  isSecretValuesFile,
  openSecret,
  parseSecretValues,
  scalarText,
  secretFilePath,
  type SecretWhere,
} from './secret-values.js';

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

/** The keys of one rotation. */
interface Rotation {
  /** The current key: every value ends up encrypted with it. */
  key: SecretKey;
  /** SKIFF_OLD_SECRET_KEY, when set. */
  old: SecretKey | undefined;
  /** What values are read with: the old key, and werf's with --from-werf. */
  keys: SecretKeys;
}

/** One secret file's text before and after the rotation. */
interface PlannedFile {
  abs: string;
  file: string;
  before: string;
  after: string;
  rotated: number;
}

/**
 * skiff secret rotate-key: every secret file under .kube/ re-encrypted with
 * the current key, from SKIFF_OLD_SECRET_KEY (and, with --from-werf, werf's
 * key). All or nothing: every file is decrypted and encrypted in memory
 * first, and a failure while writing puts back the files already written.
 */
export async function runRotateKey(ctx: RunContext, opts: RotateOptions): Promise<RotateResult> {
  const root = await findRepoRoot(ctx.cwd, ctx.env);
  const rotation = await rotationOf(ctx, root, opts);
  const planned: PlannedFile[] = [];
  for (const file of await secretFilesIn(root)) {
    const abs = join(root, file);
    const before = await readFile(abs, 'utf8');
    const { after, rotated } = isSecretValuesFile(file) ? await rotateValuesFile(file, before, rotation) : await rotateSecretFile(file, before, rotation);
    planned.push({ abs, file, before, after, rotated });
  }
  const changed = planned.filter((p) => p.after !== p.before);
  await writeAllOrNothing(root, changed);
  return { keyId: rotation.key.id, files: planned.map(({ file, rotated }) => ({ file, rotated })) };
}

/** The new key and the old ones, refused when a key the rotation needs is missing or the old key is the new one. */
async function rotationOf(ctx: RunContext, root: string, opts: RotateOptions): Promise<Rotation> {
  const key = await requireSecretKey(ctx, root, 'skiff secret rotate-key');
  const old = oldSecretKey(ctx);
  const werf = opts.fromWerf ? await findWerfKey(ctx, root, true) : undefined;
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
  return { key, old, keys };
}

/** One ciphertext encrypted with the new key; undefined when it is on the new key already. */
async function rotateCiphertext(text: string, place: SecretPlace, where: SecretWhere, { key, old, keys }: Rotation): Promise<string | undefined> {
  const id = ciphertextKeyId(text);
  if (id === key.id) {
    if (!isLegacyCiphertext(text)) return undefined; // rotated already
    // Of the new key, but written before values were bound to their file: upgraded.
    return encryptSecret(await openSecret(text, place, { ...keys, skiff: async () => key }, where), key, place);
  }
  if (ciphertextKind(text) === 'skiff' && id !== undefined && id !== old?.id) {
    throw new ConfigError(
      `${describeWhere(where)}: encrypted with a key that is neither the new key (id ${key.id}) nor ${OLD_KEY_ENV} (${old ? `id ${old.id}` : 'not set'}); nothing was rotated`,
    );
  }
  return encryptSecret(await openSecret(text, place, keys, where), key, place);
}

/** A secret-values file with every value on the new key; a plain value stops the rotation. */
async function rotateValuesFile(file: string, before: string, rotation: Rotation): Promise<{ after: string; rotated: number }> {
  const parsed = parseSecretValues(file, before);
  let rotated = 0;
  for (const s of parsed.scalars) {
    const text = scalarText(s.node);
    if (text === null) continue;
    if (typeof s.node.value !== 'string' || ciphertextKind(text) === 'plain') {
      throw new ConfigError(
        `${file}:${s.line}: ${showKeyPath(s.path)}: the value is not encrypted; encrypt it first ("skiff secret edit ${file}"); nothing was rotated`,
      );
    }
    const next = await rotateCiphertext(text, { value: s.path, valuesFile: file }, { file, line: s.line, path: s.path }, rotation);
    if (next === undefined) continue;
    s.node.value = next;
    s.node.type = 'PLAIN';
    rotated++;
  }
  return { after: rotated ? parsed.doc.toString() : before, rotated };
}

/** A file under .kube/secret/ on the new key; an empty or plain one stops the rotation. */
async function rotateSecretFile(file: string, before: string, rotation: Rotation): Promise<{ after: string; rotated: number }> {
  if (!before.trim()) throw new ConfigError(`${file}: the file is empty; delete it or encrypt one; nothing was rotated`);
  if (ciphertextKind(before) === 'plain')
    throw new ConfigError(`${file}: the file is not encrypted; encrypt it first ("skiff secret edit ${file}"); nothing was rotated`);
  const next = await rotateCiphertext(before, { file: secretFilePath(file) }, { file }, rotation);
  return next === undefined ? { after: before, rotated: 0 } : { after: `${next}\n`, rotated: 1 };
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
async function writeAllOrNothing(root: string, changes: readonly PlannedFile[]): Promise<void> {
  // No write through a symlink at .kube or a folder below it (the files themselves are never symlinks here).
  for (const c of changes) await refuseSymlinks(root, c.file);
  const staged = new Map<PlannedFile, string>();
  const replaced: PlannedFile[] = [];
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

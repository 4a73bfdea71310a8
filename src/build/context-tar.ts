import { readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { BlobReader, type GitRepo, type TreeEntry } from '../adapters/git.js';

/** Where a build context's file contents come from. */
export interface ContextSource {
  kind: 'commit' | 'worktree';
  repo: GitRepo;
}

// A fixed mtime keeps the Engine's layer cache keyed by content, not by checkout time.
const FIXED_MTIME = new Date('2000-01-01T00:00:00Z');

/**
 * Streams the build context as a tar: exactly the given entries, contents
 * from the commit's blobs (one `git cat-file` process) or from the working tree.
 */
export function contextTar(source: ContextSource, entries: TreeEntry[], extraFiles: Record<string, string> = {}): Readable {
  const pack = tar.pack();
  const blobs = source.kind === 'commit' ? new BlobReader(source.repo) : undefined;
  const read = async (e: TreeEntry): Promise<Buffer> => {
    if (blobs) return blobs.read(e.oid);
    const abs = join(source.repo.root, e.repoPath);
    return e.mode === '120000' ? Buffer.from(await readlink(abs)) : readFile(abs);
  };
  // Files skiff adds (the generated Dockerfile, its .dockerignore) replace context files of the same name.
  entries = entries.filter((e) => !(e.path in extraFiles));
  const writeAll = async () => {
    // Read ahead a little while the previous entry is written.
    const window = 16;
    const pending: Array<Promise<Buffer>> = [];
    for (let i = 0; i < Math.min(window, entries.length); i++) pending.push(read(entries[i]!));
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      const content = await pending[i]!;
      if (i + window < entries.length) pending.push(read(entries[i + window]!));
      if (e.mode === '120000') {
        pack.entry({ name: e.path, type: 'symlink', linkname: content.toString(), mode: 0o777, mtime: FIXED_MTIME });
      } else {
        await new Promise<void>((resolve, reject) => {
          pack.entry({ name: e.path, mode: e.mode === '100755' ? 0o755 : 0o644, mtime: FIXED_MTIME, size: content.length }, content, (err) =>
            err ? reject(err) : resolve(),
          );
        });
      }
    }
    for (const [name, content] of Object.entries(extraFiles)) {
      const body = Buffer.from(content);
      await new Promise<void>((resolve, reject) => {
        pack.entry({ name, mode: 0o644, mtime: FIXED_MTIME, size: body.length }, body, (err) => (err ? reject(err) : resolve()));
      });
    }
    pack.finalize();
  };
  writeAll()
    .catch((err: Error) => pack.destroy(err))
    .finally(() => blobs?.close());
  // tar-stream packs are streamx streams; the Engine client wants a Node stream.
  return Readable.from(pack);
}

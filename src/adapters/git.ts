import { execFile, spawn } from 'node:child_process';
import { childEnv } from './child-env.js';
import { lstat, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { CiContext } from '../gitlab/ci-variables.js';
import { ConfigError, InfrastructureError, NoProjectError } from '../errors.js';
import { gitBlobId, type ContextEntry } from '../build/content-inputs.js';

export interface GitInfo {
  root: string;
  commit: string;
  /** Committer date, ISO 8601: the images' creation time, so rebuilding the same commit gives the same label. */
  committedAt: string;
  branch?: string;
  tag?: string;
  /** Tracked files changed, or (when asked for: --dev) untracked files present. */
  dirty: boolean;
  /** Tracked files changed in the working tree or the index (untracked files are not among them). */
  changedTracked: string[];
  /** Remote URL with any credentials removed, for org.opencontainers.image.source. */
  source?: string;
}

/** A tracked file below a directory of the repository. */
export interface TreeEntry extends ContextEntry {
  /** Relative to the repository root. */
  repoPath: string;
}

interface GitOutput {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs git and collects its output. Plain child_process: git is on every hot
 * path (a no-op build is a handful of git calls), so no wrapper library.
 */
function git({ root, env }: GitRepo, args: string[], opts: { reject?: boolean } = {}): Promise<GitOutput> {
  return new Promise((resolve, reject) => {
    execFile('git', args, { cwd: root, env: gitEnv(env), maxBuffer: 512 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err
        ? typeof (err as NodeJS.ErrnoException).code === 'number'
          ? Number((err as NodeJS.ErrnoException).code)
          : (err as { code?: unknown }).code
        : 0;
      if (code === 'ENOENT') return reject(new InfrastructureError('git is not installed; install it (apt-get install git)'));
      const out = { exitCode: typeof code === 'number' ? code : 1, stdout: stdout.replace(/\n$/, ''), stderr };
      if (out.exitCode !== 0 && (opts.reject ?? true)) return reject(new Error(`git ${args.join(' ')} failed: ${stderr.trim()}`));
      resolve(out);
    });
  });
}

/**
 * A repository and the run's environment (RunContext.env) its git processes get, less the
 * secrets git never needs (the secret keys and registry passwords).
 */
export interface GitRepo {
  root: string;
  env: NodeJS.ProcessEnv;
}

const scrubbed = new WeakMap<NodeJS.ProcessEnv, NodeJS.ProcessEnv>();
function gitEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  let out = scrubbed.get(env);
  if (!out) scrubbed.set(env, (out = trustCiCheckout(childEnv(env))));
  return out;
}

/**
 * Under GitLab CI the job's own checkout (CI_PROJECT_DIR, and nothing else) is git's safe.directory:
 * the runner clones it as root, and a job image that runs as another user would have git refuse it
 * as of "dubious ownership". The job runs that repository's pipeline anyway. Given as command-line
 * configuration (GIT_CONFIG_COUNT), the scope git takes safe.directory from besides the global one.
 */
function trustCiCheckout(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  if (env.GITLAB_CI !== 'true' || !env.CI_PROJECT_DIR) return env;
  const n = Number.parseInt(env.GIT_CONFIG_COUNT ?? '0', 10) || 0;
  return { ...env, GIT_CONFIG_COUNT: String(n + 1), [`GIT_CONFIG_KEY_${n}`]: 'safe.directory', [`GIT_CONFIG_VALUE_${n}`]: env.CI_PROJECT_DIR };
}

export async function findRepoRoot(cwd: string, env: NodeJS.ProcessEnv): Promise<string> {
  const r = await git({ root: cwd, env }, ['rev-parse', '--show-toplevel'], { reject: false });
  if (r.exitCode !== 0 && /dubious ownership/.test(r.stderr)) {
    const top = /safe\.directory '?([^'\n]+)'?/.exec(r.stderr)?.[1]?.trim() ?? cwd;
    throw new ConfigError(
      `${top}: git refuses the repository: it belongs to another user than the one skiff runs as ("dubious ownership"); run skiff as its owner, or trust it with: git config --global --add safe.directory ${top}`,
    );
  }
  if (r.exitCode !== 0)
    throw new NoProjectError(`${cwd}: not a Git repository; skiff builds from a commit — run "git init" and commit, or cd into the repository`);
  return r.stdout;
}

/**
 * The commit and names skiff tags images with. Under GitLab CI the checkout is
 * a detached HEAD, so the branch and tag come from CI_COMMIT_* variables.
 * `untracked`: count untracked files as changes (a --dev build includes them).
 */
export async function readGitInfo(
  repo: GitRepo,
  ci: Pick<CiContext, 'commitBranch' | 'commitTag' | 'projectUrl'> = {},
  opts: { untracked?: boolean } = {},
): Promise<GitInfo> {
  // Three git processes: commit, date and ref names in one `log`, the dirty check, the remote.
  // Untracked files only where they are built (--dev): finding them walks the whole worktree,
  // the largest cost of a no-op commit build, whose image they can never enter.
  const untracked = opts.untracked ? 'normal' : 'no';
  const [head, statusR, remoteR] = await Promise.all([
    git(repo, ['log', '-1', '--format=%H%x00%cI%x00%D', 'HEAD'], { reject: false }),
    git(repo, ['status', '--porcelain', `--untracked-files=${untracked}`, '--', '.', ':(exclude).skiff'], { reject: false }),
    git(repo, ['config', '--get', 'remote.origin.url'], { reject: false }),
  ]);
  if (head.exitCode !== 0 || !head.stdout)
    throw new ConfigError(`${repo.root}: the repository has no commit yet; commit your files first ("git add -A && git commit -m init")`);
  const [commit = '', committedAt = '', refs = ''] = head.stdout.trim().split('\0');
  const names = refs.split(', ').filter(Boolean);
  const localBranch = names.find((n) => n.startsWith('HEAD -> '))?.slice('HEAD -> '.length);
  const localTag = names.find((n) => n.startsWith('tag: '))?.slice('tag: '.length);
  const branch = ci.commitBranch || localBranch;
  const tag = ci.commitTag || localTag;
  const source = ci.projectUrl || (remoteR.exitCode === 0 && remoteR.stdout ? stripCredentials(remoteR.stdout) : undefined);
  return {
    root: repo.root,
    commit,
    committedAt: new Date(committedAt).toISOString(),
    branch: branch || undefined,
    tag: tag || undefined,
    dirty: statusR.stdout.trim() !== '',
    changedTracked: statusR.stdout
      .split('\n')
      .filter((l) => l.length > 3 && !l.startsWith('??'))
      .map((l) => l.slice(3)),
    source,
  };
}

function stripCredentials(url: string): string {
  return url.replace(/^(\w+:\/\/)[^@/]+@/, '$1');
}

function parseLsTree(out: string, dir: string): TreeEntry[] {
  const prefix = dir === '' ? '' : `${dir}/`;
  const entries: TreeEntry[] = [];
  for (const record of out.split('\0')) {
    if (!record) continue;
    const tab = record.indexOf('\t');
    const [mode, type, oid] = record.slice(0, tab).split(' ');
    const repoPath = record.slice(tab + 1);
    if (type !== 'blob' || !mode || !oid) continue; // submodules are not part of a build context
    entries.push({ mode, oid, repoPath, path: repoPath.slice(prefix.length) });
  }
  return entries;
}

/** Tracked files below dir at a commit, with Git's object ids: nothing is read from disk. */
export async function listCommitTree(repo: GitRepo, commit: string, dir: string): Promise<TreeEntry[]> {
  const args = ['ls-tree', '-r', '-z', '--full-tree', commit];
  if (dir !== '') args.push('--', dir);
  const r = await git(repo, args);
  return parseLsTree(r.stdout, dir);
}

/**
 * Tracked and untracked-but-not-ignored files below dir in the working tree
 * (for --dev), hashed the way Git would so the same content gives the same tag.
 */
export async function listWorkingTree(repo: GitRepo, dir: string): Promise<TreeEntry[]> {
  const args = ['ls-files', '-z', '--cached', '--others', '--exclude-standard'];
  if (dir !== '') args.push('--', dir);
  const r = await git(repo, args);
  const prefix = dir === '' ? '' : `${dir}/`;
  // .skiff/ holds skiff's own output (reports, kubeconfig); it is never build input.
  const paths = [...new Set(r.stdout.split('\0').filter((p) => p && !p.startsWith('.skiff/')))];
  const entries: TreeEntry[] = [];
  const batch = 64;
  for (let i = 0; i < paths.length; i += batch) {
    const slice = paths.slice(i, i + batch);
    const results = await Promise.all(
      slice.map(async (repoPath) => {
        const abs = join(repo.root, repoPath);
        let st;
        try {
          st = await lstat(abs);
        } catch {
          return undefined; // deleted in the working tree
        }
        if (st.isSymbolicLink()) {
          const target = await readlink(abs);
          return { repoPath, path: repoPath.slice(prefix.length), mode: '120000', oid: gitBlobId(Buffer.from(target)) };
        }
        if (!st.isFile()) return undefined;
        const content = await readFile(abs);
        return { repoPath, path: repoPath.slice(prefix.length), mode: st.mode & 0o111 ? '100755' : '100644', oid: gitBlobId(content) };
      }),
    );
    for (const e of results) if (e) entries.push(e);
  }
  return entries;
}

/** A file's content at a commit, or undefined when it is not there. */
export async function readCommitFile(repo: GitRepo, commit: string, path: string): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    execFile(
      'git',
      ['cat-file', 'blob', `${commit}:${path}`],
      { cwd: repo.root, env: gitEnv(repo.env), encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 },
      (err, stdout) => resolve(err ? undefined : stdout),
    );
  });
}

/** Paths below dir that differ between a commit and another commit (or the working tree when `to` is undefined). */
export async function changedPaths(repo: GitRepo, from: string, to: string | undefined, dir: string): Promise<string[] | undefined> {
  const known = await git(repo, ['cat-file', '-e', `${from}^{commit}`], { reject: false });
  if (known.exitCode !== 0) return undefined;
  const args = ['diff', '--name-only', '-z', '--no-renames', from];
  if (to) args.push(to);
  args.push('--', dir === '' ? '.' : dir);
  const r = await git(repo, args, { reject: false });
  if (r.exitCode !== 0) return undefined;
  const names = r.stdout.split('\0').filter(Boolean);
  if (!to) {
    const untracked = await git(repo, ['ls-files', '-z', '--others', '--exclude-standard', '--', dir === '' ? '.' : dir], { reject: false });
    names.push(...untracked.stdout.split('\0').filter(Boolean));
  }
  return [...new Set(names)].sort();
}

/** Whether the clone has the commit (a shallow CI clone may not). */
export async function hasCommit(repo: GitRepo, commit: string): Promise<boolean> {
  return (await git(repo, ['cat-file', '-e', `${commit}^{commit}`], { reject: false })).exitCode === 0;
}

/** Whether `ancestor` is an ancestor of `of` (or the same commit), as far as the clone's history reaches. */
export async function isAncestor(repo: GitRepo, ancestor: string, of: string): Promise<boolean> {
  const r = await git(repo, ['merge-base', '--is-ancestor', ancestor, of], { reject: false });
  if (r.exitCode > 1) throw new Error(`git merge-base --is-ancestor ${ancestor} ${of} failed: ${r.stderr.trim()}`);
  return r.exitCode === 0;
}

/**
 * Streams blob contents through one `git cat-file --batch` process, so a
 * context of thousands of files costs one process, not thousands.
 */
export class BlobReader {
  private readonly child;
  /** Bytes read and not yet handed out, in the order they came: joined only once per object, so a large blob costs its size, not its size squared. */
  private chunks: Buffer[] = [];
  private length = 0;
  /** The header of the object being read: its body and newline are awaited. */
  private body: { size: number } | undefined;
  private readonly waiting: Array<{ resolve: (b: Buffer) => void; reject: (e: Error) => void }> = [];
  private failed: Error | undefined;

  constructor(repo: GitRepo) {
    this.child = spawn('git', ['cat-file', '--batch'], { cwd: repo.root, env: gitEnv(repo.env), stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdout.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.length += chunk.length;
      this.drain();
    });
    this.child.on('error', (e) => this.fail(e));
    this.child.on('exit', (code) => {
      if (this.waiting.length) this.fail(new Error(`git cat-file exited with ${code}`));
    });
  }

  private fail(e: Error) {
    this.failed = e;
    for (const w of this.waiting.splice(0)) w.reject(e);
  }

  /** The first n buffered bytes, removed from the buffer. */
  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.length);
    this.chunks = all.length > n ? [all.subarray(n)] : [];
    this.length -= n;
    return all.subarray(0, n);
  }

  /** Where the first newline is in the buffered bytes, or -1. */
  private newline(): number {
    let offset = 0;
    for (const c of this.chunks) {
      const i = c.indexOf(10);
      if (i !== -1) return offset + i;
      offset += c.length;
    }
    return -1;
  }

  private drain() {
    while (this.waiting.length) {
      if (!this.body) {
        const nl = this.newline();
        if (nl === -1) return;
        const parts = this.take(nl + 1)
          .subarray(0, nl)
          .toString()
          .split(' ');
        if (parts[1] === 'missing') {
          this.waiting.shift()!.reject(new Error(`git object ${parts[0]} is missing`));
          continue;
        }
        this.body = { size: Number(parts[2]) };
      }
      const { size } = this.body;
      if (this.length < size + 1) return;
      const body = Buffer.from(this.take(size + 1).subarray(0, size));
      this.body = undefined;
      this.waiting.shift()!.resolve(body);
    }
  }

  read(oid: string): Promise<Buffer> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.child.stdin.write(`${oid}\n`);
    });
  }

  close(): void {
    this.child.stdin.end();
  }
}

/**
 * The newest `perRef` commits of every local and remote branch and every tag
 * (what cleanup keeps the images of). A shallow clone gives what it has.
 */
export async function isShallow(repo: GitRepo): Promise<boolean> {
  return (await git(repo, ['rev-parse', '--is-shallow-repository'])).stdout.trim() === 'true';
}

export async function recentCommits(repo: GitRepo, perRef: number): Promise<Set<string>> {
  const refs = await git(repo, ['for-each-ref', '--format=%(objectname)', 'refs/heads', 'refs/remotes', 'refs/tags']);
  const heads = [...new Set([...refs.stdout.split('\n').filter(Boolean), 'HEAD'])];
  const out = new Set<string>();
  for (const ref of heads) {
    const r = await git(repo, ['rev-list', `--max-count=${perRef}`, ref, '--'], { reject: false });
    for (const c of r.stdout.split('\n')) if (c) out.add(c);
  }
  return out;
}

/** The names of every local and remote-tracking branch (without the remote's name), for cleanup's cache entries. */
export async function branchNames(repo: GitRepo): Promise<Set<string>> {
  const refs = await git(repo, ['for-each-ref', '--format=%(refname)', 'refs/heads', 'refs/remotes']);
  const out = new Set<string>();
  for (const ref of refs.stdout.split('\n')) {
    if (ref.startsWith('refs/heads/')) out.add(ref.slice('refs/heads/'.length));
    else if (ref.startsWith('refs/remotes/')) {
      const name = ref.slice('refs/remotes/'.length).split('/').slice(1).join('/');
      if (name && name !== 'HEAD') out.add(name);
    }
  }
  return out;
}

import { constants } from 'node:fs';
import { lstat, mkdir, open } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import type Docker from 'dockerode';
import tar from 'tar-stream';
import type { RegistryCredentials } from '../registry/credentials.js';
import type { ContainerEngine } from './container-engine.js';

export interface ContainerRun {
  image: string;
  command: string[];
  env: Record<string, string>;
  workdir?: string;
  network: 'none' | 'host';
  timeoutMs: number;
  labels: Record<string, string>;
  onOutput: (line: string) => void;
  /** Absolute paths inside the container to copy out after the run. */
  copyOut: string[];
  /** Host directory the copied paths land in. */
  copyTo: string;
  /** Cap on the bytes of report files copied out (default 64 MiB). */
  maxReportBytes?: number;
  signal: AbortSignal;
}

export interface ContainerOutcome {
  exitCode: number;
  timedOut: boolean;
  interrupted: boolean;
  durationMs: number;
  copied: string[];
  missing: string[];
  /** Report entries not copied (outside the folder, links, devices, over the size cap), each with the reason. */
  skipped: string[];
}

/**
 * Where `skiff test` runs a test: the image must be there (hasImage, or pull it from a registry),
 * then one command in a fresh container. The Engine's (engineContainerRunner) is the one runner
 * today; the test stage chooses it in one place (chooseContainerRunner in stages/run-tests.ts).
 */
export interface ContainerRunner {
  /** Fails (exit 3, saying how to fix it) when the runner cannot be reached. */
  check(): Promise<void>;
  hasImage(ref: string): Promise<boolean>;
  pull(repository: string, tag: string, credentials: RegistryCredentials | undefined, onLog: (line: string) => void, signal?: AbortSignal): Promise<void>;
  run(run: ContainerRun): Promise<ContainerOutcome>;
}

/** Tests in containers of the Docker Engine. */
export function engineContainerRunner(engine: ContainerEngine): ContainerRunner {
  return {
    check: () => engine.ping(),
    hasImage: async (ref) => Boolean(await engine.inspectImage(ref)),
    pull: (repository, tag, credentials, onLog, signal) => engine.pull(repository, tag, credentials, onLog, signal),
    run: (run) => engine.runContainer(run),
  };
}

/**
 * Runs one command in a fresh container, streams its output line by line,
 * copies report files out, and always removes the container: after success,
 * failure, timeout or Ctrl-C.
 */
export async function runContainer(api: Docker, run: ContainerRun): Promise<ContainerOutcome> {
  const started = Date.now();
  const container = await api.createContainer({
    Image: run.image,
    Cmd: run.command,
    Env: Object.entries(run.env).map(([k, v]) => `${k}=${v}`),
    WorkingDir: run.workdir,
    Labels: run.labels,
    Tty: false,
    HostConfig: { NetworkMode: run.network, AutoRemove: false },
  });
  let timedOut = false;
  let interrupted = false;
  const kill = async () => {
    try {
      await container.kill();
    } catch {
      /* already stopped */
    }
  };
  const onAbort = () => {
    interrupted = true;
    void kill();
  };
  try {
    const stream = await container.attach({ stream: true, stdout: true, stderr: true });
    const out = lineSplitter(run.onOutput);
    api.modem.demuxStream(stream, out, out);
    const waited = container.wait({ condition: 'next-exit' });
    await container.start();
    const timer = setTimeout(() => {
      timedOut = true;
      void kill();
    }, run.timeoutMs);
    run.signal.addEventListener('abort', onAbort, { once: true });
    if (run.signal.aborted) onAbort();
    const status = (await waited) as { StatusCode: number };
    clearTimeout(timer);
    await new Promise((r) => setTimeout(r, 50));
    out.end();
    const copied: string[] = [];
    const missing: string[] = [];
    const skipped: string[] = [];
    const max = run.maxReportBytes ?? DEFAULT_REPORT_MAX_BYTES;
    const budget: ReportBudget = { max, remaining: max, discarded: 0 };
    for (const path of run.copyOut) {
      try {
        const archive = await container.getArchive({ path });
        const result = await extractReports(archive, run.copyTo, budget);
        copied.push(...result.written);
        skipped.push(...result.skipped);
      } catch (e) {
        if ((e as { statusCode?: number }).statusCode === 404) missing.push(path);
        else throw e;
      }
    }
    return { exitCode: status.StatusCode, timedOut, interrupted, durationMs: Date.now() - started, copied, missing, skipped };
  } finally {
    run.signal.removeEventListener('abort', onAbort);
    await container.remove({ force: true }).catch(() => {});
  }
}

function lineSplitter(onLine: (line: string) => void): PassThrough {
  const pt = new PassThrough();
  let rest = '';
  pt.on('data', (chunk: Buffer) => {
    const text = rest + chunk.toString();
    const lines = text.split('\n');
    rest = lines.pop() ?? '';
    for (const l of lines) onLine(l.replace(/\r$/, ''));
  });
  pt.on('end', () => {
    if (rest) onLine(rest);
  });
  return pt;
}

/** Bytes of report files copied out of one test's container, unless SKIFF_REPORT_MAX_MB says otherwise. */
export const DEFAULT_REPORT_MAX_BYTES = 64 * 1024 * 1024;

/** What one test's reports may still use, shared by all its report paths. */
export interface ReportBudget {
  max: number;
  remaining: number;
  /** Bytes read and thrown away (skipped entries); past 4 × max, the rest of the archive is not read at all. */
  discarded: number;
}

export interface ExtractResult {
  written: string[];
  /** One line per entry not copied, saying why. */
  skipped: string[];
}

const MiB = 1024 * 1024;
const size = (n: number) => (n >= MiB ? `${(n / MiB).toFixed(1)} MiB` : `${n} bytes`);

/** The entry's path below the report folder, or undefined when it is absolute or climbs out. */
export function safeEntryPath(name: string): string | undefined {
  if (!name || name.includes('\0') || isAbsolute(name) || /^[a-zA-Z]:[\\/]/.test(name)) return undefined;
  const parts = name.split(/[\\/]+/).filter((p) => p !== '' && p !== '.');
  if (parts.length === 0 || parts.some((p) => p === '..')) return undefined;
  return parts.join(sep);
}

/** Creates dir/rel one component at a time, refusing any component that exists and is not a real directory (a symlink, a file). */
async function mkdirInside(dir: string, rel: string): Promise<void> {
  let at = dir;
  for (const part of rel.split(sep).filter(Boolean)) {
    at = join(at, part);
    const st = await lstat(at).catch(() => undefined);
    if (!st) await mkdir(at).catch((e: NodeJS.ErrnoException) => (e.code === 'EEXIST' ? undefined : Promise.reject(e)));
    else if (st.isSymbolicLink() || !st.isDirectory()) throw new Error(`${relative(dir, at)} is not a directory`);
  }
  const st = await lstat(at);
  if (st.isSymbolicLink() || !st.isDirectory()) throw new Error(`${relative(dir, at)} is not a directory`);
}

/**
 * Writes report files from a tar (the Engine's archive endpoint) below dir.
 * A test image's output is not trusted: only regular files and directories
 * are written, never outside dir (absolute names, `..`, symlinks, hardlinks
 * and device files are skipped, and no path is followed through a symlink),
 * files get mode 0644, and the test's reports together stay within the
 * budget.
 */
export async function extractReports(archive: NodeJS.ReadableStream, dir: string, budget: ReportBudget): Promise<ExtractResult> {
  const written: string[] = [];
  const skipped: string[] = [];
  const extract = tar.extract();
  const source = Readable.from(archive as AsyncIterable<Buffer>);
  source.on('error', (e) => extract.destroy(e));
  source.pipe(extract);
  try {
    for await (const entry of extract as unknown as AsyncIterable<{ header: tar.Header; resume(): void } & AsyncIterable<Buffer>>) {
      const { header } = entry;
      const rel = safeEntryPath(header.name);
      const skip = (why: string) => {
        skipped.push(`${header.name}: ${why}`);
        budget.discarded += header.size ?? 0;
        entry.resume();
      };
      if (!rel) {
        skip('its path leads outside the report folder; not copied');
        continue;
      }
      if (header.type === 'directory') {
        await mkdirInside(dir, rel).then(
          () => entry.resume(),
          (e: Error) => skip(`${e.message}; not copied`),
        );
        continue;
      }
      if (header.type !== 'file' && header.type !== 'contiguous-file') {
        skip(`a ${header.type ?? 'special'} entry${header.linkname ? ` to ${header.linkname}` : ''}; only regular files are copied`);
        continue;
      }
      const bytes = header.size ?? 0;
      if (bytes > budget.remaining) {
        skip(`${size(bytes)} is over the report size cap (${size(budget.max)} per test, ${size(budget.remaining)} left); not copied`);
        // Reading gigabytes only to throw them away is not worth it: stop reading this archive.
        if (budget.discarded > 4 * budget.max) {
          skipped.push(`${header.name}: the rest of this report archive was not read`);
          break;
        }
        continue;
      }
      try {
        await mkdirInside(dir, dirname(rel));
      } catch (e) {
        skip(`${(e as Error).message}; not copied`);
        continue;
      }
      const target = join(dir, rel);
      let fh;
      try {
        // O_NOFOLLOW: a symlink already at the target is not followed out of the folder.
        fh = await open(target, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o644);
      } catch (e) {
        skip(`cannot be written (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); not copied`);
        continue;
      }
      let got = 0;
      try {
        for await (const chunk of entry) {
          got += chunk.length;
          if (got > budget.remaining) throw new Error('longer than its header says');
          await fh.write(chunk);
        }
      } finally {
        await fh.close();
      }
      budget.remaining -= got;
      written.push(target);
    }
  } finally {
    source.destroy();
    (archive as { destroy?: () => void }).destroy?.();
  }
  return { written, skipped };
}

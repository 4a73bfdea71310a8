import { mkdir, writeFile, symlink } from 'node:fs/promises';
import { dirname, join, normalize } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import tar from 'tar-stream';
import type { ContainerOutcome, ContainerRun, DockerEngine } from './docker.js';

/**
 * Runs one command in a fresh container, streams its output line by line,
 * copies report files out, and always removes the container: after success,
 * failure, timeout or Ctrl-C.
 */
export async function runContainer(engine: DockerEngine, run: ContainerRun): Promise<ContainerOutcome> {
  const api = engine.api;
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
    for (const path of run.copyOut) {
      try {
        const archive = await container.getArchive({ path });
        copied.push(...(await extractTo(archive, run.copyTo)));
      } catch (e) {
        if ((e as { statusCode?: number }).statusCode === 404) missing.push(path);
        else throw e;
      }
    }
    return { exitCode: status.StatusCode, timedOut, interrupted, durationMs: Date.now() - started, copied, missing };
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

/** Writes a tar from the Engine's archive endpoint below dir; refuses paths that climb out. */
async function extractTo(archive: NodeJS.ReadableStream, dir: string): Promise<string[]> {
  const written: string[] = [];
  const extract = tar.extract();
  const done = (async () => {
    for await (const entry of extract as unknown as AsyncIterable<{ header: tar.Header; resume(): void } & AsyncIterable<Buffer>>) {
      const name = normalize(entry.header.name);
      if (name.startsWith('..') || name.startsWith('/')) {
        entry.resume();
        continue;
      }
      const target = join(dir, name);
      if (entry.header.type === 'directory') {
        await mkdir(target, { recursive: true });
        entry.resume();
      } else if (entry.header.type === 'file') {
        const chunks: Buffer[] = [];
        for await (const c of entry) chunks.push(c);
        await mkdir(dirname(target), { recursive: true });
        await writeFile(target, Buffer.concat(chunks));
        written.push(target);
      } else if (entry.header.type === 'symlink' && entry.header.linkname) {
        await mkdir(dirname(target), { recursive: true });
        await symlink(entry.header.linkname, target).catch(() => {});
        entry.resume();
      } else {
        entry.resume();
      }
    }
  })();
  Readable.from(archive as AsyncIterable<Buffer>).pipe(extract);
  await done;
  return written;
}

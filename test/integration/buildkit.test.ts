import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { commitAll, editFile, fixtureRepo, git, registryTags, removeTempDirs, repoRoot, skiff, uniqueRegistry, builtImages } from '../helpers/skiff.js';

// The "fresh runner" Engine of scripts/services: an empty dockerd reached as GitLab's docker:dind is.
const TLS_HOST = 'tcp://127.0.0.1:2376';
const CLIENT_CERTS = join(process.env.SKIFF_STATE ?? '/var/lib/skiff-dev', 'docker-tls', 'certs', 'client');
const TLS_ENV = { DOCKER_HOST: TLS_HOST, DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: CLIENT_CERTS, DOCKER_CONTEXT: undefined, DOCKER_TLS: undefined };
const BASE_IMAGE = 'skiff-base/busybox:1';
const tlsDocker = (args: string[]) => execa('docker', args, { env: TLS_ENV, reject: false });

const tempDirs: string[] = [];
afterAll(async () => {
  await removeTempDirs();
  for (const d of tempDirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** A one-image project in a new Git repository: skiff.yaml and app/ with the given Dockerfile and files. */
async function project(dockerfile: string, files: Record<string, string> = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-buildkit-'));
  tempDirs.push(dir);
  await mkdir(join(dir, 'app'));
  await writeFile(join(dir, 'skiff.yaml'), 'project: bk\nregistry: 127.0.0.1:5000/bk\nimages:\n  app:\n    context: app\n');
  await writeFile(join(dir, 'app', 'Dockerfile'), dockerfile);
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, 'app', name), text);
  await git(dir, 'init', '-q', '-b', 'main');
  await commitAll(dir, 'initial');
  return dir;
}

/**
 * The local Engine behind a proxy that answers every BuildKit build (POST /build?version=2) the way an
 * Engine without BuildKit does, and passes everything else through.
 */
async function engineRefusingBuildKit(): Promise<{ host: string; refused: () => number; close: () => Promise<void> }> {
  let refused = 0;
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://engine');
    if (req.method === 'POST' && url.pathname.endsWith('/build') && url.searchParams.get('version') === '2') {
      refused++;
      req.resume();
      req.on('end', () => {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ message: 'buildkit not supported by daemon' }));
      });
      return;
    }
    const upstream = request({ socketPath: '/var/run/docker.sock', path: req.url, method: req.method, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', (e) => res.destroy(e));
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `tcp://127.0.0.1:${port}`,
    refused: () => refused,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const DEPENDENCY_STEP = `RUN sh -c 'sleep 3; dd if=/dev/urandom of=/dep bs=1M count=5'`;

describe('BuildKit through the Engine API, with the layer cache in the registry', () => {
  it('fresh runners reuse the dependency layer of the previous build after a one-file change, build after build, as BuildKit reports it', async () => {
    const dir = await project(`FROM ${BASE_IMAGE}\n${DEPENDENCY_STEP}\nCOPY app.txt /app.txt\n`, { 'app.txt': 'version 1\n' });
    const registry = uniqueRegistry();
    // The previous pipeline's build job, on the long-lived Engine.
    const first = await skiff(['build', '--push', '--registry', registry, '-o', 'json'], { cwd: dir });
    expect(first.exitCode, first.all).toBe(0);
    expect(builtImages(first.stdout).app).toMatchObject({ built: true, pushed: true, builder: 'buildkit', steps: 3 });
    expect(await registryTags(`${registry}/app`)).toContain('main');

    // The next jobs: each on a runner whose Docker has nothing, except the base image its before_script pulls.
    // The third build takes its cache from the second, which took its own from the registry: the chain holds.
    for (const version of ['version 2', 'version 3']) {
      const reset = await execa(join(repoRoot, 'scripts', 'services'), ['fresh-runner-reset'], { reject: false, all: true });
      expect(reset.exitCode, reset.all).toBe(0);
      expect((await tlsDocker(['images', '-q'])).stdout.trim()).toBe('');
      expect((await tlsDocker(['pull', '-q', `127.0.0.1:5000/${BASE_IMAGE}`])).exitCode).toBe(0);
      expect((await tlsDocker(['tag', `127.0.0.1:5000/${BASE_IMAGE}`, BASE_IMAGE])).exitCode).toBe(0);

      await editFile(dir, 'app/app.txt', () => `${version}\n`);
      await commitAll(dir, version);
      const next = await skiff(['build', '--push', '--registry', registry, '-o', 'json', '-v'], { cwd: dir, env: TLS_ENV });
      expect(next.exitCode, next.all).toBe(0);
      const app = builtImages(next.stdout).app!;
      expect(app).toMatchObject({ built: true, pushed: true, builder: 'buildkit', steps: 3 });
      // BuildKit's own report: the RUN vertex came from the cache, the COPY of the changed file did not.
      expect(app.cachedSteps, next.stderr).toBe(1);
      expect(next.stderr).toContain(`app: step 2/3 ${DEPENDENCY_STEP} (cached)`);
      expect(next.stderr).toMatch(/^app: step 3\/3 COPY app\.txt \/app\.txt$/m);
      expect(next.stderr).toContain(`app: layer cache from ${registry}/app:main`);
      expect(next.stderr).toMatch(/^app: built with BuildKit$/m);
      // The image the fresh runner built holds the new file and the reused layer.
      const run = await tlsDocker(['run', '--rm', '--network', 'none', app.reference, 'sh', '-c', 'cat /app.txt; wc -c < /dep']);
      expect(run.stdout.trim().split('\n')).toEqual([version, String(5 * 1024 * 1024)]);
    }
  });

  it('images built with BuildKit carry the labels and only the files COPY should see', async () => {
    const dir = await fixtureRepo('hello');
    const registry = uniqueRegistry();
    const r = await skiff(['build', 'app', '--registry', registry, '-o', 'json'], { cwd: dir });
    expect(r.exitCode, r.all).toBe(0);
    const out = builtImages(r.stdout);
    expect(out.app).toMatchObject({ built: true, builder: 'buildkit' });
    expect(out.base).toMatchObject({ built: true, builder: 'buildkit' });
    // No .dockerignore, no generated Dockerfile: BuildKit applies no .dockerignore to an uploaded context.
    const ls = await execa('docker', ['run', '--rm', '--network', 'none', out.app!.reference, 'ls', '-A', '/app']);
    expect(ls.stdout.split('\n').sort()).toEqual(['Dockerfile', 'run-tests', 'start', 'www']);
    const labels = await execa('docker', ['image', 'inspect', '--format', '{{json .Config.Labels}}', out.app!.reference]);
    const sha = (await git(dir, 'rev-parse', 'HEAD')).stdout.trim();
    expect(JSON.parse(labels.stdout)).toMatchObject({ 'org.opencontainers.image.revision': sha, 'io.skiff.inputs': expect.stringContaining('"files"') });
    // The build arg and the dependency's image arrived.
    const env = await execa('docker', ['run', '--rm', '--network', 'none', out.app!.reference, 'sh', '-c', 'echo $APP_ENV; cat /opt/base/VERSION']);
    expect(env.stdout.split('\n')).toEqual(['production', 'base 1']);
  });

  it('a failing RUN exits 1 naming the Dockerfile line and step, followed by the whole output of the step', async () => {
    const dir = await fixtureRepo('hello');
    await editFile(dir, 'worker/Dockerfile', (t) => `${t}RUN echo about to fail && echo on stderr >&2 && exit 7\n`);
    await commitAll(dir, 'broken step');
    const r = await skiff(['build', 'worker', '--registry', uniqueRegistry()], { cwd: dir, env: { SKIFF_BUILDER: 'buildkit' } });
    expect(r.exitCode, r.all).toBe(1);
    const lines = r.stderr.split('\n');
    const error = lines.findIndex((l) => l.startsWith('error: '));
    expect(lines[error]).toBe(
      `error: image worker: worker/Dockerfile:4: step 4 "RUN echo about to fail && echo on stderr >&2 && exit 7" failed: The command '/bin/sh -c echo about to fail && echo on stderr >&2 && exit 7' returned a non-zero code: 7`,
    );
    expect(lines[error - 3]).toBe('worker: failed (worker/Dockerfile:4 RUN echo about to fail && echo on stderr >&2 && exit 7)');
    // stdout and stderr reach BuildKit through two pipes: their lines may come in either order.
    expect(lines.slice(error - 2, error).sort()).toEqual(['[worker] about to fail', '[worker] on stderr']);
    expect(r.stderr).toMatch(/^worker: step 3\/3 RUN echo about to fail/m);
  });

  it('a failing RUN in a named stage of a multi-stage build: the line in that stage, the output in the JSON error', async () => {
    const dir = await project(
      [
        `FROM ${BASE_IMAGE} AS build`,
        'ENV GREETING=hello',
        'RUN echo "$GREETING from build" && exit 3',
        '',
        `FROM ${BASE_IMAGE}`,
        'COPY --from=build /etc/hostname /built',
        '',
      ].join('\n'),
    );
    const r = await skiff(['build', '--registry', uniqueRegistry(), '-o', 'json'], { cwd: dir, env: { SKIFF_BUILDER: 'buildkit' } });
    expect(r.exitCode, r.all).toBe(1);
    const { error } = JSON.parse(r.stdout) as { error: { message: string; detail: { line: number; output: string[] } } };
    expect(error.message).toBe(
      `image app: app/Dockerfile:3: step 3 "RUN echo "$GREETING from build" && exit 3" failed: The command '/bin/sh -c echo "$GREETING from build" && exit 3' returned a non-zero code: 3`,
    );
    expect(error.detail).toMatchObject({ line: 3, output: ['hello from build'] });
    expect(r.stderr).toMatch(/^app: build step 2\/2 RUN echo "hello from build" && exit 3$/m);
  });

  it('a Dockerfile syntax error exits 1 naming the file and line', async () => {
    const dir = await fixtureRepo('hello');
    await editFile(dir, 'worker/Dockerfile', (t) => `${t}FOO bar\nRUN true\n`);
    await commitAll(dir, 'syntax error');
    const r = await skiff(['build', 'worker', '--registry', uniqueRegistry()], { cwd: dir, env: { SKIFF_BUILDER: 'buildkit' } });
    expect(r.exitCode, r.all).toBe(1);
    expect(r.stderr).toMatch(/^error: image worker: worker\/Dockerfile:4: dockerfile parse error line 4: unknown instruction: FOO$/m);
  });

  it('an Engine that refuses BuildKit builds with the classic builder, says why, and is not asked again in the run', async () => {
    const engine = await engineRefusingBuildKit();
    try {
      const dir = await fixtureRepo('hello');
      const env = { DOCKER_HOST: engine.host, DOCKER_TLS_VERIFY: undefined, DOCKER_CERT_PATH: undefined, DOCKER_CONTEXT: undefined };
      const r = await skiff(['build', '--parallel', '1', '--registry', uniqueRegistry(), '-o', 'json', '-v'], { cwd: dir, env });
      expect(r.exitCode, r.all).toBe(0);
      const out = builtImages(r.stdout);
      for (const name of ['base', 'app', 'worker']) expect(out[name]).toMatchObject({ built: true, builder: 'classic' });
      expect(r.stderr).toMatch(/^base: built with the classic builder \(the Engine refused BuildKit: .*buildkit not supported by daemon\)$/m);
      expect(engine.refused()).toBe(1);

      // Forced, the refusal is an error that names the variable.
      await editFile(dir, 'worker/worker.sh', (t) => `${t}# forced\n`);
      await commitAll(dir, 'forced');
      const forced = await skiff(['build', 'worker', '--registry', uniqueRegistry()], { cwd: dir, env: { ...env, SKIFF_BUILDER: 'buildkit' } });
      expect(forced.exitCode, forced.all).toBe(2);
      expect(forced.stderr).toMatch(
        /^error: SKIFF_BUILDER=buildkit, but the Docker Engine at tcp:\/\/127\.0\.0\.1:\d+ .* refuses BuildKit \(.*buildkit not supported by daemon\); unset SKIFF_BUILDER or set it to classic$/m,
      );
    } finally {
      await engine.close();
    }
  });

  it('SKIFF_BUILDER=classic still builds with the classic builder and says so; an unknown builder is exit 2', async () => {
    const dir = await fixtureRepo('hello');
    const r = await skiff(['build', 'worker', '--registry', uniqueRegistry(), '-o', 'json', '-v'], { cwd: dir, env: { SKIFF_BUILDER: 'classic' } });
    expect(r.exitCode, r.all).toBe(0);
    expect(builtImages(r.stdout).worker).toMatchObject({ built: true, builder: 'classic', steps: 3 });
    expect(r.stderr).toMatch(/^worker: built with the classic builder \(SKIFF_BUILDER=classic\)$/m);
    expect(r.stderr).toMatch(/^\[worker\] Step 2\/4 : COPY worker\.sh \/worker\.sh$/m);
    // skiff's own LABEL step is not part of the progress.
    expect(r.stderr).not.toMatch(/Step \d+\/\d+ : LABEL/);

    const bad = await skiff(['build', 'worker', '--registry', uniqueRegistry()], { cwd: dir, env: { SKIFF_BUILDER: 'kaniko' } });
    expect(bad.exitCode, bad.all).toBe(2);
    expect(bad.stderr).toMatch(/^error: SKIFF_BUILDER=kaniko: not a builder; set it to buildkit or classic/m);
  });
});

import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerImageId, fixtureRepo, registryDigest, removeTempDirs, repoRoot, skiff, uniqueRegistry, builtImages } from '../helpers/skiff.js';

// The "fresh runner" Engine of scripts/services: reached only as GitLab's docker:dind is.
const TLS_HOST = 'tcp://127.0.0.1:2376';
const CLIENT_CERTS = join(process.env.SKIFF_STATE ?? '/var/lib/skiff-dev', 'docker-tls', 'certs', 'client');
const TLS_ENV = { DOCKER_HOST: TLS_HOST, DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: CLIENT_CERTS, DOCKER_CONTEXT: undefined, DOCKER_TLS: undefined };
const BASE_IMAGE = 'skiff-base/busybox:1';

/** The docker CLI against the fresh runner, as a job's before_script runs it. */
const tlsDocker = (args: string[], env: Record<string, string | undefined> = TLS_ENV) => execa('docker', args, { env, reject: false });

const tempDirs: string[] = [];
async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

afterAll(async () => {
  await removeTempDirs();
  for (const d of tempDirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe('Docker-in-Docker as GitLab runs it: DOCKER_HOST=tcp://…:2376, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH', () => {
  beforeAll(async () => {
    const version = await tlsDocker(['version', '--format', '{{.Server.Version}}']);
    if (version.exitCode !== 0) {
      throw new Error(
        `the fresh-runner Engine on ${TLS_HOST} (TLS, certificates in ${CLIENT_CERTS}) does not answer: run scripts/services up\n${version.stderr}`,
      );
    }
    // The fixture builds FROM the local name skiff-base/busybox:1; a fresh runner has nothing, so the job's before_script pulls it.
    const pull = await tlsDocker(['pull', '-q', `127.0.0.1:5000/${BASE_IMAGE}`]);
    expect(pull.exitCode, pull.stderr).toBe(0);
    const tag = await tlsDocker(['tag', `127.0.0.1:5000/${BASE_IMAGE}`, BASE_IMAGE]);
    expect(tag.exitCode, tag.stderr).toBe(0);
  });

  it('skiff build --push builds in the TLS Engine and pushes to the registry', async () => {
    const dir = await fixtureRepo('hello');
    const registry = uniqueRegistry();
    const r = await skiff(['build', '--push', '--registry', registry, '-o', 'json'], { cwd: dir, env: TLS_ENV });
    expect(r.exitCode, r.all).toBe(0);
    const out = builtImages(r.stdout);
    for (const name of ['base', 'app', 'worker']) {
      expect(out[name]).toMatchObject({ built: true, pushed: true });
      expect(await registryDigest(`${registry}/${name}`, out[name]!.tag)).toBe(out[name]!.digest);
      // Built in the TLS Engine, not in the local one.
      expect((await tlsDocker(['image', 'inspect', '--format', '{{.Id}}', out[name]!.reference])).exitCode).toBe(0);
      expect(await dockerImageId(out[name]!.reference)).toBeUndefined();
    }
  });

  it('a Docker context with the TLS endpoint (DOCKER_CONTEXT, then currentContext) works like DOCKER_HOST, and DOCKER_HOST beats it', async () => {
    const config = await tempDir('skiff-docker-config-');
    const noHost = { DOCKER_CONFIG: config, DOCKER_HOST: undefined, DOCKER_TLS_VERIFY: undefined, DOCKER_CERT_PATH: undefined, DOCKER_CONTEXT: undefined };
    const endpoint = `host=${TLS_HOST},ca=${CLIENT_CERTS}/ca.pem,cert=${CLIENT_CERTS}/cert.pem,key=${CLIENT_CERTS}/key.pem`;
    const created = await tlsDocker(['context', 'create', 'fresh-runner', '--docker', endpoint], noHost);
    expect(created.exitCode, created.stderr).toBe(0);
    const dir = await fixtureRepo('hello');
    const built = async (env: Record<string, string | undefined>) => {
      const r = await skiff(['build', 'worker', '--registry', uniqueRegistry(), '-o', 'json'], { cwd: dir, env });
      expect(r.exitCode, r.all).toBe(0);
      return builtImages(r.stdout).worker!;
    };

    const named = await built({ ...noHost, DOCKER_CONTEXT: 'fresh-runner' });
    expect((await tlsDocker(['image', 'inspect', named.reference])).exitCode).toBe(0);
    expect(await dockerImageId(named.reference)).toBeUndefined();

    expect((await tlsDocker(['context', 'use', 'fresh-runner'], noHost)).exitCode).toBe(0);
    const current = await built(noHost);
    expect((await tlsDocker(['image', 'inspect', current.reference])).exitCode).toBe(0);

    const overridden = await built({ ...noHost, DOCKER_CONTEXT: 'fresh-runner', DOCKER_HOST: 'unix:///var/run/docker.sock' });
    expect(await dockerImageId(overridden.reference)).toBeDefined();
    expect((await tlsDocker(['image', 'inspect', overridden.reference])).exitCode).not.toBe(0);
  });

  it('a wrong DOCKER_CERT_PATH exits 2 with one line naming the variable and the missing file', async () => {
    const dir = await fixtureRepo('hello');
    const r = await skiff(['build', '--push', '--registry', uniqueRegistry()], {
      cwd: dir,
      env: { ...TLS_ENV, DOCKER_CERT_PATH: '/nonexistent/certs/client' },
    });
    expect(r.exitCode, r.all).toBe(2);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('error:'));
    expect(errors).toEqual([
      'error: DOCKER_CERT_PATH=/nonexistent/certs/client: ca.pem is missing; point DOCKER_CERT_PATH at the directory holding ca.pem, cert.pem and key.pem (GitLab docker:dind: "$DOCKER_TLS_CERTDIR/client", shared with the job through the runner\'s /certs/client volume)',
    ]);
    expect(r.all).not.toMatch(/\n\s+at /);
  });

  it('without the client certificate the Engine refuses the connection: exit 3, naming the endpoint', async () => {
    const caOnly = await tempDir('skiff-ca-only-');
    await copyFile(join(CLIENT_CERTS, 'ca.pem'), join(caOnly, 'ca.pem'));
    const dir = await fixtureRepo('hello');
    const r = await skiff(['build', 'worker', '--registry', uniqueRegistry()], { cwd: dir, env: { ...TLS_ENV, DOCKER_CERT_PATH: caOnly } });
    expect(r.exitCode, r.all).toBe(3);
    expect(r.stderr).toMatch(/error: Docker Engine at tcp:\/\/127\.0\.0\.1:2376 \(TLS, from DOCKER_HOST\) is unreachable \(TLS: [^)]*certificate[^)]*\)/);
  });

  it('every job of a GitLab pipeline starts with an empty Docker: the test job must not rebuild what the build job pushed', async () => {
    const dir = await fixtureRepo('hello');
    const registry = uniqueRegistry();
    // The build job, on the local Engine.
    const pushed = await skiff(['build', '--push', '--registry', registry, '-o', 'json'], { cwd: dir });
    expect(pushed.exitCode, pushed.all).toBe(0);
    const app = builtImages(pushed.stdout).app!;
    // The test job, on a new runner whose Docker has nothing, not even the base image.
    const reset = await execa(join(repoRoot, 'scripts', 'services'), ['fresh-runner-reset'], { reject: false, all: true });
    expect(reset.exitCode, reset.all).toBe(0);
    expect((await tlsDocker(['images', '-q'])).stdout.trim()).toBe('');
    const r = await skiff(['test', '--registry', registry], { cwd: dir, env: TLS_ENV });
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`app: pulled \\(${app.reference.replace(/[.]/g, '\\.')}\\)`));
    expect(r.stderr).not.toMatch(/building/);
    expect(r.stderr).toMatch(/\[unit\] tests finished with status 0/);
  });
});

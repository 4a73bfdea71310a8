// A CI job that starts before its Docker-in-Docker service: no client certificates in
// DOCKER_CERT_PATH yet, then an Engine that refuses connections. skiff waits for both (in CI, for
// a TCP DOCKER_HOST), says so once each, and fails as before when the time is up or the failure is
// of another kind.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { DockerEngine } from '../../src/adapters/docker.js';
import { openDockerEngine } from '../../src/adapters/docker-start.js';
import { InfrastructureError } from '../../src/errors.js';

const DESCRIBE = 'tcp://127.0.0.1:2376 (TLS, from DOCKER_HOST)';
const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** An Engine whose ping fails with these error codes first (undefined: answers). */
function fakeEngine(failures: Array<string | undefined>) {
  let pings = 0;
  const next = async () => {
    const code = failures[pings++];
    if (code) throw Object.assign(new Error(`connect ${code} 127.0.0.1:2376`), { code });
  };
  const engine = {
    endpoint: { describe: DESCRIBE },
    api: { ping: next },
    ping: async () => {
      try {
        await next();
      } catch (e) {
        throw new InfrastructureError(`Docker Engine at ${DESCRIBE} is unreachable (${(e as Error).message})`);
      }
    },
  };
  return { engine: engine as unknown as DockerEngine, pings: () => pings };
}

async function certDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-docker-start-'));
  dirs.push(dir);
  return dir;
}

const tlsEnv = (dir: string) => ({ DOCKER_HOST: 'tcp://127.0.0.1:2376', DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: dir });

async function open(env: NodeJS.ProcessEnv, engine: DockerEngine, opts: { wait?: boolean; waitMs?: number } = {}) {
  const said: string[] = [];
  let made = 0;
  const result = openDockerEngine(env, {
    wait: opts.wait ?? true,
    waitMs: opts.waitMs ?? 5_000,
    pollMs: 10,
    signal: new AbortController().signal,
    onWait: (m) => said.push(m),
    make: () => {
      made++;
      return engine;
    },
  });
  return { result, said, made: () => made };
}

describe('openDockerEngine', () => {
  it('waits for the client certificates a starting docker:dind writes, then for its Engine to answer', async () => {
    const dir = await certDir();
    const { engine, pings } = fakeEngine(['ECONNREFUSED', 'ECONNREFUSED']);
    const { result, said, made } = await open(tlsEnv(dir), engine);
    await new Promise((r) => setTimeout(r, 50));
    expect(made(), 'the Engine client reads the certificates: not made before they are there').toBe(0);
    for (const f of ['key.pem', 'cert.pem', 'ca.pem']) await writeFile(join(dir, f), 'pem\n');
    expect(await result).toBe(engine);
    expect(pings()).toBe(4); // refused twice, answered, and the final check
    expect(said[0]).toBe(`waiting for the Docker Engine's client certificates in ${dir} (DOCKER_CERT_PATH): a Docker-in-Docker service still starting?`);
    expect(said[1]).toMatch(/^Docker Engine at tcp:\/\/127\.0\.0\.1:2376 \(TLS, from DOCKER_HOST\) answered after \d+\.\ds$/);
    expect(said).toHaveLength(2);
  });

  it('with the certificates there, says once that it waits for a refusing Engine', async () => {
    const dir = await certDir();
    for (const f of ['key.pem', 'cert.pem', 'ca.pem']) await writeFile(join(dir, f), 'pem\n');
    const { engine } = fakeEngine(['ECONNREFUSED', 'ECONNRESET', 'ECONNREFUSED']);
    const { result, said } = await open(tlsEnv(dir), engine);
    expect(await result).toBe(engine);
    expect(said[0]).toBe(`waiting for the Docker Engine at ${DESCRIBE} to answer (ECONNREFUSED): a Docker-in-Docker service still starting?`);
    expect(said[1]).toMatch(/answered after/);
    expect(said).toHaveLength(2);
  });

  it('an Engine still refusing when the time is up fails as unreachable', async () => {
    const { engine } = fakeEngine(Array<string>(1000).fill('ECONNREFUSED'));
    const { result, said } = await open({ DOCKER_HOST: 'tcp://127.0.0.1:2375' }, engine, { waitMs: 100 });
    await expect(result).rejects.toThrow(`Docker Engine at ${DESCRIBE} is unreachable (connect ECONNREFUSED 127.0.0.1:2376)`);
    expect(said).toHaveLength(1);
  });

  it('another failure (TLS, a refused certificate) is not waited for', async () => {
    const { engine, pings } = fakeEngine(['ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA']);
    const { result, said } = await open({ DOCKER_HOST: 'tcp://127.0.0.1:2375' }, engine);
    await expect(result).rejects.toThrow(/is unreachable/);
    expect(pings()).toBe(2);
    expect(said).toEqual([]);
  });

  it('outside CI, or with a socket, the Engine is made at once and not pinged', async () => {
    for (const [env, wait] of [
      [{ DOCKER_HOST: 'tcp://127.0.0.1:2375' }, false],
      [{ DOCKER_HOST: 'unix:///var/run/docker.sock' }, true],
      [{}, true],
    ] as const) {
      const { engine, pings } = fakeEngine(['ECONNREFUSED']);
      const { result, said } = await open(env, engine, { wait });
      expect(await result).toBe(engine);
      expect(pings()).toBe(0);
      expect(said).toEqual([]);
    }
  });
});

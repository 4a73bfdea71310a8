import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuilderDown, BuildkitdClient, CacheExportRefused, findBuildctl } from '../../src/build/buildkitd-client.js';
import { BuildStepFailure } from '../../src/build/build-failure.js';
import { builderOrder } from '../../src/build/builder-pool.js';
import { ConfigError, InfrastructureError } from '../../src/errors.js';
import { BuildkitdPool } from '../../src/build/builders/buildkitd-pool.js';

// A stand-in for buildctl that answers as buildctl does for each address: port 1 refuses the
// connection, port 2 fails the TLS handshake, port 3 fails the cache export, anything else works.
// It records its arguments and the Docker config it was given.
const FAKE = `#!/bin/sh
log="$FAKE_LOG"
addr="$2"
printf '%s\\n' "$*" >> "$log.args"
case "$*" in *" build "*|"build "*) cat "$DOCKER_CONFIG/config.json" > "$log.config"; stat -c %a "$DOCKER_CONFIG/config.json" > "$log.mode"; echo "$DOCKER_CONFIG" > "$log.dir";; esac
case "$addr" in
  *:1) echo 'error: failed to list workers: Unavailable: connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused"' >&2; exit 1;;
  *:2) echo 'error: failed to list workers: Unavailable: connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority"' >&2; exit 1;;
  *:3) case "$*" in *"debug workers"*) exit 0;; esac
       echo '{"vertexes":[{"digest":"sha256:c","name":"exporting cache to registry","started":"2026-01-01T00:00:00Z"}]}' >&2
       echo '{"vertexes":[{"digest":"sha256:c","name":"exporting cache to registry","started":"2026-01-01T00:00:00Z","completed":"2026-01-01T00:00:01Z","error":"unexpected status 403 Forbidden"}]}' >&2
       echo 'error: failed to solve: unexpected status 403 Forbidden' >&2; exit 1;;
  *:4) case "$*" in *"debug workers"*) exit 0;; esac
       echo 'error: failed to solve: dockerfile parse error on line 2: unknown instruction: COPPY' >&2; exit 1;;
esac
exit 0
`;

let dir: string;
let buildctl: string;
const env = () => ({ ...process.env, FAKE_LOG: join(dir, 'log') });
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'skiff-fake-buildctl-'));
  buildctl = join(dir, 'buildctl');
  await writeFile(buildctl, FAKE);
  await chmod(buildctl, 0o755);
  process.env.FAKE_LOG = join(dir, 'log');
});
afterAll(async () => {
  delete process.env.FAKE_LOG;
  await rm(dir, { recursive: true, force: true });
});

const client = (address: string) => new BuildkitdClient(buildctl, { address, origin: 'skiff.yaml:3:3' }, process.env);
const never = new AbortController().signal;

describe('BuildkitdClient.probe', () => {
  it('tells a builder that is down from one whose TLS handshake fails', async () => {
    await expect(client('tcp://127.0.0.1:1').probe(never)).rejects.toThrow(BuilderDown);
    await expect(client('tcp://127.0.0.1:1').probe(never)).rejects.toThrow('dial tcp 127.0.0.1:1: connect: connection refused');
    const tls = await client('tcp://127.0.0.1:2')
      .probe(never)
      .catch((e: unknown) => e);
    expect(tls).toBeInstanceOf(InfrastructureError);
    expect((tls as InfrastructureError).exitCode).toBe(3);
    expect((tls as Error).message).toBe(
      "buildkitd at tcp://127.0.0.1:2 (skiff.yaml:3:3): TLS handshake failed (tls: failed to verify certificate: x509: certificate signed by unknown authority); check its ca, cert and key (the CA that signed buildkitd's certificate, and a client certificate it trusts)",
    );
    await expect(client('tcp://127.0.0.1:9').probe(never)).resolves.toEqual([]); // a buildctl that prints no workers' JSON: no platforms known
  });
});

describe('BuildkitdPool', () => {
  it('skips a builder that is down with a warning, for the image its hash sends there', async () => {
    const addresses = ['tcp://127.0.0.1:1', 'tcp://127.0.0.1:9'];
    const image = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'].map((n) => `r/${n}`).find((n) => builderOrder(n, addresses)[0] === addresses[0])!;
    const warnings: string[] = [];
    const pool = new BuildkitdPool(
      addresses.map((a) => client(a)),
      (m) => warnings.push(m),
    );
    expect((await pool.pick(image, never, 'app')).target.address).toBe('tcp://127.0.0.1:9');
    expect(warnings).toEqual([
      'app: buildkitd tcp://127.0.0.1:1 (dial tcp 127.0.0.1:1: connect: connection refused) unreachable; building on tcp://127.0.0.1:9 instead',
    ]);
  });

  it('names every builder when none answers, exit 3', async () => {
    const pool = new BuildkitdPool([client('tcp://127.0.0.1:1'), client('tcp://127.0.0.2:1')], () => {});
    const e = await pool.pick('r/app', never).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(InfrastructureError);
    expect((e as Error).message).toMatch(
      /^no buildkitd builder is reachable: tcp:\/\/127\.0\.0\.\d:1 \(.*connection refused\); tcp:\/\/127\.0\.0\.\d:1 \(.*connection refused\)/,
    );
  });
});

describe('BuildkitdClient.build', () => {
  const request = (over: Partial<Parameters<BuildkitdClient['build']>[0]> = {}) => ({
    contextDir: dir,
    dockerfile: 'Dockerfile',
    buildArgs: { A: '1' },
    labels: { l: 'v' },
    ref: '127.0.0.1:5001/p/app:abc',
    push: true,
    cacheImports: ['127.0.0.1:5001/p/app/cache:main'],
    cacheExport: '127.0.0.1:5001/p/app/cache:main',
    secrets: [{ id: 'tok', env: 'TOKEN' }],
    registryAuth: { '127.0.0.1:5001': { username: 'u', password: 'pa55-word', origin: 'test' } },
    env: env(),
    onTrace: () => {},
    onLog: () => {},
    signal: never,
    ...over,
  });

  it('hands credentials over in a private Docker config, removed after, never on the command line', async () => {
    await client('tcp://127.0.0.1:9').build(request());
    const args = await readFile(join(dir, 'log.args'), 'utf8');
    expect(args).not.toContain('pa55-word');
    expect(args).toContain('--secret id=tok,env=TOKEN');
    expect(args).toContain('--export-cache type=registry,ref=127.0.0.1:5001/p/app/cache:main,mode=max');
    expect(args).toContain('--import-cache type=registry,ref=127.0.0.1:5001/p/app/cache:main');
    expect(args).toContain('--output type=image,name=127.0.0.1:5001/p/app:abc,push=true');
    expect(JSON.parse(await readFile(join(dir, 'log.config'), 'utf8'))).toEqual({
      auths: { '127.0.0.1:5001': { auth: Buffer.from('u:pa55-word').toString('base64') } },
    });
    expect((await readFile(join(dir, 'log.mode'), 'utf8')).trim()).toBe('600');
    expect(existsSync((await readFile(join(dir, 'log.dir'), 'utf8')).trim())).toBe(false);
    expect((await stat(dir)).isDirectory()).toBe(true);
  });

  it('tells a refused cache export from a failed build', async () => {
    await expect(client('tcp://127.0.0.1:3').build(request())).rejects.toThrow(CacheExportRefused);
    const e = await client('tcp://127.0.0.1:4')
      .build(request())
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(BuildStepFailure);
    expect((e as Error).message).toBe('failed to solve: dockerfile parse error on line 2: unknown instruction: COPPY');
  });
});

describe('findBuildctl', () => {
  it('takes SKIFF_BUILDCTL, then PATH, and says how to fix it when there is none (exit 2)', async () => {
    expect(await findBuildctl({ SKIFF_BUILDCTL: buildctl })).toBe(buildctl);
    expect(await findBuildctl({ PATH: `/nonexistent:${dir}` })).toBe(buildctl);
    const e = await findBuildctl({ PATH: '/nonexistent' }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as Error).message).toMatch(/buildctl is not on PATH; install buildctl .* or set SKIFF_BUILDCTL/);
    await expect(findBuildctl({ SKIFF_BUILDCTL: join(dir, 'nope') })).rejects.toThrow(/SKIFF_BUILDCTL=.*nope is not an executable file/);
  });
});

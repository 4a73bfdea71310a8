import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { builderOrder } from '../../src/build/builder-pool.js';
import { builtImages, commitAll, git, registryTags, removeTempDirs, repoRoot, skiff, uniqueRegistry } from '../helpers/skiff.js';

// The two buildkitd of scripts/services, their client certificates, and buildctl.
const STATE = process.env.SKIFF_STATE ?? '/var/lib/skiff-dev';
const CERTS = join(STATE, 'buildkitd-tls', 'client');
const BUILDCTL = join(repoRoot, '.skiff', 'bin', 'buildctl');
const A = 'tcp://127.0.0.1:1234';
const B = 'tcp://127.0.0.1:1235';
const DOWN = 'tcp://127.0.0.1:1239'; // nothing listens here
const BASE = '127.0.0.1:5000/skiff-base/busybox:1';
const ENV = { PATH: `${join(repoRoot, '.skiff', 'bin')}:${process.env.PATH}` };

const tempDirs: string[] = [];
afterAll(async () => {
  await removeTempDirs();
  for (const d of tempDirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const builderYaml = (addresses: string[], certs = CERTS) =>
  ['builder:', ...addresses.flatMap((a) => [`  - address: ${a}`, `    ca: ${certs}/ca.pem`, `    cert: ${certs}/cert.pem`, `    key: ${certs}/key.pem`])].join(
    '\n',
  );

/** A project in a new Git repository (branch main): skiff.yaml with the given builders and images (name → Dockerfile, files). */
async function project(
  registry: string,
  builders: string[],
  images: Record<string, { dockerfile: string; files?: Record<string, string>; extra?: string }>,
): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-buildkitd-'));
  tempDirs.push(dir);
  const yaml = [`project: bkd`, `registry: ${registry}`, builders.length ? builderYaml(builders) : '', 'images:'];
  for (const [name, img] of Object.entries(images)) {
    yaml.push(`  ${name}:`, `    context: ${name}`);
    if (img.extra) yaml.push(img.extra);
    await mkdir(join(dir, name));
    await writeFile(join(dir, name, 'Dockerfile'), img.dockerfile);
    for (const [f, text] of Object.entries(img.files ?? {})) await writeFile(join(dir, name, f), text);
  }
  await writeFile(join(dir, 'skiff.yaml'), `${yaml.filter(Boolean).join('\n')}\n`);
  await git(dir, 'init', '-q', '-b', 'main');
  await commitAll(dir, 'initial');
  return dir;
}

const buildctl = (address: string, ...args: string[]) =>
  execa(BUILDCTL, ['--addr', address, '--tlscacert', `${CERTS}/ca.pem`, '--tlscert', `${CERTS}/cert.pem`, '--tlskey', `${CERTS}/key.pem`, ...args]);

const DEPS_STEP = `RUN sh -c 'sleep 2; dd if=/dev/urandom of=/dep.bin bs=1k count=64 2>/dev/null'`;
// A multi-stage build: the deps stage does the slow work; the final stage copies its result and the app file.
const MULTI_STAGE = [
  `FROM ${BASE} AS deps`,
  `COPY deps.txt /deps.txt`,
  DEPS_STEP,
  `FROM ${BASE}`,
  `COPY --from=deps /dep.bin /dep.bin`,
  `COPY app.txt /app.txt`,
  `RUN cat /app.txt > /built.txt`,
  '',
].join('\n');

describe('skiff on standalone buildkitd', () => {
  it('rebuilds only the steps after a one-file change, from the builder cache and, with it wiped, from the registry cache (mode=max)', async () => {
    const registry = uniqueRegistry();
    const dir = await project(registry, [A], { app: { dockerfile: MULTI_STAGE, files: { 'deps.txt': 'deps 1\n', 'app.txt': 'app 1\n' } } });
    const first = await skiff(['build', '--push', '-o', 'json'], { cwd: dir, env: ENV });
    expect(first.exitCode, first.all).toBe(0);
    const built = builtImages(first.stdout).app!;
    expect(built).toMatchObject({ built: true, pushed: true, builder: 'buildkitd', builtBy: `buildkitd ${A}`, steps: 6 });
    expect(await registryTags(`${registry}/app/cache`)).toEqual(['main']);
    expect(await registryTags(`${registry}/app`)).toContain(built.tag);

    // One file of the final stage changes: FROM, the deps stage and COPY --from come from the cache.
    await writeFile(join(dir, 'app', 'app.txt'), 'app 2\n');
    await commitAll(dir, 'app 2');
    const second = await skiff(['build', '--push', '-o', 'json'], { cwd: dir, env: ENV });
    expect(second.exitCode, second.all).toBe(0);
    // BuildKit's own cache report: the deps stage and COPY --from came from the cache, the changed COPY and the RUN after it ran.
    const reused = (r: { stderr: string }) => {
      expect(r.stderr).toContain(`app: deps step 3/3 ${DEPS_STEP} (cached)`);
      expect(r.stderr).toContain('app: stage-1 step 2/4 COPY --from=deps /dep.bin /dep.bin (cached)');
      expect(r.stderr).toMatch(/^app: stage-1 step 3\/4 COPY app\.txt \/app\.txt$/m);
      expect(r.stderr).toMatch(/^app: stage-1 step 4\/4 RUN cat \/app\.txt > \/built\.txt$/m);
      expect(r.stderr).not.toContain('COPY app.txt /app.txt (cached)');
    };
    reused(second);
    expect(builtImages(second.stdout).app).toMatchObject({ built: true, steps: 6 });
    expect(builtImages(second.stdout).app!.cachedSteps).toBeGreaterThanOrEqual(3);

    // A builder that has forgotten everything (a new one, or after its GC): the registry cache
    // holds the deps stage's layers too (mode=max), so only the steps after the change run again.
    await buildctl(A, 'prune', '--all');
    await writeFile(join(dir, 'app', 'app.txt'), 'app 3\n');
    await commitAll(dir, 'app 3');
    const third = await skiff(['build', '--push', '-o', 'json', '-v'], { cwd: dir, env: ENV });
    expect(third.exitCode, third.all).toBe(0);
    reused(third);
    expect(builtImages(third.stdout).app).toMatchObject({ built: true, steps: 6 });
    expect(third.stderr).toContain(`registry cache from ${registry}/app/cache:main`);
    // The image has the new file (a same-size edit: buildctl's incremental upload must not miss it).
    const ref = builtImages(third.stdout).app!.reference;
    try {
      const built = await execa('docker', ['run', '--rm', '--pull', 'always', '--network', 'none', ref, 'cat', '/built.txt']);
      expect(built.stdout).toBe('app 3');
    } finally {
      await execa('docker', ['image', 'rm', '-f', ref], { reject: false });
    }
  });

  it('mounts a build secret in RUN, masks it in the log, and leaves it in no layer of the pushed image', async () => {
    const registry = uniqueRegistry();
    const secret = `s3cr3t-${Date.now().toString(36)}-value`;
    const dockerfile = [
      `FROM ${BASE}`,
      `RUN --mount=type=secret,id=api_token sh -c 'echo "token is $(cat /run/secrets/api_token)"; sha256sum /run/secrets/api_token | cut -c1-64 > /proof'`,
      '',
    ].join('\n');
    const extra = ['    secrets:', '      - id: api_token', '        env: API_TOKEN'].join('\n');
    const dir = await project(registry, [A], { app: { dockerfile, extra } });
    const r = await skiff(['build', '--push', '-o', 'json', '-v'], { cwd: dir, env: { ...ENV, API_TOKEN: secret } });
    expect(r.exitCode, r.all).toBe(0);
    expect(r.all).toContain('token is (masked');
    expect(r.all).not.toContain(secret);
    const ref = builtImages(r.stdout).app!.reference;
    await execa('docker', ['pull', '-q', ref]);
    try {
      const proof = await execa('docker', ['run', '--rm', '--network', 'none', ref, 'cat', '/proof']);
      expect(proof.stdout.trim()).toBe(createHash('sha256').update(secret).digest('hex'));
      // Every layer and the config, as `docker save` writes them: the value is in none.
      const saved = await execa('docker', ['save', ref], { encoding: 'buffer' });
      expect(Buffer.from(saved.stdout).includes(Buffer.from(secret))).toBe(false);
      const history = await execa('docker', ['history', '--no-trunc', ref]);
      expect(history.stdout).not.toContain(secret);
    } finally {
      await execa('docker', ['image', 'rm', '-f', ref], { reject: false });
    }
  });

  it('refuses a missing secret source (exit 2, skiff.yaml:line) and secrets without buildkitd, before building anything', async () => {
    const registry = uniqueRegistry();
    const extra = ['    secrets:', '      - id: npm', '        env: NPM_TOKEN_FOR_SKIFF_TEST'].join('\n');
    const dir = await project(registry, [A], { app: { dockerfile: `FROM ${BASE}\nRUN true\n`, extra }, other: { dockerfile: `FROM ${BASE}\nRUN true\n` } });
    const r = await skiff(['build', '--push'], { cwd: dir, env: { ...ENV, NPM_TOKEN_FOR_SKIFF_TEST: undefined } });
    expect(r.exitCode, r.all).toBe(2);
    expect(r.stderr).toMatch(
      /skiff\.yaml:\d+:\d+: build secret "npm" of image app comes from the environment variable NPM_TOKEN_FOR_SKIFF_TEST, which is not set/,
    );
    expect(await registryTags(`${registry}/app`)).toEqual([]);
    expect(await registryTags(`${registry}/other`)).toEqual([]);

    const file = await project(registry, [A], { app: { dockerfile: `FROM ${BASE}\n`, extra: '    secrets:\n      - {id: netrc, file: no/such/netrc}' } });
    const f = await skiff(['build', '--push'], { cwd: file, env: ENV });
    expect(f.exitCode, f.all).toBe(2);
    expect(f.stderr).toMatch(/skiff\.yaml:\d+:\d+: build secret "netrc" of image app comes from the file .*no\/such\/netrc, which cannot be read/);

    const engine = await project(registry, [], { app: { dockerfile: `FROM ${BASE}\n`, extra } });
    const e = await skiff(['build', '--push'], { cwd: engine, env: { ...ENV, NPM_TOKEN_FOR_SKIFF_TEST: 'x' } });
    expect(e.exitCode, e.all).toBe(2);
    expect(e.stderr).toMatch(/skiff\.yaml:\d+:\d+: image app uses build secret "npm", and build secrets need a buildkitd builder/);
    expect(await registryTags(`${registry}/app`)).toEqual([]);
  });

  it('sends each image to the same builder every time, and past a builder that is down, with a warning', async () => {
    const registry = uniqueRegistry();
    const names = ['api', 'web', 'worker', 'cron'];
    const images = Object.fromEntries(
      names.map((n) => [n, { dockerfile: `FROM ${BASE}\nCOPY f.txt /f.txt\nRUN cat /f.txt\n`, files: { 'f.txt': `${n} 1\n` } }]),
    );
    const dir = await project(registry, [A, B], images);
    const first = await skiff(['build', '--push', '-o', 'json'], { cwd: dir, env: ENV });
    expect(first.exitCode, first.all).toBe(0);
    for (const n of names) expect(builtImages(first.stdout)[n]!.builtBy).toBe(`buildkitd ${builderOrder(`${registry}/${n}`, [A, B])[0]}`);
    for (const n of names) await writeFile(join(dir, n, 'f.txt'), `${n} 2\n`);
    await commitAll(dir, 'change');
    const second = await skiff(['build', '--push', '-o', 'json'], { cwd: dir, env: ENV });
    expect(second.exitCode, second.all).toBe(0);
    for (const n of names) expect(builtImages(second.stdout)[n]!.builtBy).toBe(builtImages(first.stdout)[n]!.builtBy);

    // An image whose first choice is the builder that is down goes to the other, with a warning.
    const downRegistry = uniqueRegistry();
    const name = ['one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight'].find((n) => builderOrder(`${downRegistry}/${n}`, [DOWN, A])[0] === DOWN)!;
    const down = await project(downRegistry, [DOWN, A], { [name]: { dockerfile: `FROM ${BASE}\nRUN true\n` } });
    const r = await skiff(['build', '--push', '-o', 'json'], { cwd: down, env: ENV });
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(
      new RegExp(`warning: ${name}: buildkitd ${DOWN} \\(dial tcp 127\\.0\\.0\\.1:1239: connect: connection refused\\) unreachable; building on ${A} instead`),
    );
    expect(builtImages(r.stdout)[name]!.builtBy).toBe(`buildkitd ${A}`);

    // All of them down: exit 3 naming each.
    const none = await project(uniqueRegistry(), ['tcp://127.0.0.1:1238', DOWN], { app: { dockerfile: `FROM ${BASE}\n` } });
    const n = await skiff(['build', '--push'], { cwd: none, env: ENV });
    expect(n.exitCode, n.all).toBe(3);
    expect(n.stderr).toMatch(
      /no buildkitd builder is reachable: tcp:\/\/127\.0\.0\.1:\d+ \(.*connection refused\); tcp:\/\/127\.0\.0\.1:\d+ \(.*connection refused\)/,
    );
  });

  it('stops with exit 3 on a certificate buildkitd does not trust, and pushes nothing', async () => {
    const registry = uniqueRegistry();
    const dir = await project(registry, [], { app: { dockerfile: `FROM ${BASE}\n` } });
    // The fresh-runner dockerd's client certificates: another CA.
    const other = join(STATE, 'docker-tls', 'certs', 'client');
    const yaml = await readFile(join(dir, 'skiff.yaml'), 'utf8');
    await writeFile(join(dir, 'skiff.yaml'), yaml.replace('images:', `${builderYaml([A], other)}\nimages:`));
    await commitAll(dir, 'other certs');
    const r = await skiff(['build', '--push'], { cwd: dir, env: ENV });
    expect(r.exitCode, r.all).toBe(3);
    expect(r.stderr).toMatch(
      /error: buildkitd at tcp:\/\/127\.0\.0\.1:1234 \(skiff\.yaml:3:\d+\): TLS handshake failed \(.*(certificate|tls).*\); check its ca, cert and key/,
    );
    expect(await registryTags(`${registry}/app`)).toEqual([]);
  });

  it('reports a Dockerfile syntax error at file:line with exit 1, and pushes nothing', async () => {
    const registry = uniqueRegistry();
    const dir = await project(registry, [A], { app: { dockerfile: `FROM ${BASE}\nRUN true\nCOPPY a b\n` } });
    const r = await skiff(['build', '--push'], { cwd: dir, env: ENV });
    expect(r.exitCode, r.all).toBe(1);
    expect(r.stderr).toMatch(/error: image app: app\/Dockerfile:3: .*unknown instruction: COPPY/i);
    expect(await registryTags(`${registry}/app`)).toEqual([]);
    expect(await registryTags(`${registry}/app/cache`)).toEqual([]);
  });

  it('cleanup deletes the cache entry of a deleted branch and keeps the others', async () => {
    const registry = uniqueRegistry();
    const dir = await project(registry, [A], { app: { dockerfile: `FROM ${BASE}\nCOPY f.txt /f.txt\n`, files: { 'f.txt': 'main\n' } } });
    expect((await skiff(['build', '--push'], { cwd: dir, env: ENV })).exitCode).toBe(0);
    for (const branch of ['feature/gone', 'feature/live']) {
      await git(dir, 'checkout', '-q', '-b', branch, 'main');
      await writeFile(join(dir, 'app', 'f.txt'), `${branch}\n`);
      await commitAll(dir, branch);
      const b = await skiff(['build', '--push'], { cwd: dir, env: ENV });
      expect(b.exitCode, b.all).toBe(0);
    }
    await git(dir, 'checkout', '-q', 'main');
    await git(dir, 'branch', '-q', '-D', 'feature/gone');
    expect((await registryTags(`${registry}/app/cache`)).sort()).toEqual(['feature-gone', 'feature-live', 'main']);

    const dry = await skiff(['cleanup', '--min-age', '0s', '--dry-run'], { cwd: dir, env: ENV });
    expect(dry.exitCode, dry.all).toBe(0);
    expect(dry.all).toMatch(new RegExp(`app cache: would delete \\(${registry}/app/cache:feature-gone \\(no such branch any more\\)`));
    expect((await registryTags(`${registry}/app/cache`)).sort()).toEqual(['feature-gone', 'feature-live', 'main']);

    const r = await skiff(['cleanup', '--min-age', '0s', '-o', 'json'], { cwd: dir, env: ENV });
    expect(r.exitCode, r.all).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ deletedCache: [{ image: 'app', tags: ['feature-gone'] }], keptCache: 2 });
    expect((await registryTags(`${registry}/app/cache`)).sort()).toEqual(['feature-live', 'main']);
  });
});

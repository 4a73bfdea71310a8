#!/usr/bin/env node
// P8: a one-file change built and pushed by a CI job that starts with an empty Docker.
// The project: FROM the base image, a dependency layer of 10 s of work and 20 MB
// (RUN sleep 10; dd 20 MB), then the app's file. The previous pipeline built and pushed
// it on the long-lived Engine (skiff: `skiff build --push`; docker: BuildKit with
// BUILDKIT_INLINE_CACHE=1, pushed). Then, for every run, app.txt changes, the fresh-runner
// Engine (tcp://127.0.0.1:2376, TLS: GitLab's docker:dind) is emptied, and each side builds
// and pushes the new image there:
//   skiff build --push                          — BuildKit, cache from the previous build's tags;
//   docker build --no-cache + docker push       — what the job costs with no layer cache at all;
//   docker build --cache-from <previous image>  — BuildKit's inline cache, the usual GitLab
//     (DOCKER_BUILDKIT=1, BUILDKIT_INLINE_CACHE=1)  recipe, + docker push; the previous image is the
//                                                 one the previous run of this side pushed, as in a
//                                                 pipeline (skiff's previous build is its branch tag).
// Each side's cached steps per run are printed: Docker 20.10's BuildKit writes an incomplete inline
// cache after importing one from a registry (moby/buildkit#2274), so the plain recipe misses every
// second time; skiff pulls the previous build first, which keeps the cache whole.
// A docker CLI without the buildx plugin cannot build with BuildKit; then the docker side is
// the Engine request that `DOCKER_BUILDKIT=1 docker build` makes (POST /build?version=2 with
// the context as a tar body), sent by tar | curl, and pushed with `docker push`.
// Emptying the Engine and pulling the base image (the job's before_script) are not timed.
// Then the same on a standalone buildkitd (scripts/services, tcp://127.0.0.1:1234) with the
// registry cache (mode=max): before every run the builder's local cache is pruned (a new,
// ephemeral builder, as a job's buildkitd service is), and skiff build --push (builder:) is timed
// against `buildctl build` of the same context with no cache import, pushed from the builder.
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { git, list, localTags, median, nonce, removeImages, repoRoot, run, skiffBin, skiffEnv, summary, tempDir, timed } from './lib.mjs';

const N = Number(process.env.BENCH_RUNS ?? 3);
const BUDGET_MS = 300_000;
const SERVICES = join(repoRoot, 'scripts', 'services');
const BASE = 'skiff-base/busybox:1';
const DEPENDENCY = `RUN sh -c 'sleep 10; dd if=/dev/urandom of=/dep bs=1M count=20'`;
const CERTS = join(process.env.SKIFF_STATE ?? '/var/lib/skiff-dev', 'docker-tls', 'certs', 'client');
const tlsEnv = { ...process.env, DOCKER_HOST: 'tcp://127.0.0.1:2376', DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: CERTS };
delete tlsEnv.DOCKER_CONTEXT;
const localEnv = { ...process.env, DOCKER_HOST: 'unix:///var/run/docker.sock' };
delete localEnv.DOCKER_TLS_VERIFY;
delete localEnv.DOCKER_CERT_PATH;
delete localEnv.DOCKER_CONTEXT;

const id = nonce();
const registry = `127.0.0.1:5000/bench-p8-${id}`;
const dockerRepo = `${registry}/docker-app`;
let previous = `${dockerRepo}:previous`;
const dir = tempDir('p8');
const appDir = join(dir, 'app');
const buildx = spawnSync('docker', ['buildx', 'version'], { encoding: 'utf8' }).status === 0;
const { BuildTrace } = await import(join(repoRoot, 'dist', 'build', 'buildkit-trace.js'));
const { decodeTraceAux } = await import(join(repoRoot, 'dist', 'build', 'buildkit-status.js'));

/** Empties the fresh runner and gives it the base image, as a job's before_script pulls it. */
function freshRunner() {
  run(SERVICES, ['fresh-runner-reset']);
  run('docker', ['pull', '-q', `127.0.0.1:5000/${BASE}`], { env: tlsEnv });
  run('docker', ['tag', `127.0.0.1:5000/${BASE}`, BASE], { env: tlsEnv });
}

/** The one-file change, committed (skiff builds the commit). */
function change() {
  writeFileSync(join(appDir, 'app.txt'), `${nonce()}\n`);
  git(dir, 'commit', '-q', '-am', 'one file');
}

/**
 * A BuildKit build of app/ in the Engine of `env`, as the docker CLI makes it; returns
 * how many Dockerfile steps BuildKit took from the cache (when the trace is at hand).
 */
function dockerBuild(env, tag, { noCache = false, cacheFrom = [], buildArgs = {} } = {}) {
  if (buildx) {
    const args = ['build', '-q', '--network', 'none', '-t', tag, ...(noCache ? ['--no-cache'] : [])];
    for (const ref of cacheFrom) args.push('--cache-from', ref);
    for (const [k, v] of Object.entries(buildArgs)) args.push('--build-arg', `${k}=${v}`);
    run('docker', [...args, appDir], { env: { ...env, DOCKER_BUILDKIT: '1' } });
    return undefined;
  }
  const query = new URLSearchParams({ version: '2', t: tag, networkmode: 'none', buildargs: JSON.stringify(buildArgs) });
  if (noCache) query.set('nocache', '1');
  if (cacheFrom.length) query.set('cachefrom', JSON.stringify(cacheFrom));
  const tls = env.DOCKER_HOST.startsWith('tcp://');
  const target = tls
    ? ['--cacert', join(CERTS, 'ca.pem'), '--cert', join(CERTS, 'cert.pem'), '--key', join(CERTS, 'key.pem'), `https://127.0.0.1:2376/v1.41/build?${query}`]
    : ['--unix-socket', '/var/run/docker.sock', `http://localhost/v1.41/build?${query}`];
  const out = run('sh', [
    '-c',
    'd=$1; shift; tar -C "$d" -cf - . | curl -sS --fail -X POST -H "Content-Type: application/x-tar" --data-binary @- "$@"',
    'sh',
    appDir,
    ...target,
  ]);
  const trace = new BuildTrace();
  for (const line of out.split('\n').filter(Boolean)) {
    const ev = JSON.parse(line);
    if (ev.errorDetail) throw new Error(`docker build of ${tag} failed: ${ev.errorDetail.message}`);
    if (ev.id === 'moby.buildkit.trace') trace.update(decodeTraceAux(ev.aux));
  }
  return trace.counts.cachedSteps;
}

function dockerPush(env, tag) {
  run('docker', ['push', '-q', tag], { env });
}

let runs = 0;
const cachedSteps = { skiff: [], noCache: [], cacheFrom: [] };
const sides = {
  skiff() {
    change();
    const r = timed(skiffBin, ['build', '--push', '--registry', registry, '-o', 'json'], { cwd: dir, env: { ...skiffEnv, ...tlsEnv } });
    const app = JSON.parse(r.stdout).images[0];
    if (!app.built || app.builder !== 'buildkit') throw new Error(`skiff did not build app with BuildKit:\n${r.stdout}\n${r.stderr}`);
    cachedSteps.skiff.push(app.cachedSteps);
    return r.ms;
  },
  noCache() {
    change();
    const tag = `${dockerRepo}:nocache-${runs}`;
    const t0 = performance.now();
    cachedSteps.noCache.push(dockerBuild(tlsEnv, tag, { noCache: true }) ?? '?');
    dockerPush(tlsEnv, tag);
    return performance.now() - t0;
  },
  cacheFrom() {
    change();
    const tag = `${dockerRepo}:cachefrom-${runs}`;
    const t0 = performance.now();
    cachedSteps.cacheFrom.push(dockerBuild(tlsEnv, tag, { cacheFrom: [previous], buildArgs: { BUILDKIT_INLINE_CACHE: '1' } }) ?? '?');
    dockerPush(tlsEnv, tag);
    previous = tag;
    return performance.now() - t0;
  },
};

try {
  mkdirSync(appDir);
  writeFileSync(join(dir, 'skiff.yaml'), 'project: p8\nimages:\n  app:\n    context: app\n');
  writeFileSync(join(appDir, 'Dockerfile'), `FROM ${BASE}\n${DEPENDENCY}\nCOPY app.txt /app.txt\n`);
  writeFileSync(join(appDir, 'app.txt'), 'first\n');
  git(dir, 'init', '-q', '-b', 'main');
  git(dir, 'add', '-A');
  git(dir, 'commit', '-q', '-m', 'bench');
  console.log(
    `P8: one-file change on an empty Engine; docker side: ${buildx ? 'docker build with DOCKER_BUILDKIT=1 (buildx)' : 'POST /build?version=2 by tar | curl (no buildx plugin for this docker CLI)'}`,
  );

  // The previous pipeline, on the long-lived Engine (untimed): both sides' caches go to the registry.
  const t0 = performance.now();
  timed(skiffBin, ['build', '--push', '--registry', registry], { cwd: dir, env: { ...skiffEnv, ...localEnv } });
  dockerBuild(localEnv, previous, { buildArgs: { BUILDKIT_INLINE_CACHE: '1' } });
  dockerPush(localEnv, previous);
  console.log(`previous builds pushed in ${list([performance.now() - t0])}`);

  const times = { skiff: [], noCache: [], cacheFrom: [] };
  const order = Object.keys(sides);
  const start = performance.now();
  for (; runs < N && performance.now() - start < BUDGET_MS; runs++) {
    // Rotate who goes first, so no side always follows the same one.
    for (let k = 0; k < order.length; k++) {
      const side = order[(runs + k) % order.length];
      freshRunner();
      times[side].push(sides[side]());
    }
  }
  const cached = (side) => `(steps from the cache: ${cachedSteps[side].join(' ')})`;
  console.log(`skiff build --push:                         ${list(times.skiff)}  median ${list([median(times.skiff)])}  ${cached('skiff')}`);
  console.log(`docker build --no-cache + push:             ${list(times.noCache)}  median ${list([median(times.noCache)])}  ${cached('noCache')}`);
  console.log(`docker build --cache-from previous + push:  ${list(times.cacheFrom)}  median ${list([median(times.cacheFrom)])}  ${cached('cacheFrom')}`);
  console.log(summary('P8 fresh runner, one-file change (vs no layer cache)', median(times.skiff), 'docker build --no-cache', median(times.noCache), 0.25));
  console.log(summary('P8 fresh runner, one-file change (vs --cache-from)', median(times.skiff), 'docker build --cache-from', median(times.cacheFrom), 1.05));
  // Pipelines run one after the other: the whole sequence shows what a cache that misses every second time costs.
  const total = (xs) => xs.reduce((a, b) => a + b, 0);
  console.log(summary(`P8 fresh runner, ${runs} pipelines in a row (total)`, total(times.skiff), 'docker build --cache-from', total(times.cacheFrom), 1.05));
} finally {
  removeImages([...localTags(registry)]);
  rmSync(dir, { recursive: true, force: true });
  spawnSync(SERVICES, ['fresh-runner-reset'], { encoding: 'utf8' });
}

// P8 on buildkitd: the builder forgets everything before each run; the registry cache remembers.
{
  const BK = 'tcp://127.0.0.1:1234';
  const BK_CERTS = join(process.env.SKIFF_STATE ?? '/var/lib/skiff-dev', 'buildkitd-tls', 'client');
  const buildctl = join(repoRoot, '.skiff', 'bin', 'buildctl');
  const tlsArgs = ['--addr', BK, '--tlscacert', join(BK_CERTS, 'ca.pem'), '--tlscert', join(BK_CERTS, 'cert.pem'), '--tlskey', join(BK_CERTS, 'key.pem')];
  const bkRegistry = `127.0.0.1:5000/bench-p8bk-${nonce()}`;
  const bkDir = tempDir('p8bk');
  const bkApp = join(bkDir, 'app');
  const env = { ...skiffEnv, PATH: `${join(repoRoot, '.skiff', 'bin')}:${process.env.PATH}` };
  const prune = () => run(buildctl, [...tlsArgs, 'prune', '--all']);
  const oneFile = () => {
    writeFileSync(join(bkApp, 'app.txt'), `${nonce()}\n`);
    git(bkDir, 'commit', '-q', '-am', 'one file');
  };
  try {
    mkdirSync(bkApp);
    writeFileSync(
      join(bkDir, 'skiff.yaml'),
      `project: p8bk\nregistry: ${bkRegistry}\nbuilder:\n  address: ${BK}\n  ca: ${BK_CERTS}/ca.pem\n  cert: ${BK_CERTS}/cert.pem\n  key: ${BK_CERTS}/key.pem\nimages:\n  app:\n    context: app\n`,
    );
    writeFileSync(join(bkApp, 'Dockerfile'), `FROM 127.0.0.1:5000/${BASE}\n${DEPENDENCY}\nCOPY app.txt /app.txt\n`);
    writeFileSync(join(bkApp, 'app.txt'), 'first\n');
    git(bkDir, 'init', '-q', '-b', 'main');
    git(bkDir, 'add', '-A');
    git(bkDir, 'commit', '-q', '-m', 'bench');
    timed(skiffBin, ['build', '--push'], { cwd: bkDir, env }); // the previous pipeline (untimed)
    const skiffTimes = [];
    const cold = [];
    const cachedBk = [];
    for (let i = 0; i < N; i++) {
      oneFile();
      prune();
      const r = timed(skiffBin, ['build', '--push', '-o', 'json'], { cwd: bkDir, env });
      const app = JSON.parse(r.stdout).images[0];
      if (!app.built || app.builder !== 'buildkitd') throw new Error(`skiff did not build app on buildkitd:\n${r.stdout}\n${r.stderr}`);
      cachedBk.push(`${app.cachedSteps}/${app.steps}`);
      skiffTimes.push(r.ms);
      oneFile();
      prune();
      const c = timed(buildctl, [
        ...tlsArgs,
        'build',
        '--frontend',
        'dockerfile.v0',
        '--local',
        `context=${bkApp}`,
        '--local',
        `dockerfile=${bkApp}`,
        '--output',
        `type=image,name=${bkRegistry}/buildctl:${i},push=true`,
      ]);
      cold.push(c.ms);
    }
    console.log(
      `buildkitd: skiff build --push (registry cache):  ${list(skiffTimes)}  median ${list([median(skiffTimes)])}  (steps from the cache: ${cachedBk.join(' ')})`,
    );
    console.log(`buildkitd: buildctl build + push (no cache):      ${list(cold)}  median ${list([median(cold)])}`);
    console.log(summary('P8 fresh buildkitd, one-file change (vs no cache)', median(skiffTimes), 'buildctl build, no cache', median(cold), 0.25));
  } finally {
    rmSync(bkDir, { recursive: true, force: true });
  }
}

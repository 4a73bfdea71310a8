#!/usr/bin/env node
// P2: uncached builds of fixtures/hello, skiff against the `docker build` CLI
// doing the same builds, in two shapes:
//   worker          — `skiff build worker` vs one `docker build` of worker/;
//   hello, 3 images — `skiff build` (base, app FROM base, worker; --parallel 2)
//                     vs `docker build` base then app, with worker alongside.
// Before every run the inputs get a unique nonce (a line in worker.sh, a
// shell comment on base's RUN), so no step after FROM hits the layer cache on
// either side; app misses because its base is new.
//   worker + build work — the worker image with a RUN step of ≥10 s of CPU
//                     work, the shape of a real build (a compile, a bundle):
//                     skiff's fixed costs (Node start, git, one LABEL step)
//                     against a build that does something. This is P2's target
//                     (≤1.05×); skiff's fixed overhead (median difference, ms)
//                     is printed beside it.
import { appendFileSync, cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { dockerBuilder, git, list, localTags, median, nonce, removeImages, repoRoot, runAsync, skiffBin, skiffEnv, summary, tempDir, timed } from './lib.mjs';

const N = Number(process.env.BENCH_RUNS ?? 5);
const BUDGET_MS = 120_000;
const id = nonce();
const registry = `127.0.0.1:5000/bench-${id}`;
const dockerRepo = `skiff-bench-p2-${id}`;
const dir = tempDir('p2');
const builder = dockerBuilder();
const dockerTags = [];

function bust() {
  appendFileSync(join(dir, 'worker', 'worker.sh'), `# ${nonce()}\n`);
  // A RUN step with work (third shape) sits before COPY worker.sh: give it its own nonce.
  const workerDockerfile = join(dir, 'worker', 'Dockerfile');
  writeFileSync(workerDockerfile, readFileSync(workerDockerfile, 'utf8').replace(/done( #.*)?$/m, `done # ${nonce()}`));
  writeFileSync(join(dir, 'base', 'Dockerfile'), `${baseDockerfile.trimEnd()} # ${nonce()}\n`);
}

function skiff(images) {
  bust();
  git(dir, 'commit', '-q', '-am', 'bust'); // skiff builds the commit
  const r = timed(skiffBin, ['build', ...images, '--registry', registry], { cwd: dir, env: skiffEnv });
  for (const image of images.length ? images : ['base', 'app', 'worker']) {
    if (!new RegExp(`${image}: built`).test(r.stderr)) throw new Error(`skiff did not build ${image}:\n${r.stderr}`);
  }
  return r.ms;
}

function dockerBuild(image, args = []) {
  const tag = `${dockerRepo}/${image}:${dockerTags.length}`;
  dockerTags.push(tag);
  return { tag, done: runAsync('docker', ['build', '-q', '-t', tag, ...args, join(dir, image)], { env: builder.env }) };
}

async function docker(images) {
  bust();
  const extra = [];
  const t0 = performance.now();
  if (images.length) {
    await dockerBuild('worker', extra).done;
  } else {
    const baseThenApp = async () => {
      const base = dockerBuild('base', extra);
      await base.done;
      await dockerBuild('app', ['--build-arg', `BASE_IMAGE=${base.tag}`, '--build-arg', 'APP_ENV=production', ...extra]).done;
    };
    await Promise.all([baseThenApp(), dockerBuild('worker', extra).done]);
  }
  return performance.now() - t0;
}

async function measure(label, images) {
  console.log(`${label}: unmeasured warm-up: skiff ${list([skiff(images)])}, docker build ${list([await docker(images)])}`);
  const s = [];
  const d = [];
  const order = [async () => s.push(skiff(images)), async () => d.push(await docker(images))];
  const start = performance.now();
  for (let i = 0; i < N && performance.now() - start < BUDGET_MS / 2; i++) {
    // Rotate who goes first, so no side always follows the same one.
    for (let k = 0; k < order.length; k++) await order[(i + k) % order.length]();
  }
  console.log(`${label}: skiff build (uncached):          ${list(s)}  median ${list([median(s)])}`);
  console.log(`${label}: docker build -q (uncached):      ${list(d)}  median ${list([median(d)])}`);
  return `${summary(`P2 cold build (${label})`, median(s), 'docker build', median(d), 1.05)}; skiff overhead ${Math.round(median(s) - median(d))} ms`;
}

let baseDockerfile;
try {
  cpSync(join(repoRoot, 'fixtures', 'hello'), dir, { recursive: true });
  baseDockerfile = readFileSync(join(dir, 'base', 'Dockerfile'), 'utf8');
  git(dir, 'init', '-q', '-b', 'main');
  git(dir, 'add', '-A');
  git(dir, 'commit', '-q', '-m', 'bench');
  console.log(`P2: fixtures/hello in ${dir}; docker build uses the ${builder.name}`);
  const lines = [await measure('worker', ['worker']), await measure('hello, 3 images', [])];
  // The same worker image with a build step that takes time, like a compile.
  const workerDockerfile = join(dir, 'worker', 'Dockerfile');
  writeFileSync(
    workerDockerfile,
    readFileSync(workerDockerfile, 'utf8').replace('COPY worker.sh', 'RUN i=0; while [ $i -lt 10000000 ]; do i=$((i+1)); done\nCOPY worker.sh'),
  );
  git(dir, 'commit', '-q', '-am', 'a build step with work');
  lines.push(await measure('worker + RUN step of >=10 s', ['worker']));
  for (const line of lines) console.log(line);
} finally {
  removeImages([...localTags(registry), ...dockerTags]);
  rmSync(dir, { recursive: true, force: true });
}

#!/usr/bin/env node
// P9: four images built on a pool of two standalone buildkitd against one (scripts/services:
// tcp://127.0.0.1:1234 and :1235, TLS). Each image: FROM the base image, a dependency step of
// ~3 s (sleep + 4 MB written), then its own file. Per run, every image's file changes (new commit)
// and the images are built and pushed with `skiff build --push --parallel 4`:
//   cold  — new dependency steps too (a nonce in the Dockerfile): every step runs;
//   warm  — only the files change: each builder's local cache should serve the dependency step,
//           which needs each image to go to the same builder every time (stable assignment).
// Printed: wall time per shape and pool, medians, and the cached steps BuildKit reported.
// The images are assigned by a hash of their repository: the registry prefix is chosen so that the
// four split two and two over the two builders, as many images do on average (four alone may not).
import { rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { git, list, median, nonce, repoRoot, skiffBin, skiffEnv, summary, tempDir, timed } from './lib.mjs';

const N = Number(process.env.BENCH_RUNS ?? 3);
const CERTS = join(process.env.SKIFF_STATE ?? '/var/lib/skiff-dev', 'buildkitd-tls', 'client');
const BUILDERS = ['tcp://127.0.0.1:1234', 'tcp://127.0.0.1:1235'];
const IMAGES = ['api', 'web', 'worker', 'cron'];
const env = { ...skiffEnv, PATH: `${join(repoRoot, '.skiff', 'bin')}:${process.env.PATH}` };

const { builderOrder } = await import(join(repoRoot, 'dist', 'build', 'builder-pool.js'));

/** A registry prefix whose four images split evenly over the two builders. */
function evenRegistry() {
  for (;;) {
    const registry = `127.0.0.1:5000/bench-p9-${nonce()}`;
    const first = IMAGES.map((n) => builderOrder(`${registry}/${n}`, BUILDERS)[0]);
    if (first.filter((a) => a === BUILDERS[0]).length === 2) return registry;
  }
}

const yaml = (registry, builders) =>
  [
    'project: p9',
    `registry: ${registry}`,
    'builder:',
    ...builders.flatMap((a) => [`  - address: ${a}`, `    ca: ${CERTS}/ca.pem`, `    cert: ${CERTS}/cert.pem`, `    key: ${CERTS}/key.pem`]),
    'images:',
    ...IMAGES.flatMap((n) => [`  ${n}:`, `    context: ${n}`]),
    '',
  ].join('\n');

function setup(builders) {
  const dir = tempDir('p9');
  const registry = evenRegistry();
  for (const n of IMAGES) {
    mkdirSync(join(dir, n));
    writeFileSync(join(dir, n, 'f.txt'), `${n}\n`);
  }
  writeFileSync(join(dir, 'skiff.yaml'), yaml(registry, builders));
  git(dir, 'init', '-q', '-b', 'main');
  return dir;
}

function dockerfiles(dir, id) {
  for (const n of IMAGES) {
    writeFileSync(
      join(dir, n, 'Dockerfile'),
      `FROM 127.0.0.1:5000/skiff-base/busybox:1\nRUN sh -c 'sleep 3; dd if=/dev/urandom of=/dep bs=1M count=4 2>/dev/null; echo ${id}'\nCOPY f.txt /f.txt\n`,
    );
  }
}

function build(dir, change) {
  for (const n of IMAGES) writeFileSync(join(dir, n, 'f.txt'), `${n} ${nonce()}\n`);
  change?.();
  git(dir, 'add', '-A');
  git(dir, 'commit', '-q', '-m', 'change');
  const r = timed(skiffBin, ['build', '--push', '--parallel', '4', '-o', 'json'], { cwd: dir, env });
  const images = JSON.parse(r.stdout).images;
  return {
    ms: r.ms,
    cached: images.reduce((s, i) => s + (i.cachedSteps ?? 0), 0),
    steps: images.reduce((s, i) => s + (i.steps ?? 0), 0),
    by: images.map((i) => i.builtBy),
  };
}

const results = {};
const dirs = [];
try {
  for (const [label, builders] of [
    ['two builders', BUILDERS],
    ['one builder', BUILDERS.slice(0, 1)],
  ]) {
    const dir = setup(builders);
    dirs.push(dir);
    dockerfiles(dir, nonce());
    build(dir); // unmeasured: fills the builders' caches for the warm runs
    const cold = [];
    const warm = [];
    for (let i = 0; i < N; i++) {
      cold.push(build(dir, () => dockerfiles(dir, nonce())));
      warm.push(build(dir));
    }
    const assignment = [...new Set(warm.flatMap((w) => w.by))].join(', ');
    console.log(
      `${label}: cold ${list(cold.map((c) => c.ms))} median ${list([median(cold.map((c) => c.ms))])}; cached steps ${cold.map((c) => `${c.cached}/${c.steps}`).join(' ')}`,
    );
    console.log(
      `${label}: warm ${list(warm.map((c) => c.ms))} median ${list([median(warm.map((c) => c.ms))])}; cached steps ${warm.map((c) => `${c.cached}/${c.steps}`).join(' ')}; built by ${assignment}`,
    );
    results[label] = { cold: median(cold.map((c) => c.ms)), warm: median(warm.map((c) => c.ms)) };
  }
  console.log(summary('P9 four images, cold, two buildkitd', results['two builders'].cold, 'one buildkitd', results['one builder'].cold, 1.0));
  console.log(summary('P9 four images, one-file change, two buildkitd', results['two builders'].warm, 'one buildkitd', results['one builder'].warm, 1.0));
} finally {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}

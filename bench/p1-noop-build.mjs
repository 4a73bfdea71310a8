#!/usr/bin/env node
// P1: a no-op `skiff build --push` (nothing changed since the last push) on a
// 10,000-file context, against `docker build -q` of the same context with a
// warm layer cache. Both answer "this image is up to date"; skiff should do it
// from Git object ids and one registry round trip, without sending the context.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { dockerBuilder, git, list, localTags, median, nonce, removeImages, skiffBin, skiffEnv, summary, tempDir, timed } from './lib.mjs';

const N = Number(process.env.BENCH_RUNS ?? 5);
const FILES = Number(process.env.BENCH_FILES ?? 10_000);
const BUDGET_MS = 120_000; // docker build of 10,000 files takes seconds even when cached
const id = nonce();
const registry = `127.0.0.1:5000/bench-${id}`;
const dockerTag = `skiff-bench-p1-${id}:docker`;
const dir = tempDir('p1');

function makeRepo() {
  writeFileSync(join(dir, 'skiff.yaml'), `project: bench\nregistry: ${registry}\nimages:\n  app:\n    context: .\n`);
  writeFileSync(join(dir, 'Dockerfile'), 'FROM skiff-base/busybox:1\nCOPY . /srv\n');
  // docker build would otherwise send .git too; skiff sends tracked files only.
  writeFileSync(join(dir, '.dockerignore'), '.git\n');
  for (let d = 0; d < FILES / 100; d++) {
    const sub = join(dir, 'src', `dir${String(d).padStart(2, '0')}`);
    mkdirSync(sub, { recursive: true });
    for (let f = 0; f < 100; f++) {
      const n = d * 100 + f;
      writeFileSync(join(sub, `file${String(n).padStart(4, '0')}.txt`), `file ${n}\n`);
    }
  }
  git(dir, 'init', '-q', '-b', 'main');
  git(dir, 'add', '-A');
  git(dir, 'commit', '-q', '-m', 'bench');
}

const builder = dockerBuilder();
try {
  makeRepo();
  console.log(`P1: ${FILES} files in ${dir}; docker build uses the ${builder.name}`);

  const skiff = () => timed(skiffBin, ['build', '--push'], { cwd: dir, env: skiffEnv });
  const docker = () => timed('docker', ['build', '-q', '-t', dockerTag, dir], { env: builder.env });

  const cold = skiff();
  const warm = docker();
  console.log(`unmeasured: cold skiff build --push ${list([cold.ms])}, docker build cache warm-up ${list([warm.ms])}`);

  const s = [];
  const d = [];
  const ids = new Set();
  const start = performance.now();
  for (let i = 0; i < N && performance.now() - start < BUDGET_MS; i++) {
    const r = skiff();
    if (!/app: unchanged/.test(r.stderr)) throw new Error(`skiff rebuilt or pushed on a no-op run:\n${r.stderr}`);
    s.push(r.ms);
    const b = docker();
    ids.add(b.stdout.trim());
    d.push(b.ms);
  }
  if (ids.size !== 1) console.log(`warning: docker build gave ${ids.size} different image ids; its cache was not hit every time`);
  console.log(`skiff build --push (no-op): ${list(s)}  median ${list([median(s)])}`);
  console.log(`docker build -q (cached):   ${list(d)}  median ${list([median(d)])}`);
  console.log(summary('P1 no-op build', median(s), 'docker build', median(d), 0.1));
} finally {
  removeImages([dockerTag, ...localTags(registry)]);
  rmSync(dir, { recursive: true, force: true });
}

#!/usr/bin/env node
// Startup: `bin/skiff --version` in a fresh process against `node -e 0` (the
// floor any Node CLI pays), alternating, after one unmeasured run of each.
import { list, median, skiffBin, skiffEnv, summary, timed } from './lib.mjs';

const N = Number(process.env.BENCH_RUNS ?? 20);
const skiff = () => timed(skiffBin, ['--version'], { env: skiffEnv }).ms;
const node = () => timed(process.execPath, ['-e', '0']).ms;

skiff();
node();
const s = [];
const n = [];
for (let i = 0; i < N; i++) {
  if (i % 2) {
    n.push(node());
    s.push(skiff());
  } else {
    s.push(skiff());
    n.push(node());
  }
}
console.log(`startup: node ${process.version} (${process.execPath})`);
console.log(`bin/skiff --version: ${list(s)}  median ${list([median(s)])}`);
console.log(`node -e 0:           ${list(n)}  median ${list([median(n)])}`);
console.log(summary('Startup (--version)', median(s), 'node -e 0', median(n), 2.5));

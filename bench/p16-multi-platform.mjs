#!/usr/bin/env node
// P16: a two-platform image (linux/amd64 + linux/arm64) of a project with one RUN step that does
// CPU work, built cold (a nonce in the step) and pushed, three ways in the same run:
//   (a) skiff, two builders each native for one platform: :1234 (amd64) and :1236 (which reports
//       linux/arm64 as its own: the test bed's stand-in for an arm64 machine);
//   (b) skiff, one builder (:1234) building both, arm64 under QEMU;
//   (c) the standard tool doing the same work: `buildctl build --opt platform=linux/amd64,linux/arm64`
//       with provenance and the registry cache (mode=max) as skiff writes it, pushed, straight on :1234.
// Printed: wall times and medians, ratios, and CPU seconds: each buildkitd's (its own and its
// reaped children's: runc, the RUN step, QEMU) from /proc/<pid>/stat, and the machine's from
// /proc/stat. On this 2-core amd64 machine the "native" arm64 builder emulates arm64 through
// QEMU exactly as (b) does: (a) shows the routing and the parallelism of two builders, not the
// speed of real arm64 hardware.
import { readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { git, list, median, nonce, repoRoot, secs, skiffBin, skiffEnv, summary, tempDir, timed } from './lib.mjs';

const N = Number(process.env.BENCH_RUNS ?? 3);
const STATE = process.env.SKIFF_STATE ?? '/var/lib/skiff-dev';
const CERTS = join(STATE, 'buildkitd-tls', 'client');
const BUILDCTL = join(repoRoot, '.skiff', 'bin', 'buildctl');
const AMD = 'tcp://127.0.0.1:1234';
const ARM = 'tcp://127.0.0.1:1236';
const BASE = '127.0.0.1:5000/skiff-base/busybox-multi:1';
const env = { ...skiffEnv, PATH: `${join(repoRoot, '.skiff', 'bin')}:${process.env.PATH}` };
const tls = ['--tlscacert', `${CERTS}/ca.pem`, '--tlscert', `${CERTS}/cert.pem`, '--tlskey', `${CERTS}/key.pem`];

/** A shell loop: about a second natively, many under QEMU. */
const dockerfile = (id) => `FROM ${BASE}\nRUN sh -c 'i=0; while [ $i -lt 150000 ]; do i=$((i+1)); done; echo ${id} $i > /n'\n`;

const CLK_TCK = 100;
/** CPU seconds a buildkitd and its reaped children have used (utime stime cutime cstime). */
function daemonCpu(port) {
  const pid = readFileSync(join(STATE, `buildkitd-${port}.pid`), 'utf8').trim();
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return fields.slice(11, 15).reduce((s, f) => s + Number(f), 0) / CLK_TCK;
}
/** The machine's busy CPU seconds (all cores; other work on the machine counts too). */
function machineCpu() {
  const [, ...f] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = f;
  return (user + nice + system + irq + softirq + steal) / CLK_TCK;
}
const cpu = () => ({ b1234: daemonCpu(1234), b1236: daemonCpu(1236), machine: machineCpu(), self: process.cpuUsage() });

function measure(fn) {
  const before = cpu();
  const { ms, extra } = fn();
  const after = cpu();
  const client = (after.self.user + after.self.system - before.self.user - before.self.system) / 1e6;
  return { ms, builders: after.b1234 - before.b1234 + (after.b1236 - before.b1236), machine: after.machine - before.machine, client, extra };
}

function project(label, builders) {
  const dir = tempDir(`p16-${label}`);
  const registry = `127.0.0.1:5000/bench-p16-${label}-${nonce()}`;
  mkdirSync(join(dir, 'app'));
  writeFileSync(
    join(dir, 'skiff.yaml'),
    [
      'project: p16',
      `registry: ${registry}`,
      'platforms: [linux/amd64, linux/arm64]',
      'builder:',
      ...builders.flatMap((a) => [`  - address: ${a}`, `    ca: ${CERTS}/ca.pem`, `    cert: ${CERTS}/cert.pem`, `    key: ${CERTS}/key.pem`]),
      'images:',
      '  app:',
      '    context: app',
      '',
    ].join('\n'),
  );
  git(dir, 'init', '-q', '-b', 'main');
  return { dir, registry };
}

function skiffRun({ dir }) {
  writeFileSync(join(dir, 'app', 'Dockerfile'), dockerfile(nonce()));
  git(dir, 'add', '-A');
  git(dir, 'commit', '-q', '-m', 'change');
  const r = timed(skiffBin, ['build', '--push', '-o', 'json'], { cwd: dir, env });
  const routes = [...r.stderr.matchAll(/^app (linux\/\S+) on buildkitd (\S+) \((native|emulated)\)$/gm)].map(
    (m) => `${m[1]}→${m[2].replace('tcp://127.0.0.1', '')} ${m[3]}`,
  );
  // With one builder skiff writes the registry cache (as buildctl does here); with two it writes none.
  return { ms: r.ms, extra: routes.join(', ') };
}

function buildctlRun({ dir, registry }) {
  writeFileSync(join(dir, 'app', 'Dockerfile'), dockerfile(nonce()));
  const ctx = join(dir, 'app');
  const r = timed(
    BUILDCTL,
    [
      '--addr',
      AMD,
      ...tls,
      'build',
      '--frontend',
      'dockerfile.v0',
      '--local',
      `context=${ctx}`,
      '--local',
      `dockerfile=${ctx}`,
      '--opt',
      'platform=linux/amd64,linux/arm64',
      '--opt',
      'attest:provenance=mode=max',
      '--import-cache',
      `type=registry,ref=${registry}/app/cache:main`,
      '--export-cache',
      `type=registry,ref=${registry}/app/cache:main,mode=max`,
      '--output',
      `type=image,name=${registry}/app:${nonce()},push=true`,
      '--progress',
      'plain',
    ],
    { env },
  );
  return { ms: r.ms, extra: 'both on :1234, registry cache written' };
}

const shapes = {
  'skiff, two native builders (:1234 amd64 + :1236 arm64 stand-in)': { setup: () => project('two', [AMD, ARM]), run: skiffRun },
  'skiff, one emulating builder (:1234)': { setup: () => project('one', [AMD]), run: skiffRun },
  'buildctl build --opt platform=linux/amd64,linux/arm64 on :1234': { setup: () => project('buildctl', [AMD]), run: buildctlRun },
};

console.log(
  `P16: on this ${readFileSync('/proc/cpuinfo', 'utf8').match(/^processor/gm).length}-core amd64 machine every arm64 RUN step runs under QEMU, on :1236 too ("native" is the platform it reports, not its hardware).`,
);
const dirs = [];
const results = Object.fromEntries(Object.keys(shapes).map((k) => [k, []]));
try {
  const prepared = Object.fromEntries(Object.entries(shapes).map(([k, s]) => [k, s.setup()]));
  for (const p of Object.values(prepared)) dirs.push(p.dir);
  // Unmeasured: the base image into each builder's cache.
  for (const [k, s] of Object.entries(shapes)) s.run(prepared[k]);
  for (let i = 0; i < N; i++) for (const [k, s] of Object.entries(shapes)) results[k].push(measure(() => s.run(prepared[k])));
  for (const [k, rs] of Object.entries(results)) {
    console.log(
      `${k}: ${list(rs.map((r) => r.ms))} median ${secs(median(rs.map((r) => r.ms)))}; CPU s per build: buildkitd ${rs.map((r) => r.builders.toFixed(1)).join(' ')}, machine ${rs.map((r) => r.machine.toFixed(1)).join(' ')}; ${rs[0].extra}`,
    );
  }
  const [two, one, tool] = Object.values(results).map((rs) => median(rs.map((r) => r.ms)));
  console.log(summary('P16 two-platform build, two native builders', two, 'buildctl on one builder', tool, 1.0));
  console.log(summary('P16 two-platform build, one emulating builder', one, 'buildctl on one builder', tool, 1.1));
  console.log(`P16 two native builders vs one emulating builder: ${(two / one).toFixed(2)}x wall time`);
} finally {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}

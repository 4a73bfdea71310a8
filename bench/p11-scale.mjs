#!/usr/bin/env node
// P11, 15,000 pods: 500 Deployments × 30 replicas on 500 kwok-simulated nodes
// (scripts/cluster up --sim --nodes 500). skiff deploy until ready, once:
// skiff's peak RSS (target <= 250 MiB), the verdict's latency after the last
// pod became Ready as a separate watch saw it (target <= 2 s), and skiff's API
// requests per minute while it tracked (the sim API server's audit log).
// Slow (minutes: the real controllers and scheduler create and place 15,000
// pods on 2 cores), so bench/run runs it only with BENCH_P11=1.
//
// Left out by the simulation: image pulls and real container starts (kwok
// marks a scheduled pod Running and Ready after 1–2 s), kubelets, probes.
import { secs, skiffBin, timed } from './lib.mjs';
import { auditOffset, auditRequests, benchEnv, k, measured, mib, realClusterRssMiB, scaleProject, simUp, watchPodsReady } from './p10-scale-lib.mjs';
import { nonce } from './lib.mjs';

const DEPLOYMENTS = Number(process.env.P11_DEPLOYMENTS ?? 500);
const REPLICAS = 30;
const NODES = Number(process.env.P11_NODES ?? 500);
const PODS = DEPLOYMENTS * REPLICAS;

simUp(NODES);
const env = benchEnv();
const dir = scaleProject(DEPLOYMENTS, REPLICAS);
const build = timed(skiffBin, ['build', '--push'], { cwd: dir, env });
if (!/app: built/.test(build.stderr)) throw new Error(`build failed:\n${build.stderr}`);

const ns = `p11-${nonce()}`;
k('create', 'namespace', ns);
let s;
let seen;
let req;
try {
  const watch = watchPodsReady(ns);
  const offset = auditOffset();
  s = await measured(skiffBin, ['deploy', 'sim', '--namespace', ns, '--timeout', '30m'], { cwd: dir, env, mark: /release \S+ revision 1 deployed/ });
  seen = await watch.stop();
  if (s.code !== 0) throw new Error(`skiff deploy failed:\n${s.stderr.slice(-4000)}`);
  req = auditRequests(offset);
} finally {
  k('delete', 'namespace', ns, '--wait=false', '--ignore-not-found');
}

const latency = seen.ready >= PODS && s.markAt ? s.markAt - seen.lastReadyAt : undefined;
const perMin = req.skiff / (s.ms / 60_000);
const lines = s.stderr.split('\n').length;
const top = Object.entries(req.byVerb)
  .filter(([v]) => v.startsWith('skiff '))
  .sort((a, b) => b[1] - a[1])
  .slice(0, 6)
  .map(([v, n]) => `${v.slice(6)} ${n}`)
  .join(', ');
console.log(`P11 skiff deploy (${PODS} pods on ${NODES} nodes, ready): ${secs(s.ms)}, ${lines} lines of progress`);
console.log(`P11 skiff peak RSS ${mib(s.rssMiB)}, CPU ${s.cpuS.toFixed(1)}s; ${req.skiff} API requests (${top})`);
console.log(`P11 pods seen Ready by a separate watch: ${seen.ready}/${PODS} (${seen.readyNow} Ready by a final list, ${seen.resumes} resumes)`);
console.log(
  `P11 test bed peak: sim cluster ${mib(s.bed.simMiB)} RSS, real cluster ${mib(realClusterRssMiB())} RSS, machine in use ${mib(s.bed.usedMiB)} (of 24 GiB)`,
);
console.log('P11 left out by the simulation: image pulls, container starts, kubelets, probes (kwok: Ready 1-2 s after scheduling)');
console.log(`P11 15,000 pods: skiff peak RSS ${mib(s.rssMiB)} (target <= 250 MiB${s.rssMiB <= 250 ? '' : '  MISSED'})`);
console.log(
  `P11 15,000 pods: skiff verdict ${latency === undefined ? 'n/a (the watch did not see every pod Ready)' : `${(latency / 1000).toFixed(2)}s`} after the last pod Ready (target <= 2s${latency !== undefined && latency <= 2000 ? '' : '  MISSED'})`,
);
console.log(`P11 15,000 pods: skiff ${Math.round(perMin)} API requests/min while deploying and tracking (${req.skiff} in ${secs(s.ms)})`);

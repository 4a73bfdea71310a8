#!/usr/bin/env node
// P10, 1,500 pods: 50 Deployments × 30 replicas on 50 kwok-simulated nodes
// (scripts/cluster up --sim). skiff deploy until ready vs `kubectl apply` of
// the same rendered objects + `kubectl rollout status` for each Deployment:
// wall-time ratio (target <= 1.0x: no slower than kubectl; both wait on the same control plane), skiff's peak RSS and CPU seconds, and the
// API requests each makes (the sim API server's audit log). Each side gets a
// fresh namespace; both are deleted afterwards. BENCH_RUNS: rounds (default 3), alternating who goes first.
//
// Left out by the simulation: image pulls and real container starts (kwok
// marks a scheduled pod Running and Ready after 1–2 s), kubelets, probes.
import { join } from 'node:path';
import { list, median, nonce, run, runAsync, secs, summary, timed } from './lib.mjs';
import {
  auditOffset,
  auditRequests,
  benchEnv,
  k,
  kubectl,
  simKubeconfig,
  measured,
  mib,
  performance,
  scaleProject,
  simUp,
  simRssMiB,
  machineUsedMiB,
  realClusterRssMiB,
  watchPodsReady,
} from './p10-scale-lib.mjs';
import { skiffBin } from './lib.mjs';

const N = Number(process.env.BENCH_RUNS ?? 3);
const DEPLOYMENTS = 50;
const REPLICAS = 30;
const PODS = DEPLOYMENTS * REPLICAS;

simUp(50);
const env = benchEnv();
const dir = scaleProject(DEPLOYMENTS, REPLICAS);
const build = timed(skiffBin, ['build', '--push'], { cwd: dir, env });
if (!/app: built/.test(build.stderr)) throw new Error(`build failed:\n${build.stderr}`);

const r = {
  skiff: [],
  kubectl: [],
  rss: [],
  cpu: [],
  reqSkiff: [],
  reqKubectl: [],
  tailSkiff: [],
  tailKubectl: [],
  lastReady: { skiff: [], kubectl: [] },
  bedSim: 0,
  bedUsed: 0,
};
const namespaces = [];
/** Waits until no pod is left anywhere on the sim cluster (a previous run's namespaces are gone). */
function waitIdle() {
  for (let i = 0; i < 600; i++) {
    if (k('get', 'pods', '-A', '--no-headers').trim() === '' && !/Terminating/.test(k('get', 'namespaces', '--no-headers'))) return;
    run('sleep', ['1']);
  }
}
const drop = (ns) => {
  k('delete', 'namespace', ns, '--wait=false');
  k('wait', '--for=delete', `namespace/${ns}`, '--timeout=600s');
};
/**
 * The separate watch's account of one side's run: when the last pod turned
 * Ready (from the side's start) and how long the side ran past it. A watch
 * that saw fewer than all pods Ready is reported, not used.
 */
function account(side, seen, t0, endAt) {
  if (seen.ready < PODS) {
    console.log(`P10 ${side}: the watch saw ${seen.ready}/${PODS} pods Ready (${seen.readyNow} Ready by a final list, ${seen.resumes} resumes); not used`);
    return undefined;
  }
  r.lastReady[side].push(seen.lastReadyAt - t0);
  return endAt - seen.lastReadyAt;
}
try {
  const withSkiff = async () => {
    const ns = `p10s-${nonce()}`;
    namespaces.push(ns);
    k('create', 'namespace', ns);
    const watch = watchPodsReady(ns);
    const offset = auditOffset();
    const t0 = performance.now();
    const s = await measured(skiffBin, ['deploy', 'sim', '--namespace', ns], { cwd: dir, env, mark: /release \S+ revision 1 deployed/ });
    const seen = await watch.stop();
    if (s.code !== 0) throw new Error(`skiff deploy failed:\n${s.stderr}`);
    const req = auditRequests(offset);
    r.skiff.push(s.ms);
    r.rss.push(s.rssMiB);
    r.cpu.push(s.cpuS);
    r.reqSkiff.push(req.skiff);
    if (!s.markAt) console.log("P10 skiff's verdict line was not seen");
    const tail = s.markAt ? account('skiff', seen, t0, s.markAt) : undefined;
    if (tail !== undefined) r.tailSkiff.push(tail);
    r.bedSim = Math.max(r.bedSim, s.bed.simMiB);
    r.bedUsed = Math.max(r.bedUsed, s.bed.usedMiB);
    drop(ns);
  };
  // kubectl apply + rollout status, of the same rendered objects
  const withKubectl = async (i) => {
    const kns = `p10k-${nonce()}`;
    namespaces.push(kns);
    timed(skiffBin, ['render', 'sim', '--namespace', kns, '--output-dir', `rendered-${i}`], { cwd: dir, env });
    k('create', 'namespace', kns);
    const watch = watchPodsReady(kns);
    const kOffset = auditOffset();
    const ka = (...args) => runAsync(kubectl, ['--kubeconfig', simKubeconfig, ...args], { timeout: 900_000 });
    const t0 = performance.now();
    await ka('apply', '-n', kns, '-f', join(dir, `rendered-${i}`));
    for (let d = 0; d < DEPLOYMENTS; d++) await ka('rollout', 'status', '-n', kns, `deployment/web-${d}`, '--timeout=600s');
    const end = performance.now();
    const seen = await watch.stop();
    r.kubectl.push(end - t0);
    const tail = account('kubectl', seen, t0, end);
    if (tail !== undefined) r.tailKubectl.push(tail);
    r.reqKubectl.push(auditRequests(kOffset).kubectl);
    r.bedSim = Math.max(r.bedSim, simRssMiB());
    r.bedUsed = Math.max(r.bedUsed, machineUsedMiB());
    drop(kns);
  };
  // The cluster settles after resizing (deleting nodes, collecting a previous run's pods) before the first measurement.
  waitIdle();
  for (let i = 0; i < N; i++) {
    // Alternate who goes first: a cluster still cleaning up after the last run slows whoever follows it.
    if (i % 2) {
      await withKubectl(i);
      await withSkiff();
    } else {
      await withSkiff();
      await withKubectl(i);
    }
  }
} finally {
  for (const ns of namespaces) k('delete', 'namespace', ns, '--wait=false', '--ignore-not-found');
}

const ms = (x) => `${Math.round(x)}ms`;
console.log(`P10 skiff deploy (${PODS} pods, ready):        ${list(r.skiff)}  median ${secs(median(r.skiff))}`);
console.log(`P10 kubectl apply + rollout status x${DEPLOYMENTS}:   ${list(r.kubectl)}  median ${secs(median(r.kubectl))}`);
console.log(
  `P10 skiff peak RSS ${mib(Math.max(...r.rss))}, CPU ${median(r.cpu).toFixed(1)}s; API requests: skiff ${median(r.reqSkiff)}, kubectl ${median(r.reqKubectl)}`,
);
console.log(
  `P10 last pod Ready after the start (separate watch): skiff ${list(r.lastReady.skiff)}, kubectl ${list(r.lastReady.kubectl)}; ` +
    `done after the last pod Ready: skiff ${r.tailSkiff.map(ms).join(' ')}, kubectl ${r.tailKubectl.map(ms).join(' ')}`,
);
console.log(`P10 test bed peak: sim cluster ${mib(r.bedSim)} RSS, real cluster ${mib(realClusterRssMiB())} RSS, machine in use ${mib(r.bedUsed)} (of 24 GiB)`);
console.log('P10 left out by the simulation: image pulls, container starts, kubelets, probes (kwok: Ready 1-2 s after scheduling)');
console.log(
  summary(`P10 1,500 pods on 50 simulated nodes until ready`, median(r.skiff), `kubectl apply + rollout status x${DEPLOYMENTS}`, median(r.kubectl), 1.0),
);
console.log(
  `P10 resources: skiff peak RSS ${mib(Math.max(...r.rss))}, CPU ${median(r.cpu).toFixed(1)}s, ${median(r.reqSkiff)} API requests vs kubectl's ${median(r.reqKubectl)}${r.tailSkiff.length ? `, verdict ${ms(median(r.tailSkiff))} after the last pod Ready (kubectl ${r.tailKubectl.length ? ms(median(r.tailKubectl)) : '?'})` : ''}`,
);

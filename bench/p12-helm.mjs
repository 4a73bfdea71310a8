#!/usr/bin/env node
// skiff against Helm 4, the tool a user would pick instead (issue 20), on the
// test cluster (scripts/cluster up), the same chart for both: the project's
// own .helm/ (bench/p12-helm-lib.mjs benchChart: 50 templates, 100 objects),
// deployed by `skiff deploy` and by `helm upgrade --install --wait` of the
// same folder into another namespace:
//   P12 deploy the 100 objects (50 ConfigMaps, 30 Services, 20 Deployments
//       with an HTTP readiness probe) into a fresh namespace until ready;
//   P13 redeploy with nothing changed, with one skiff run under
//       bench/trace.mjs to show where its time goes;
//   P14 render the chart: `skiff render` (offline) vs `helm template` alone;
//   a readiness probe that never passes: when skiff names the cause vs what
//       `helm --wait --timeout` says, both started at once.
// Runs alternate who goes first; each tool's deploy and no-op get a fresh
// namespace, deleted (and the machine's CPUs left to settle) before the other
// tool's, so neither measures beside the other's pods. One more round through a counting proxy gives both tools' API
// requests (not timed: the proxy ends TLS and forces HTTP/1.1).
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  HTTPD_DOCKERFILE,
  commitRepo,
  kubeconfig,
  kubectlBin as kubectl,
  list,
  median,
  nonce,
  repoRoot,
  run,
  secs,
  skiffBin,
  skiffEnv,
  summary,
  tempDir,
  timed,
} from './lib.mjs';
import { benchChart, countingProxy, formatCounts, helmBinary, helmEnv, streamed, traceBreakdown } from './p12-helm-lib.mjs';

const N = Number(process.env.BENCH_RUNS ?? 3);
const N14 = Number(process.env.BENCH_RUNS ?? 5);
const PROBE_TIMEOUT = '30s';
const helmBin = helmBinary();
const env = { ...skiffEnv, KUBECONFIG: kubeconfig, SKIFF_HELM: helmBin, SKIFF_REGISTRY: `127.0.0.1:5000/bench-${nonce()}` };
const k = (...args) => run(kubectl, ['--kubeconfig', kubeconfig, ...args], { env });
const namespaces = [];
const fresh = (prefix) => {
  const ns = `${prefix}-${nonce()}`.slice(0, 50);
  namespaces.push(ns);
  return ns;
};
const gone = (...nss) => {
  for (const ns of nss) k('delete', 'namespace', ns, '--wait=false', '--ignore-not-found');
  for (const ns of nss) k('wait', '--for=delete', `namespace/${ns}`, '--timeout=180s');
};
/**
 * Waits (at most 60 s) until the machine's CPUs are at least 70% idle over
 * 2 s: the API server, the kubelet and containerd share them with the tool
 * measured, and are still busy a while after the last run's pods are deleted.
 */
async function settle() {
  const idle = () => {
    const [, ...t] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).map(Number);
    return { idle: t[3] + t[4], all: t.reduce((a, b) => a + b, 0) };
  };
  if (!existsSync('/proc/stat')) return;
  for (const end = Date.now() + 60_000; Date.now() < end;) {
    const a = idle();
    await new Promise((r) => setTimeout(r, 2000));
    const b = idle();
    if ((b.idle - a.idle) / (b.all - a.all) >= 0.7) return;
  }
  console.log('(the machine did not settle to 70% idle CPU within 60s; measuring anyway)');
}
const work = [];
const home = tempDir('helm-home');
work.push(home);

/** A committed project whose only objects are the chart in .helm/, built and pushed; its image reference and a Helm values file giving it. */
function project(name, chart) {
  const dir = tempDir(name);
  work.push(dir);
  commitRepo(dir, { 'skiff.yaml': 'project: bench\nimages:\n  web: {}\nenvironments:\n  bench: {}\n', Dockerfile: HTTPD_DOCKERFILE, ...chart }, name);
  const build = timed(skiffBin, ['build', '--push'], { cwd: dir, env });
  if (!/web: built/.test(build.stderr)) throw new Error(`build failed:\n${build.stderr}`);
  const image = JSON.parse(run(skiffBin, ['render', 'bench', '-o', 'json'], { cwd: dir, env })).images.web;
  const values = join(home, `${name}.values.json`);
  writeFileSync(values, JSON.stringify({ skiff: { images: { web: image } } }));
  return { dir, image, values };
}

const RELEASE = 'bench-bench'; // skiff's release name (<project>-<env>), used for Helm's too
const deployArgs = (ns) => ['deploy', 'bench', '--namespace', ns];
const helmArgs = (p, ns, timeout = '5m') => [
  'upgrade',
  '--install',
  RELEASE,
  join(p.dir, '.helm'),
  '-n',
  ns,
  '--create-namespace',
  '-f',
  p.values,
  '--wait',
  '--timeout',
  timeout,
];

function skiffDeploy(p, ns, config = kubeconfig) {
  const r = timed(skiffBin, deployArgs(ns), { cwd: p.dir, env: { ...env, KUBECONFIG: config } });
  if (!/deployed/.test(r.stderr)) throw new Error(`skiff deploy failed:\n${r.stderr}`);
  return r.ms;
}
const helmDeploy = (p, ns) => timed(helmBin, helmArgs(p, ns), { env: helmEnv(home) }).ms;

const lines = [];
const load = () =>
  loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');
console.log(`load average at the start: ${load()} (the figures are only as quiet as the machine)`);
try {
  const p = project('chart', benchChart());
  run(helmBin, ['list', '-A'], { env: helmEnv(home) }); // Helm's discovery cache is warm, as on a user's machine

  // P12/P13, alternating who goes first; the last round's skiff no-op once more under the trace preload.
  const r = { p12s: [], p12h: [], p13s: [], p13h: [] };
  let trace;
  for (let i = 0; i < N; i++) {
    const withSkiff = () => {
      const ns = fresh('p12s');
      r.p12s.push(skiffDeploy(p, ns));
      r.p13s.push(skiffDeploy(p, ns));
      if (i === N - 1) {
        const t = timed(process.execPath, ['--import', pathToFileURL(join(repoRoot, 'bench', 'trace.mjs')).href, skiffBin, ...deployArgs(ns)], {
          cwd: p.dir,
          env,
        });
        trace = traceBreakdown(t.stderr);
      }
      return ns;
    };
    const withHelm = () => {
      const ns = fresh('p12h');
      r.p12h.push(helmDeploy(p, ns));
      r.p13h.push(helmDeploy(p, ns));
      return ns;
    };
    // One tool at a time on the node: the other's pods are gone and the node has settled before each measurement.
    for (const side of i % 2 ? [withHelm, withSkiff] : [withSkiff, withHelm]) {
      await settle();
      gone(side());
    }
  }

  // The same once more through the counting proxy, for the requests each tool makes.
  await settle();
  const proxy = await countingProxy();
  const req = {};
  try {
    const pns = fresh('p12sc');
    const hns = fresh('p12hc');
    const viaProxy = { ...env, KUBECONFIG: proxy.kubeconfig };
    for (const step of ['p12', 'p13']) {
      const s = await streamed(skiffBin, deployArgs(pns), { cwd: p.dir, env: viaProxy });
      if (s.code !== 0) throw new Error(`skiff deploy through the counting proxy failed:\n${s.err}`);
      req[`${step}s`] = proxy.take();
      const h = await streamed(helmBin, helmArgs(p, hns), { env: helmEnv(home, proxy.kubeconfig) });
      if (h.code !== 0) throw new Error(`helm through the counting proxy failed:\n${h.err}`);
      req[`${step}h`] = proxy.take();
    }
    gone(pns, hns);
  } finally {
    proxy.stop();
  }

  console.log(`P12 skiff deploy (chart, 100 objects):    ${list(r.p12s)}  median ${secs(median(r.p12s))}; API requests ${formatCounts(req.p12s)}`);
  console.log(`P12 helm upgrade --install --wait:        ${list(r.p12h)}  median ${secs(median(r.p12h))}; API requests ${formatCounts(req.p12h)}`);
  console.log(`P13 skiff deploy, nothing changed:        ${list(r.p13s)}  median ${secs(median(r.p13s))}; API requests ${formatCounts(req.p13s)}`);
  console.log(`P13 helm upgrade --install --wait, same:  ${list(r.p13h)}  median ${secs(median(r.p13h))}; API requests ${formatCounts(req.p13h)}`);
  console.log("P13 where skiff's no-op redeploy spends its time (one run under bench/trace.mjs):");
  for (const l of trace) console.log(`  ${l}`);
  const reqs = (s, h) => `; API requests: skiff ${s.total}, helm ${h.total}`;
  lines.push(
    summary('P12 deploy a chart of 100 objects until ready', median(r.p12s), 'helm upgrade --install --wait', median(r.p12h), 0.5) + reqs(req.p12s, req.p12h),
  );
  lines.push(
    summary('P13 redeploy the chart, nothing changed', median(r.p13s), 'helm upgrade --install --wait', median(r.p13h), 0.3) + reqs(req.p13s, req.p13h),
  );

  // P14: render the 50 templates, no cluster involved; both print YAML.
  const p14s = [];
  const p14h = [];
  const skiffRender = () => timed(skiffBin, ['render', 'bench'], { cwd: p.dir, env });
  const helmTemplate = () => timed(helmBin, ['template', RELEASE, join(p.dir, '.helm'), '--namespace', RELEASE, '-f', p.values], { env: helmEnv(home) });
  const docs = (out) => out.split(/^---$/m).filter((d) => /^kind:/m.test(d)).length;
  await settle();
  const [s0, h0] = [skiffRender(), helmTemplate()];
  if (docs(s0.stdout) !== 100 || docs(h0.stdout) !== 100) throw new Error(`expected 100 objects: skiff rendered ${docs(s0.stdout)}, helm ${docs(h0.stdout)}`);
  for (let i = 0; i < N14; i++) {
    if (i % 2) {
      p14h.push(helmTemplate().ms);
      p14s.push(skiffRender().ms);
    } else {
      p14s.push(skiffRender().ms);
      p14h.push(helmTemplate().ms);
    }
  }
  const t14 = timed(process.execPath, ['--import', pathToFileURL(join(repoRoot, 'bench', 'trace.mjs')).href, skiffBin, 'render', 'bench'], { cwd: p.dir, env });
  console.log(`P14 skiff render (50 templates):          ${list(p14s)}  median ${secs(median(p14s))}`);
  console.log(`P14 helm template:                        ${list(p14h)}  median ${secs(median(p14h))}`);
  console.log('P14 where skiff render spends its time (one run under bench/trace.mjs):');
  for (const l of traceBreakdown(t14.stderr)) console.log(`  ${l}`);
  lines.push(summary('P14 render a chart of 50 templates', median(p14s), 'helm template', median(p14h), 1.2));

  // A readiness probe that never passes (httpd answers 404): both started at once, each in its namespace.
  const bad = project('probe', benchChart({ probePath: '/missing', deployments: 1 }));
  const sns = fresh('probes');
  const hns = fresh('probeh');
  await settle();
  const startedAt = Date.now();
  const [s, h] = await Promise.all([
    streamed(skiffBin, [...deployArgs(sns), '--timeout', PROBE_TIMEOUT, '--no-auto-rollback'], { cwd: bad.dir, env }, /readiness probe failing/),
    streamed(helmBin, helmArgs(bad, hns, PROBE_TIMEOUT), { env: helmEnv(home) }),
  ]);
  if (s.code === 0 || h.code === 0) throw new Error(`a deploy with a failing probe succeeded:\nskiff:\n${s.err}\nhelm:\n${h.err}`);
  const skiffSaid = s.err.split('\n').filter((l) => /not ready|^error/.test(l));
  const helmSaid = h.err
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => l.replace(hns, '<namespace>'));
  // When the kubelet first said so (Unhealthy events have whole seconds): what skiff's latency is measured against.
  const unhealthy = JSON.parse(k('get', 'events', '-n', sns, '--field-selector', 'reason=Unhealthy', '-o', 'json'))
    .items.map((e) => Date.parse(e.firstTimestamp ?? e.eventTime ?? ''))
    .filter((t) => !Number.isNaN(t));
  const firstUnhealthy = unhealthy.length ? `${Math.round((Math.min(...unhealthy) - startedAt) / 1000)}s` : 'never';
  console.log(`Failing probe, the kubelet's first Unhealthy event in skiff's namespace: about ${firstUnhealthy} after the start (whole seconds)`);
  console.log(`Failing probe, skiff (--timeout ${PROBE_TIMEOUT}): named the cause after ${s.mark ? secs(s.mark.ms) : 'never'}: ${s.mark?.line ?? ''}`);
  console.log(`Failing probe, skiff: exit ${s.code} after ${secs(s.ms)}:\n${skiffSaid.map((l) => `  ${l}`).join('\n')}`);
  console.log(`Failing probe, helm --wait --timeout ${PROBE_TIMEOUT}: exit ${h.code} after ${secs(h.ms)}:\n${helmSaid.map((l) => `  ${l}`).join('\n')}`);
  const cause = /readiness probe failing: (.*)\)$/.exec(s.mark?.line ?? '')?.[1] ?? 'never';
  lines.push(
    `Failing readiness probe, time until the cause is named: skiff ${s.mark ? secs(s.mark.ms) : 'never'} ("readiness probe failing: ${cause}"; kubelet's first Unhealthy event ~${firstUnhealthy}; exit ${s.code} at ${secs(s.ms)}, --timeout ${PROBE_TIMEOUT}) vs helm --wait --timeout ${PROBE_TIMEOUT}: exit ${h.code} at ${secs(h.ms)} ("${helmSaid.join(' / ')}")`,
  );
  gone(sns, hns);
} finally {
  for (const ns of namespaces) run(kubectl, ['--kubeconfig', kubeconfig, 'delete', 'namespace', ns, '--wait=false', '--ignore-not-found'], { env });
  for (const d of work) rmSync(d, { recursive: true, force: true });
}
console.log(`load average at the end: ${load()}`);
for (const l of lines) console.log(l);

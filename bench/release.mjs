#!/usr/bin/env node
// Release-stage benchmarks against the test cluster (scripts/cluster up):
//   P3 deploy 100 objects (50 ConfigMaps, 30 Services, 20 Deployments) into an
//      empty namespace and wait until ready, vs `kubectl apply -f` of the same
//      rendered objects + `kubectl rollout status` for each Deployment;
//      Both again through bench/latency-proxy.mjs, as if the API server were
//      20 ms of round trip away (a cloud cluster seen from a CI runner);
//   P4 redeploy with nothing changed (target: under 1 s), and kubectl apply of the same;
//   P5 from a pod entering CrashLoopBackOff (seen by a separate kubectl watch)
//      to skiff's failure report;
//   P7 `skiff render` of 1,000 template files (target: under 1 s).
// Each side gets fresh namespaces; everything is deleted afterwards.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawn as spawnAsync } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  HTTPD_DOCKERFILE,
  commitRepo,
  deploymentTemplate,
  kubeconfig,
  kubectlBin as kubectl,
  list,
  median,
  nonce,
  run,
  secs,
  skiffBin,
  skiffEnv,
  startLatencyProxy,
  summary,
  tempDir,
  timed,
} from './lib.mjs';

const N = Number(process.env.BENCH_RUNS ?? 3);
const env = { ...skiffEnv, KUBECONFIG: kubeconfig, SKIFF_REGISTRY: `127.0.0.1:5000/bench-${nonce()}` };
const k = (...args) => run(kubectl, ['--kubeconfig', kubeconfig, ...args], { env });
const namespaces = [];
const fresh = (prefix) => {
  const ns = `${prefix}-${nonce()}`.slice(0, 50);
  namespaces.push(ns);
  return ns;
};

function project(dir, templates) {
  const kube = Object.fromEntries(Object.entries(templates).map(([name, text]) => [`.kube/${name}`, text]));
  commitRepo(dir, { 'skiff.yaml': 'project: bench\nimages:\n  web: {}\nenvironments:\n  bench: {}\n', Dockerfile: HTTPD_DOCKERFILE, ...kube }, 'bench');
}

function hundredObjects({ crash = false } = {}) {
  const t = {};
  for (let i = 0; i < 50; i++) t[`cm-${i}.yaml`] = `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: cm-${i} }\ndata: { key: "value ${i}" }\n`;
  for (let i = 0; i < 30; i++)
    t[`svc-${i}.yaml`] =
      `apiVersion: v1\nkind: Service\nmetadata: { name: svc-${i} }\nspec:\n  selector: { app: web-${i % 20} }\n  ports: [{ port: 80, targetPort: 8080 }]\n`;
  for (let i = 0; i < 20; i++) {
    t[`web-${i}.yaml.ejs`] = deploymentTemplate(`web-${i}`, {
      image: 'web',
      container: 'web',
      lines: [...(crash ? ['command: ["sh", "-c", "echo boom; exit 1"]'] : []), 'readinessProbe: { httpGet: { path: /, port: 8080 }, periodSeconds: 1 }'],
    });
  }
  return t;
}

function skiff(dir, args) {
  const r = timed(skiffBin, args, { cwd: dir, env });
  return r;
}

const lines = [];
const work = [];
const stops = [];
try {
  // P3/P4: the 100-object project.
  const dir = tempDir('release');
  work.push(dir);
  project(dir, hundredObjects());
  const build = skiff(dir, ['build', '--push']);
  if (!/web: built/.test(build.stderr)) throw new Error(`build failed:\n${build.stderr}`);
  const rendered = join(dir, 'rendered');
  // One P3/P4 round for a given kubeconfig: the direct one (API server on
  // loopback) or one through the latency proxy (a cluster 20 ms away).
  const round = (config, tag) => {
    const r = { p3s: [], p3k: [], p4s: [], p4k: [] };
    const kc = (...args) => run(kubectl, ['--kubeconfig', config, ...args], { env });
    const withSkiff = () => {
      const ns = fresh(`p3s${tag}`);
      const s = timed(skiffBin, ['deploy', 'bench', '--namespace', ns], { cwd: dir, env: { ...env, KUBECONFIG: config } });
      if (!/deployed/.test(s.stderr)) throw new Error(`skiff deploy failed:\n${s.stderr}`);
      r.p3s.push(s.ms);
      r.p4s.push(timed(skiffBin, ['deploy', 'bench', '--namespace', ns], { cwd: dir, env: { ...env, KUBECONFIG: config } }).ms);
      return ns;
    };
    const withKubectl = () => {
      const kns = fresh(`p3k${tag}`);
      rmSync(rendered, { recursive: true, force: true });
      skiff(dir, ['render', 'bench', '--namespace', kns, '--output-dir', 'rendered']);
      k('create', 'namespace', kns);
      const t0 = performance.now();
      kc('apply', '-n', kns, '-f', rendered);
      for (let d = 0; d < 20; d++) kc('rollout', 'status', '-n', kns, `deployment/web-${d}`, '--timeout=300s');
      r.p3k.push(performance.now() - t0);
      const t1 = performance.now();
      kc('apply', '-n', kns, '-f', rendered);
      r.p4k.push(performance.now() - t1);
      return kns;
    };
    kc('get', 'namespaces'); // kubectl's discovery cache is warm, as on a user's machine
    for (let i = 0; i < N; i++) {
      // Alternate who goes first, and let the node finish tearing down the last
      // run's 20 pods before the next measurement starts.
      const used = i % 2 ? [withKubectl(), withSkiff()] : [withSkiff(), withKubectl()];
      for (const ns of used) {
        k('delete', 'namespace', ns, '--wait=false');
        k('wait', '--for=delete', `namespace/${ns}`, '--timeout=180s');
      }
    }
    return r;
  };

  const local = round(kubeconfig, '');
  console.log(`P3 skiff deploy (100 objects, ready):   ${list(local.p3s)}  median ${secs(median(local.p3s))}`);
  console.log(`P3 kubectl apply + rollout status x20:  ${list(local.p3k)}  median ${secs(median(local.p3k))}`);
  console.log(`P4 skiff deploy, nothing changed:       ${list(local.p4s)}  median ${secs(median(local.p4s))}`);
  console.log(`P4 kubectl apply, nothing changed:      ${list(local.p4k)}  median ${secs(median(local.p4k))}`);
  lines.push(summary('P3 deploy 100 objects until ready', median(local.p3s), 'kubectl apply + rollout status', median(local.p3k), 0.5));
  lines.push(
    `P4 redeploy, nothing changed: skiff ${secs(median(local.p4s))} (target <= 1s${median(local.p4s) <= 1000 ? '' : '  MISSED'}); kubectl apply ${secs(median(local.p4k))}`,
  );

  // The same through a 20 ms round trip: where per-request latency, not the node, dominates.
  const proxy = await startLatencyProxy(6443, 10);
  stops.push(proxy.stop);
  const remoteConfig = join(dir, 'remote.kubeconfig');
  writeFileSync(remoteConfig, readFileSync(kubeconfig, 'utf8').replace('https://127.0.0.1:6443', `https://127.0.0.1:${proxy.port}`));
  const remote = round(remoteConfig, 'r');
  console.log(`P3 at 20ms RTT, skiff deploy:           ${list(remote.p3s)}  median ${secs(median(remote.p3s))}`);
  console.log(`P3 at 20ms RTT, kubectl apply + status: ${list(remote.p3k)}  median ${secs(median(remote.p3k))}`);
  console.log(`P4 at 20ms RTT, skiff deploy unchanged: ${list(remote.p4s)}  median ${secs(median(remote.p4s))}`);
  console.log(`P4 at 20ms RTT, kubectl apply:          ${list(remote.p4k)}  median ${secs(median(remote.p4k))}`);
  lines.push(summary('P3 at 20ms RTT to the API server', median(remote.p3s), 'kubectl apply + rollout status', median(remote.p3k), 0.5));
  lines.push(`P4 at 20ms RTT: skiff ${secs(median(remote.p4s))}; kubectl apply ${secs(median(remote.p4k))}`);

  // P5: crash loop to failure report.
  const crashDir = tempDir('crash');
  work.push(crashDir);
  const crashT = { ...hundredObjects({ crash: true }) };
  for (const name of Object.keys(crashT)) if (!name.startsWith('web-0.')) delete crashT[name];
  project(crashDir, crashT);
  skiff(crashDir, ['build', '--push']);
  const p5 = [];
  for (let i = 0; i < N; i++) {
    const ns = fresh('p5');
    k('create', 'namespace', ns);
    // A separate watcher notes when the pod's container enters CrashLoopBackOff.
    const watcher = spawnAsync(
      kubectl,
      ['--kubeconfig', kubeconfig, 'get', 'pods', '-n', ns, '-w', '-o', 'jsonpath={.status.containerStatuses[0].state.waiting.reason}{"\\n"}'],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    let crashAt;
    watcher.stdout.on('data', (d) => {
      if (!crashAt && String(d).includes('CrashLoopBackOff')) crashAt = performance.now();
    });
    const reportAt = await new Promise((resolve, reject) => {
      const child = spawnAsync(skiffBin, ['deploy', 'bench', '--namespace', ns, '--no-auto-rollback'], {
        cwd: crashDir,
        env,
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let err = '';
      let at;
      child.stderr.on('data', (d) => {
        err += d;
        // The report is complete with its last line: "error: release … failed: … CrashLoopBackOff …".
        if (!at && /error: release .* failed: .*CrashLoopBackOff/.test(err)) at = performance.now();
      });
      child.on('close', () => (at ? resolve(at) : reject(new Error(`no CrashLoopBackOff report:\n${err}`))));
    });
    await new Promise((r) => setTimeout(r, 300));
    watcher.kill();
    if (!crashAt) throw new Error('the watcher never saw CrashLoopBackOff');
    p5.push(reportAt - crashAt);
    k('delete', 'namespace', ns, '--wait=false');
    k('wait', '--for=delete', `namespace/${ns}`, '--timeout=180s');
  }
  const ms = (x) => `${Math.round(x)}ms`;
  console.log(`P5 CrashLoopBackOff → skiff's report:   ${p5.map(ms).join(' ')}  median ${ms(median(p5))}`);
  lines.push(
    `P5 crash loop to complete failure report (diagnosis, events, logs): ${ms(median(p5))} after a separate kubectl watch printed CrashLoopBackOff (target <= 2s${median(p5) <= 2000 ? '' : '  MISSED'})`,
  );

  // P7: render 1,000 template files.
  const renderDir = tempDir('render');
  work.push(renderDir);
  const many = {};
  for (let i = 0; i < 1000; i++) {
    many[`cm-${i}.yaml${i % 2 ? '.ejs' : ''}`] =
      i % 2
        ? `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-${i}\n  annotations: { checksum: "<%= sha256(values) %>" }\ndata:\n  image: <%= quote(images.web) %>\n  env: <%= env %>\n`
        : `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-${i}\ndata:\n  key: value-${i}\n`;
  }
  project(renderDir, many);
  const pushed = skiff(renderDir, ['build', '--push']);
  if (pushed.ms <= 0) throw new Error('build failed');
  const p7 = [];
  for (let i = 0; i < N; i++) p7.push(skiff(renderDir, ['render', 'bench', '--output-dir', 'out']).ms);
  console.log(`P7 skiff render, 1,000 templates:       ${list(p7)}  median ${secs(median(p7))}`);
  lines.push(`P7 render 1,000 template files: ${secs(median(p7))} end to end (target <= 1s${median(p7) <= 1000 ? '' : '  MISSED'})`);
} finally {
  for (const stop of stops) stop();
  for (const ns of namespaces) run(kubectl, ['--kubeconfig', kubeconfig, 'delete', 'namespace', ns, '--wait=false', '--ignore-not-found'], { env });
  for (const d of work) rmSync(d, { recursive: true, force: true });
}
for (const l of lines) console.log(l);

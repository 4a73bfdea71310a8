// Shared by bench/p10-scale.mjs and bench/p11-scale.mjs: releases of many
// pods on the kwok-simulated cluster (scripts/cluster up --sim), and what they
// measure: skiff's peak RSS and CPU seconds, its API requests (from the sim
// API server's audit log, which records the admin user only: skiff and
// kubectl), the verdict's latency after the last pod became ready (seen by a
// separate watch as another user), and the peak memory of the test bed.
//
// What the simulation leaves out, so the figures are read honestly: no image
// is pulled and no container runs (kwok sets the pods' status after a delay:
// SKIFF_SIM_READY_DELAY_MS, default 1 s, plus up to 1 s of jitter), there is
// no kubelet, no probes and no network; the controllers, the scheduler and
// the API server are the real ones, on the same 2 cores as skiff.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync, openSync, readSync, closeSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { commitRepo, deploymentTemplate, kubeconfig, kubectlBin, nonce, repoRoot, run, skiffEnv, tempDir } from './lib.mjs';

export const state = process.env.SKIFF_STATE ?? '/var/lib/skiff-dev';
export const simDir = join(state, 'cluster-sim');
export { kubeconfig };
export const simKubeconfig = join(repoRoot, '.skiff', 'kubeconfig-sim');
export const kubectl = kubectlBin;
export const auditLog = join(simDir, 'audit.log');
export const SIM_CONTEXT = 'skiff-sim';

/** Starts the sim cluster with `nodes` nodes (a no-op when it already has them). */
export function simUp(nodes) {
  run(join(repoRoot, 'scripts', 'cluster'), ['up', '--sim', '--nodes', String(nodes)], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 900_000 });
}

export const k = (...args) => run(kubectl, ['--kubeconfig', simKubeconfig, ...args], { timeout: 900_000 });

/** A project of `deployments` Deployments × `replicas` pods for the sim cluster, committed. */
export function scaleProject(deployments, replicas) {
  const template = deploymentTemplate('web-<%= i %>', { replicas, lines: ['resources: { requests: { cpu: 10m, memory: 16Mi } }'] });
  return commitRepo(
    tempDir('scale'),
    {
      'skiff.yaml': `project: scale\nimages:\n  app: {}\nenvironments:\n  sim:\n    kubeContext: ${SIM_CONTEXT}\n`,
      Dockerfile: 'FROM skiff-base/busybox:1\nCMD ["sleep", "3600"]\n',
      '.kube/web.yaml.ejs': `<% for (let i = 0; i < ${deployments}; i++) { %>\n---\n${template}<% } %>\n`,
    },
    'scale',
  );
}

export const benchEnv = () => ({ ...skiffEnv, KUBECONFIG: kubeconfig, SKIFF_REGISTRY: `127.0.0.1:5000/bench-${nonce()}` });

/** Bytes in the audit log now (its requests after this offset are a run's). */
export const auditOffset = () => (existsSync(auditLog) ? statSync(auditLog).size : 0);

/** The audited requests since `offset`, by client: kubectl's user agent says kubectl, skiff sends none. */
export function auditRequests(offset) {
  const fd = openSync(auditLog, 'r');
  const size = statSync(auditLog).size;
  const buf = Buffer.alloc(size - offset);
  readSync(fd, buf, 0, buf.length, offset);
  closeSync(fd);
  const counts = { skiff: 0, kubectl: 0, other: 0, byVerb: {} };
  const first = {};
  for (const line of buf.toString('utf8').split('\n')) {
    if (!line) continue;
    let e;
    try {
      e = JSON.parse(line);
    } catch {
      continue;
    }
    if (e.stage !== 'ResponseComplete' && e.stage !== 'Panic') continue;
    const who = /^kubectl\//.test(e.userAgent ?? '') ? 'kubectl' : /^skiff|^node|^$/.test(e.userAgent ?? '') ? 'skiff' : 'other';
    counts[who]++;
    const verb = `${who} ${e.verb} ${e.objectRef?.resource ?? e.requestURI?.split('?')[0]}`;
    counts.byVerb[verb] = (counts.byVerb[verb] ?? 0) + 1;
    first[who] ??= e.requestReceivedTimestamp;
  }
  return counts;
}

/**
 * Runs a command under GNU time and samples the test bed's memory meanwhile.
 * Resolves with wall ms, the command's peak RSS (MiB) and CPU seconds, its
 * stderr, the moment (performance.now()) its stderr first matched `mark`, and
 * the test bed's peak: the sim cluster's processes, and the machine's used memory.
 */
export function measured(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const timeFile = join(tempDir('time'), 'time.txt');
    const t0 = performance.now();
    const child = spawn('/usr/bin/time', ['-f', '%M %U %S', '-o', timeFile, cmd, ...args], { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let markAt;
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => {
      err += d;
      if (!markAt && opts.mark && opts.mark.test(err)) markAt = performance.now();
    });
    const bed = { simMiB: 0, usedMiB: 0 };
    const sampler = setInterval(() => {
      bed.simMiB = Math.max(bed.simMiB, simRssMiB());
      bed.usedMiB = Math.max(bed.usedMiB, machineUsedMiB());
    }, 1000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(sampler);
      const ms = performance.now() - t0;
      const [kb, user, sys] = readFileSync(timeFile, 'utf8').trim().split('\n').at(-1).split(' ').map(Number);
      resolve({ code, ms, rssMiB: kb / 1024, cpuS: user + sys, stdout: out, stderr: err, markAt, bed });
    });
  });
}

/** RSS of the sim cluster's processes (etcd, apiserver, controller-manager, scheduler, kwok), MiB. */
export function simRssMiB() {
  let kb = 0;
  for (const c of ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok']) kb += rssKb(join(simDir, 'run', `${c}.pid`));
  return kb / 1024;
}

/** RSS of the real single-node cluster's processes, MiB. */
export function realClusterRssMiB() {
  let kb = 0;
  for (const c of ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'containerd', 'kubelet'])
    kb += rssKb(join(state, 'cluster', 'run', `${c}.pid`));
  return kb / 1024;
}

function rssKb(pidFile) {
  try {
    const pid = readFileSync(pidFile, 'utf8').trim();
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** MemTotal − MemAvailable, MiB: everything the machine uses, test bed included. */
export function machineUsedMiB() {
  const m = readFileSync('/proc/meminfo', 'utf8');
  const v = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(m)[1]);
  return (v('MemTotal') - v('MemAvailable')) / 1024;
}

/**
 * Watches the pods of a namespace on the sim cluster as another user (kwok's
 * identity, which the audit log leaves out) and notes, in performance.now()
 * time, when each pod was first seen Ready. Like skiff's own tracker it lists
 * first, then watches from the list's resourceVersion, resumes from the last
 * event's resourceVersion when the connection ends, and lists again after
 * 410 Gone, so no pod's turn to Ready is missed. stop() resolves with the
 * time the last pod turned Ready, how many did, and how often it resumed;
 * a final list counts the pods that are Ready by then, so a shortfall is
 * reported, never hidden.
 */
export function watchPodsReady(namespace) {
  const kc = readFileSync(join(simDir, 'kwok.kubeconfig'), 'utf8');
  const field = (name) => Buffer.from(new RegExp(`${name}: (\\S+)`).exec(kc)[1], 'base64');
  const server = new URL(/server: (\S+)/.exec(kc)[1]);
  const tls = { ca: field('certificate-authority-data'), cert: field('client-certificate-data'), key: field('client-key-data') };
  const ready = new Set();
  const isReady = (pod) => (pod?.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
  const see = (pod) => {
    if (isReady(pod) && !ready.has(pod.metadata.name)) {
      ready.add(pod.metadata.name);
      lastAt = performance.now();
    }
  };
  let lastAt = 0;
  let stopped = false;
  let resumes = 0;
  let req;
  const get = (path, onRes) => {
    req = request({ host: server.hostname, port: server.port, path, ...tls }, onRes);
    req.on('error', () => again());
    req.end();
  };
  let resourceVersion;
  const again = () => {
    if (stopped) return;
    resumes++;
    setTimeout(() => (resourceVersion ? watch() : list()), 200);
  };
  const list = () =>
    get(`/api/v1/namespaces/${namespace}/pods?limit=5000`, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        try {
          const l = JSON.parse(body);
          if (res.statusCode !== 200) throw new Error(String(res.statusCode));
          for (const pod of l.items ?? []) see(pod);
          resourceVersion = l.metadata.resourceVersion;
          watch();
        } catch {
          resourceVersion = undefined;
          again();
        }
      });
    });
  const watch = () => {
    let buffer = '';
    get(`/api/v1/namespaces/${namespace}/pods?watch=1&allowWatchBookmarks=true&resourceVersion=${resourceVersion}`, (res) => {
      res.setEncoding('utf8');
      res.on('data', (d) => {
        buffer += d;
        let nl;
        while ((nl = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          let ev;
          try {
            ev = JSON.parse(line);
          } catch {
            continue;
          }
          if (ev.type === 'ERROR') {
            // 410 Gone: the resourceVersion is too old; list again.
            resourceVersion = undefined;
            continue;
          }
          if (ev.object?.metadata?.resourceVersion) resourceVersion = ev.object.metadata.resourceVersion;
          if (ev.type !== 'BOOKMARK') see(ev.object);
        }
      });
      res.on('end', () => again());
      res.on('error', () => {});
    });
  };
  list();
  return {
    stop: async () => {
      stopped = true;
      req?.destroy();
      // The pods Ready now, by a list: what the watch must have seen.
      const readyNow = await new Promise((resolve) => {
        const r = request({ host: server.hostname, port: server.port, path: `/api/v1/namespaces/${namespace}/pods?limit=5000`, ...tls }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d) => (body += d));
          res.on('end', () => {
            try {
              resolve(JSON.parse(body).items.filter(isReady).length);
            } catch {
              resolve(-1);
            }
          });
        });
        r.on('error', () => resolve(-1));
        r.end();
      });
      return { lastReadyAt: lastAt, ready: ready.size, readyNow, resumes };
    },
  };
}

export const mib = (x) => `${Math.round(x)} MiB`;
export { performance };

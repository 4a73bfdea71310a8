// Shared pieces of bench/p12-helm.mjs: the chart both tools deploy, Helm
// itself (the binary the test bed built, with a private home), a command run
// with its stderr lines timed as they arrive, a proxy in front of the API
// server that counts each client's requests, and the summary of a run under
// bench/trace.mjs.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, Agent } from 'node:https';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parse } from 'yaml';
import { kubeconfig, repoRoot, run, secs, tempDir } from './lib.mjs';

/** SKIFF_HELM, else the cached build of the version test/helm/go.mod requires (test/helm/build.sh), as test/helpers/helm.ts finds it. */
export function helmBinary() {
  if (process.env.SKIFF_HELM) return process.env.SKIFF_HELM;
  const version = /helm\.sh\/helm\/v4 (v\S+)/.exec(readFileSync(join(repoRoot, 'test', 'helm', 'go.mod'), 'utf8'))?.[1];
  const path = join(process.env.SKIFF_CLUSTER_CACHE ?? join(homedir(), '.cache', 'skiff'), `helm-${version}`, 'helm');
  if (!existsSync(path)) throw new Error(`no helm at ${path}: run test/helm/build.sh, or set SKIFF_HELM to a Helm 4 binary`);
  return path;
}

/** Helm's environment: a private home (nothing of the machine's Helm set-up read or written) and the given kubeconfig. */
export function helmEnv(home, config = kubeconfig) {
  return {
    ...process.env,
    HELM_CACHE_HOME: join(home, 'cache'),
    HELM_CONFIG_HOME: join(home, 'config'),
    HELM_DATA_HOME: join(home, 'data'),
    KUBECONFIG: config,
  };
}

const HELPERS = `{{- define "bench.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 }}
{{- end }}
`;

const configMap = (i) => `apiVersion: v1
kind: ConfigMap
metadata:
  name: cm-${i}
  labels:
    {{- include "bench.labels" . | nindent 4 }}
data:
  key: {{ printf "value %d" ${i} | quote }}
  env: {{ .Values.skiff.env | default "bench" | quote }}
`;

const service = (i, app) => `apiVersion: v1
kind: Service
metadata:
  name: svc-${i}
  labels:
    {{- include "bench.labels" . | nindent 4 }}
spec:
  selector: { app: web-${app} }
  ports: [{ port: 80, targetPort: 8080 }]
`;

const deployment = (i) => `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web-${i}
  labels:
    {{- include "bench.labels" . | nindent 4 }}
spec:
  replicas: {{ .Values.replicas }}
  selector: { matchLabels: { app: web-${i} } }
  template:
    metadata:
      labels: { app: web-${i} }
    spec:
      terminationGracePeriodSeconds: 0
      containers:
        - name: web
          image: {{ .Values.skiff.images.web | quote }}
          readinessProbe: { httpGet: { path: {{ .Values.probePath }}, port: 8080 }, periodSeconds: 1 }
          resources: { requests: { cpu: 10m, memory: 16Mi } }
`;

/**
 * The chart both tools deploy, as the files of a repository's .helm/: 50
 * templates and a _helpers.tpl, 100 objects (50 ConfigMaps, 30 Services, 20
 * Deployments whose pods serve HTTP on :8080 behind a readiness probe of
 * `probePath`). The image is `.Values.skiff.images.web`: skiff sets it, Helm
 * gets it from a values file. With `deployments` < 20, only that many
 * Deployments (and nothing else).
 */
export function benchChart({ probePath = '/', deployments = 20 } = {}) {
  const t = {
    '.helm/Chart.yaml': 'apiVersion: v2\nname: bench\nversion: 0.1.0\n',
    '.helm/values.yaml': `replicas: 1\nprobePath: ${probePath}\n`,
    '.helm/templates/_helpers.tpl': HELPERS,
  };
  for (let i = 0; i < deployments; i++) t[`.helm/templates/web-${i}.yaml`] = deployment(i) + (deployments < 20 ? '' : `---\n${service(i, i)}`);
  if (deployments < 20) return t;
  // 20 × (Deployment + Service), 10 × (Service + ConfigMap), 20 × two ConfigMaps: 50 templates.
  for (let i = 0; i < 10; i++) t[`.helm/templates/svc-cm-${i}.yaml`] = `${service(20 + i, i)}---\n${configMap(i)}`;
  for (let i = 0; i < 20; i++) t[`.helm/templates/cm-${i}.yaml`] = `${configMap(10 + 2 * i)}---\n${configMap(11 + 2 * i)}`;
  return t;
}

/**
 * Runs a command to its end without blocking the event loop (the counting
 * proxy lives in this process): exit code, wall ms, output, and when a line
 * of its stderr first matched `mark` (ms from the start) and that line.
 */
export function streamed(cmd, args, opts, mark) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let marked;
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => {
      err += d;
      if (marked || !mark) return;
      const line = err
        .slice(0, err.lastIndexOf('\n'))
        .split('\n')
        .find((l) => mark.test(l));
      if (line) marked = { ms: performance.now() - t0, line };
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, ms: performance.now() - t0, out, err, mark: marked }));
  });
}

/** `GET configmaps/{name}`, `WATCH pods`, `PATCH(dry run) deployments/{name}`, `GET (discovery)` from a request's method and path. */
export function requestKind(method, url) {
  const [path, query = ''] = url.replace(/^https?:\/\/[^/]+/, '').split('?');
  const p = path.split('/').filter(Boolean);
  let rest = p[0] === 'api' ? p.slice(2) : p[0] === 'apis' ? p.slice(3) : p;
  if (rest[0] === 'namespaces' && rest.length > 2) rest = rest.slice(2);
  const what = rest.length ? `${rest[0]}${rest.length > 1 ? '/{name}' : ''}${rest[2] ? `/${rest[2]}` : ''}` : '(discovery)';
  const verb = /(^|&)watch=(1|true)/.test(query) ? 'WATCH' : /(^|&)dryRun=/.test(query) ? `${method}(dry run)` : method;
  return `${verb} ${what}`;
}

/**
 * A proxy in front of the test cluster's API server that ends TLS (with a
 * throw-away certificate its kubeconfig trusts) and counts every request;
 * upstream it presents the kubeconfig's client certificate. Clients speak
 * HTTP/1.1 to it (Helm's client-go would use HTTP/2), which changes no count.
 * Resolves with the kubeconfig to hand to clients, `take()` (the requests
 * since the last take, by kind) and `stop()`.
 */
export async function countingProxy() {
  const dir = tempDir('count-proxy');
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  run(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', certFile].concat([
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-days',
      '1',
    ]),
  );
  const text = readFileSync(kubeconfig, 'utf8');
  const config = parse(text);
  const cluster = config.clusters[0].cluster;
  const user = config.users[0].user;
  const b64 = (s) => Buffer.from(s, 'base64');
  const upstream = new URL(cluster.server);
  const agent = new Agent({
    keepAlive: true,
    ca: b64(cluster['certificate-authority-data']),
    cert: b64(user['client-certificate-data']),
    key: b64(user['client-key-data']),
  });
  let seen = [];
  const server = createServer({ key: readFileSync(keyFile), cert: readFileSync(certFile) }, (req, res) => {
    seen.push(requestKind(req.method, req.url));
    const up = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: { ...req.headers, host: upstream.host }, agent },
      (ur) => {
        const { connection: _, ...headers } = ur.headers;
        res.writeHead(ur.statusCode, headers);
        ur.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    res.on('close', () => res.writableFinished || up.destroy());
    req.pipe(up);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxied = join(dir, 'kubeconfig');
  const ca = readFileSync(certFile).toString('base64');
  writeFileSync(
    proxied,
    text.replace(cluster.server, `https://127.0.0.1:${server.address().port}`).replace(/certificate-authority-data: \S+/, `certificate-authority-data: ${ca}`),
  );
  return {
    kubeconfig: proxied,
    take() {
      const counts = {};
      for (const k of seen) counts[k] = (counts[k] ?? 0) + 1;
      const total = seen.length;
      seen = [];
      return { total, counts };
    },
    stop() {
      server.closeAllConnections();
      server.close();
      agent.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `412 (PATCH configmaps/{name} 50, GET (discovery) 30, …)`: the most frequent `top` kinds of a take(). */
export function formatCounts({ total, counts }, top = 6) {
  const kinds = Object.entries(counts).sort((a, b) => b[1] - a[1]);
  const shown = kinds.slice(0, top).map(([k, n]) => `${k} ${n}`);
  if (kinds.length > top) shown.push(`${kinds.length - top} other kinds ${kinds.slice(top).reduce((s, [, n]) => s + n, 0)}`);
  return `${total} (${shown.join(', ')})`;
}

const CATEGORIES = [
  [/^kube (\S+) (\S+)/, 'Kubernetes API requests'],
  [/^fetch /, 'registry requests'],
  [/^event loop blocked/, 'event loop blocked (module loading, synchronous work)'],
  [/^\S*\/helm template /, 'helm template'],
  [/^git /, 'git processes'],
];

/**
 * Where a run under bench/trace.mjs spent its wall time, from its [trace]
 * lines: the time before its first I/O (Node's start and module loading),
 * then per kind of work the count, the summed durations (which overlap when
 * work runs concurrently) and the span from the first start to the last end;
 * for the API requests also the most frequent kinds.
 */
export function traceBreakdown(stderr) {
  const events = [];
  for (const line of stderr.split('\n')) {
    const m = /^\[trace\] \+\s*(\d+)ms\s+([\d.]+)ms {2}(.*)$/.exec(line);
    if (m) events.push({ start: Number(m[1]), ms: Number(m[2]), what: m[3] });
  }
  const exit = events.find((e) => e.what.startsWith('process exit'));
  const work = events.filter((e) => e !== exit);
  const io = work.filter((e) => !e.what.startsWith('event loop'));
  const firstIo = Math.min(...io.map((e) => e.start));
  const lines = [`total ${secs(exit?.ms ?? 0)}; before the first I/O (Node start, module loading): ${secs(firstIo)}`];
  const groups = [];
  for (const [pattern, label] of CATEGORIES) {
    const mine = work.filter((e) => pattern.test(e.what));
    if (!mine.length) continue;
    const sum = mine.reduce((s, e) => s + e.ms, 0);
    const from = Math.min(...mine.map((e) => e.start));
    const to = Math.max(...mine.map((e) => e.start + e.ms));
    groups.push({ sum, text: `${label}: ${mine.length}, ${secs(sum)} summed, from +${secs(from)} to +${secs(to)}` });
    if (label.startsWith('Kubernetes')) {
      const kinds = {};
      for (const e of mine) {
        const [, method, url] = pattern.exec(e.what);
        const k = requestKind(method, url);
        kinds[k] ??= { n: 0, ms: 0 };
        kinds[k].n++;
        kinds[k].ms += e.ms;
      }
      const top = Object.entries(kinds)
        .sort((a, b) => b[1].ms - a[1].ms)
        .slice(0, 6)
        .map(([k, v]) => `${k} ×${v.n} ${secs(v.ms)}`);
      groups.at(-1).text += `; most time: ${top.join(', ')}`;
    }
  }
  return [...lines, ...groups.sort((a, b) => b.sum - a.sum).map((g) => g.text), `timeline: ${timeline(work, exit?.ms ?? 0)}`];
}

/**
 * The run cut into phases: stretches of one kind of I/O in flight, and the
 * gaps with none (synchronous work), each with how long the event loop was
 * blocked inside it.
 */
function timeline(events, total) {
  const stall = (e) => e.what.startsWith('event loop');
  const name = (e) => (CATEGORIES.find(([p]) => p.test(e.what))?.[1] ?? e.what).split(' ')[0];
  const io = events.filter((e) => !stall(e)).sort((a, b) => a.start - b.start);
  const phases = [];
  let reach = io[0]?.start ?? 0;
  const gap = (to) => to - reach > 50 && phases.push({ name: 'no I/O', start: reach, end: to });
  for (const e of io) {
    gap(e.start);
    const last = phases.at(-1);
    if (last?.name === name(e)) last.end = Math.max(last.end, e.start + e.ms);
    else phases.push({ name: name(e), start: e.start, end: e.start + e.ms });
    reach = Math.max(reach, e.start + e.ms);
  }
  gap(total);
  const blocked = (p) => events.filter(stall).reduce((s, e) => s + Math.max(0, Math.min(p.end, e.start + e.ms) - Math.max(p.start, e.start)), 0);
  const parts = [`first I/O at ${secs(io[0]?.start ?? 0)}`];
  for (const p of phases) {
    const b = blocked(p);
    parts.push(`${p.name} ${secs(p.end - p.start)} (+${secs(p.start)}${b >= 20 ? `, event loop blocked ${secs(b)}` : ''})`);
  }
  parts.push(`exit at ${secs(total)}`);
  return parts.join(' → ');
}

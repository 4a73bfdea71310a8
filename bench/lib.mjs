// Shared helpers for the benchmarks and the reliability trials: running and
// timing child processes, medians, the summary line, which Docker builder the
// `docker build` CLI can use here, the test bed's cluster and registries, and
// committed projects to run skiff on.
import { spawn as spawnAsync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** SKIFF_BIN runs the benchmarks against another build of skiff, e.g. an experiment's. */
export const skiffBin = process.env.SKIFF_BIN ?? join(repoRoot, 'bin', 'skiff');

/** The test bed: the cluster of scripts/cluster, its version-matched kubectl, the login of the registry on :5001. */
export const kubeconfig = process.env.SKIFF_KUBECONFIG ?? join(repoRoot, '.skiff', 'kubeconfig');
export const kubectlBin = process.env.SKIFF_KUBECTL ?? join(repoRoot, '.skiff', 'bin', 'kubectl');
export const registryUser = process.env.SKIFF_TEST_REGISTRY_USER ?? 'skiff';
export const registryPassword = process.env.SKIFF_TEST_REGISTRY_PASSWORD ?? 'skiff-test-secret';
/** The Authorization header of a `user:password` login. */
export const basicAuth = (login) => ({ authorization: `Basic ${Buffer.from(login).toString('base64')}` });

/** A fresh environment for skiff runs: no CI detection, no colour, no TTY views. */
export const skiffEnv = { ...process.env, CI: '', GITLAB_CI: '', NO_COLOR: '1' };

function spawn(cmd, args, opts) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 170_000, ...opts });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** Runs a command to completion; throws with its output when it fails. Returns stdout. */
export const run = (cmd, args, opts = {}) => spawn(cmd, args, opts).stdout;

/** Wall-clock milliseconds of one run of a command (including process start), and its output. */
export function timed(cmd, args, opts = {}) {
  const t0 = performance.now();
  const { stdout, stderr } = spawn(cmd, args, opts);
  return { ms: performance.now() - t0, stdout, stderr };
}

/** Runs a command to completion and never throws: its exit code (-1 when it did not exit on its own) and output. */
export function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 << 20, timeout: 300_000, ...opts });
  return { code: r.status ?? -1, out: r.stdout ?? '', err: r.stderr ?? '' };
}

/** Like run, but asynchronous, for running several commands at once. */
export function runAsync(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const child = spawnAsync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 170_000, ...opts });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}\n${out}`))));
  });
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export const secs = (ms) => `${(ms / 1000).toFixed(ms < 100 ? 3 : 2)}s`;
export const list = (xs) => xs.map(secs).join(' ');

export function git(dir, ...args) {
  return run('git', ['-c', 'user.email=bench@skiff.local', '-c', 'user.name=skiff bench', ...args], { cwd: dir });
}

export function tempDir(prefix) {
  return mkdtempSync(join(tmpdir(), `skiff-bench-${prefix}-`));
}

/** Writes `files` (path → text) into dir and commits them as the first commit of branch main; returns dir. */
export function commitRepo(dir, files, message) {
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  git(dir, 'init', '-q', '-b', 'main');
  git(dir, 'add', '-A');
  git(dir, 'commit', '-q', '-m', message);
  return dir;
}

/** An image that serves an index page on :8080, for readiness probes to find. */
export const HTTPD_DOCKERFILE = 'FROM skiff-base/busybox:1\nRUN mkdir /www && echo ok > /www/index.html\nCMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n';

/**
 * A Deployment template (EJS, as .kube/ holds it) whose pods carry the label
 * app=<name> and run one container of the project's image `image`: `lines` are
 * further keys of that container, `podAnnotations` a YAML flow mapping.
 */
export function deploymentTemplate(name, { replicas = 1, image = 'app', container = 'app', podAnnotations, lines = [] } = {}) {
  return [
    'apiVersion: apps/v1',
    'kind: Deployment',
    `metadata: { name: ${name} }`,
    'spec:',
    `  replicas: ${replicas}`,
    `  selector: { matchLabels: { app: ${name} } }`,
    '  template:',
    '    metadata:',
    `      labels: { app: ${name} }`,
    ...(podAnnotations ? [`      annotations: ${podAnnotations}`] : []),
    '    spec:',
    '      terminationGracePeriodSeconds: 0',
    '      containers:',
    `        - name: ${container}`,
    `          image: <%= images.${image} %>`,
    ...lines.map((l) => `          ${l}`),
    '',
  ].join('\n');
}

export const nonce = () => `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;

/**
 * The `docker build` CLI uses BuildKit only through the buildx plugin; without
 * it the CLI falls back to (or, with DOCKER_BUILDKIT=1, refuses instead of) the
 * classic builder. skiff always uses the classic builder through the Engine API.
 */
export function dockerBuilder() {
  const buildx = spawnSync('docker', ['buildx', 'version'], { encoding: 'utf8' });
  if (buildx.status === 0) return { name: 'BuildKit (buildx)', env: { ...process.env, DOCKER_BUILDKIT: '1' } };
  return { name: 'classic builder (DOCKER_BUILDKIT=0; no buildx plugin for this CLI)', env: { ...process.env, DOCKER_BUILDKIT: '0' } };
}

/** Removes images by reference, ignoring ones already gone. */
export function removeImages(refs) {
  for (let i = 0; i < refs.length; i += 50) spawnSync('docker', ['rmi', '-f', ...refs.slice(i, i + 50)], { encoding: 'utf8' });
}

/** Every local tag of the repositories under a prefix, e.g. 127.0.0.1:5000/bench-x. */
export function localTags(prefix) {
  const out = run('docker', ['images', '--format', '{{.Repository}}:{{.Tag}}']);
  return out.split('\n').filter((l) => l.startsWith(`${prefix}/`));
}

/** The one line bench/run collects: "P1 no-op build: skiff 0.12s vs docker build 1.40s = 0.09x (target <= 0.2x)". */
export function summary(label, ours, theirsName, theirs, target) {
  const ratio = ours / theirs;
  const verdict = ratio <= target ? '' : '  MISSED';
  return `${label}: skiff ${secs(ours)} vs ${theirsName} ${secs(theirs)} = ${ratio.toFixed(2)}x (target <= ${target}x)${verdict}`;
}

/**
 * Starts bench/latency-proxy.mjs in its own process (the benchmarks time
 * commands with spawnSync, which would stall an in-process proxy) and
 * resolves with its port and a stop function.
 */
export function startLatencyProxy(targetPort, oneWayMs) {
  const child = spawnAsync(process.execPath, [join(repoRoot, 'bench', 'latency-proxy.mjs'), String(targetPort), String(oneWayMs)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`latency proxy exited ${code}`)));
    child.stdout.once('data', (d) => resolve({ port: Number(String(d).trim()), stop: () => child.kill() }));
  });
}

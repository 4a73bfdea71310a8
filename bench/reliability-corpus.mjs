// The bad-input corpus (fixtures/bad-inputs) and the "nothing touched" checks
// shared by bench/reliability (row R4) and test/integration/bad-inputs.test.ts.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parse } from 'yaml';
import { basicAuth, commitRepo, kubeconfig, kubectlBin, registryPassword, registryUser, repoRoot, skiffBin, skiffEnv } from './lib.mjs';

export { repoRoot };
export const corpusDir = join(repoRoot, 'fixtures', 'bad-inputs');

/** The cases of fixtures/bad-inputs/manifest.yaml, each with its command (default: deploy staging). */
export function loadCorpus() {
  const { cases } = parse(readFileSync(join(corpusDir, 'manifest.yaml'), 'utf8'));
  const ids = new Set();
  for (const c of cases) {
    if (ids.has(c.id)) throw new Error(`fixtures/bad-inputs/manifest.yaml: case ${c.id} is listed twice`);
    ids.add(c.id);
    c.command ??= ['deploy', 'staging'];
    c.edits ??= [];
    if (typeof c.where !== 'string' || !c.where) throw new Error(`case ${c.id}: "where" (file:line, or object and field) is required`);
    c.message ??= '';
  }
  return cases;
}

/** Bytes for a generated file: random binary (NUL bytes included), a YAML comment, or zeros. */
function filler(bytes, fill) {
  if (fill === 'binary') {
    const b = Buffer.alloc(bytes);
    let x = 0x2545f491;
    for (let i = 0; i < bytes; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      b[i] = x & 0xff;
    }
    b[0] = 0;
    return b;
  }
  if (fill === 'yaml-comment') {
    const line = `# ${'x'.repeat(77)}\n`;
    return Buffer.from(line.repeat(Math.ceil(bytes / line.length)).slice(0, bytes));
  }
  return Buffer.alloc(bytes);
}

/** A fresh Git repository: the base project with the case's edits, committed. */
export function caseRepo(c, parent = tmpdir()) {
  const dir = mkdtempSync(join(parent, `skiff-badin-${c.id}-`));
  cpSync(join(corpusDir, 'base'), dir, { recursive: true });
  for (const e of c.edits) {
    const file = join(dir, e.file);
    mkdirSync(dirname(file), { recursive: true });
    if (e.replace) {
      const [from, to] = e.replace;
      const text = readFileSync(file, 'utf8');
      if (!text.includes(from)) throw new Error(`case ${c.id}: ${e.file} has no ${JSON.stringify(from)}`);
      writeFileSync(file, text.replace(from, to));
    } else if (e.write !== undefined) writeFileSync(file, e.write);
    else if (e.remove) rmSync(file);
    else if (e.symlink) symlinkSync(e.symlink, file);
    else if (e.bytes) writeFileSync(file, filler(e.bytes, e.fill));
    else throw new Error(`case ${c.id}: edit of ${e.file} does nothing`);
  }
  return commitRepo(dir, {}, `bad input: ${c.id}`);
}

/** The environment every corpus command runs with: the test cluster, a registry path of the run, no CI. */
export function corpusEnv(registry) {
  return { ...skiffEnv, KUBECONFIG: kubeconfig, SKIFF_REGISTRY: registry };
}

/** Runs skiff in dir; returns exit code and output. */
export function runSkiff(dir, args, env, timeout = 120_000) {
  const r = spawnSync(skiffBin, args, { cwd: dir, env, encoding: 'utf8', timeout, maxBuffer: 64 << 20 });
  return { exitCode: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '', signal: r.signal };
}

/**
 * What a case's run must look like: exit 2, exactly one line on stderr,
 * "error: …" naming `where` and containing `message`. Returns the problem, or
 * undefined when it holds.
 */
export function judgeCase(c, r) {
  const lines = r.stderr.trimEnd().split('\n');
  const first = lines[0] ?? '';
  if (r.exitCode !== 2) return `exit ${r.exitCode}${r.signal ? ` (${r.signal})` : ''}, not 2: ${first.slice(0, 200)}`;
  if (lines.length !== 1) return `${lines.length} lines on stderr, not one: ${r.stderr.slice(0, 300)}`;
  if (!first.startsWith('error: ')) return `stderr is not "error: …": ${first.slice(0, 200)}`;
  if (!first.includes(c.where)) return `message does not name ${c.where}: ${first.slice(0, 300)}`;
  if (c.message && !first.includes(c.message)) return `message lacks "${c.message}": ${first.slice(0, 300)}`;
  if (first.length > 600) return `message is ${first.length} characters long`;
  return undefined;
}

function kubectl(args) {
  const r = spawnSync(kubectlBin, ['--kubeconfig', kubeconfig, ...args], { encoding: 'utf8', maxBuffer: 256 << 20, timeout: 60_000 });
  if (r.status !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

const SKIFF_KINDS =
  'secrets,configmaps,leases.coordination.k8s.io,services,deployments,statefulsets,daemonsets,jobs,cronjobs,ingresses,persistentvolumeclaims,serviceaccounts,roles,rolebindings';
/**
 * An object as skiff would change it: uid, and a digest of what it writes
 * (labels, annotations, spec, data), not status or resourceVersion, which
 * controllers move on their own.
 */
function fingerprint(o) {
  const { labels, annotations } = o.metadata;
  const written = JSON.stringify([labels, annotations, o.spec, o.data, o.stringData, o.binaryData, o.rules, o.subjects, o.roleRef]);
  return `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name} ${o.metadata.uid} ${createHash('sha256').update(written).digest('hex').slice(0, 12)}`;
}

/**
 * The cluster state a bad input must not change: every namespace, and every
 * object skiff labels (its objects, release records, Leases), by uid and
 * content. Namespaces being deleted (another run's clean-up) are left out, with
 * what is in them.
 */
export function clusterState() {
  const all = JSON.parse(kubectl(['get', 'namespaces', '-o', 'json'])).items;
  const leaving = new Set(all.filter((n) => n.status?.phase === 'Terminating').map((n) => n.metadata.name));
  const lines = new Set(all.filter((n) => !leaving.has(n.metadata.name)).map((n) => `Namespace//${n.metadata.name} ${n.metadata.uid}`));
  for (const selector of ['app.kubernetes.io/managed-by=skiff', 'owner=skiff']) {
    for (const o of JSON.parse(kubectl(['get', SKIFF_KINDS, '-A', '-l', selector, '-o', 'json'])).items) {
      if (!leaving.has(o.metadata.namespace)) lines.add(fingerprint(o));
    }
  }
  return [...lines].sort();
}

/** The registry on :5001 wants the test bed's login. */
const registryHeaders = (host) => (host.endsWith(':5001') ? basicAuth(`${registryUser}:${registryPassword}`) : {});

async function registryGet(host, path) {
  const headers = registryHeaders(host);
  const res = await fetch(`http://${host}${path}`, { headers });
  if (res.status === 404) return undefined;
  if (!res.ok) throw new Error(`registry ${host}${path}: ${res.status}`);
  return res.json();
}

async function catalog(host) {
  const out = [];
  let next = '/v2/_catalog?n=1000';
  while (next) {
    const headers = registryHeaders(host);
    const res = await fetch(`http://${host}${next}`, { headers });
    if (!res.ok) throw new Error(`registry ${host}${next}: ${res.status}`);
    out.push(...((await res.json()).repositories ?? []));
    next = /<([^>]+)>;\s*rel="next"/.exec(res.headers.get('link') ?? '')?.[1];
  }
  return out;
}

/** Both registries' catalogs, and the tags of every repository under the run's prefix. */
export async function registryState(prefix) {
  const out = [];
  for (const host of ['127.0.0.1:5000', '127.0.0.1:5001']) {
    for (const repo of await catalog(host)) {
      out.push(`${host}/${repo}`);
      if (`${host}/${repo}`.startsWith(`${prefix}/`)) {
        const tags = (await registryGet(host, `/v2/${repo}/tags/list`))?.tags ?? [];
        for (const t of tags.sort()) out.push(`${host}/${repo}:${t}`);
      }
    }
  }
  return out.sort();
}

/** What changed between two sorted state lists, as "+added" and "-removed" lines. */
export function stateDiff(before, after) {
  const a = new Set(before);
  const b = new Set(after);
  return [...before.filter((x) => !b.has(x)).map((x) => `-${x}`), ...after.filter((x) => !a.has(x)).map((x) => `+${x}`)];
}

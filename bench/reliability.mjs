#!/usr/bin/env node
// bench/reliability.mjs (run it as bench/reliability): issue 11's trials
// against the real Docker Engine, registries and test cluster, one table at the end.
//   R1 SIGKILL of `skiff deploy` at moments read from its progress output
//   R2 kube-apiserver killed during hooks, applies and tracking, restarted 5–20 s later
//   R3 registry stopped during a push, wrong password, registry answering 500
//   R4 the bad-input corpus (fixtures/bad-inputs): exit 2, file:line, nothing touched
//   R5 concurrent deploys: 5 of one release, 3 of three releases in one namespace
//   R6 leak scan of a full build/test/ship/rollback/history/diff cycle
//   R7 releases of 500 and 2,000 objects
//   R8 a test whose report files are hostile
// Options: --quick (a few trials of each), --only R1,R4, --trials R1=40,
// --budget <minutes> (default 45, quick 4): no new trial starts after it.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import { hostname, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { caseRepo, clusterState, corpusEnv, judgeCase, loadCorpus, registryState, runSkiff, stateDiff } from './reliability-corpus.mjs';
import {
  HTTPD_DOCKERFILE as DOCKERFILE,
  basicAuth,
  commitRepo,
  deploymentTemplate,
  git,
  kubeconfig,
  kubectlBin,
  nonce,
  repoRoot,
  registryPassword as AUTH_PASSWORD,
  registryUser as AUTH_USER,
  sh,
  skiffBin,
  skiffEnv,
} from './lib.mjs';

// ---------------------------------------------------------------------------
// Options

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const opt = (name) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const only = opt('--only')?.split(',');
const trialCounts = Object.fromEntries(
  (opt('--trials') ?? '')
    .split(',')
    .filter(Boolean)
    .map((kv) => kv.split('=')),
);
const budgetMs = Number(opt('--budget') ?? (quick ? 4 : 45)) * 60_000;
const startedAt = Date.now();
const timeLeft = () => budgetMs - (Date.now() - startedAt);
const trials = (id, full, fast) => Number(trialCounts[id] ?? (quick ? fast : full));

const STATE = process.env.SKIFF_STATE ?? '/var/lib/skiff-dev';
const run = nonce();
const baseEnv = { ...skiffEnv, KUBECONFIG: kubeconfig, SKIFF_LOCK_TTL: '5' };
const work = [];
const namespaces = [];
const stops = [];
const log = (s) => process.stderr.write(`[${((Date.now() - startedAt) / 1000).toFixed(0)}s] ${s}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rand = (a, b) => a + Math.random() * (b - a);

// ---------------------------------------------------------------------------
// Processes

const kubectl = (...args) => sh(kubectlBin, ['--kubeconfig', kubeconfig, ...args]);
const kubectlJson = (...args) => {
  const r = kubectl(...args, '-o', 'json');
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.err.trim()}`);
  return JSON.parse(r.out);
};

/**
 * A daemon or script started from here must not inherit the descriptors of
 * whoever started the harness: under `flock` that would be the lock, held for
 * as long as the daemon lives. bash closes every descriptor above 2 first.
 */
const CLOSE_FDS = 'for f in /proc/$$/fd/*; do n=${f##*/}; [ "$n" -gt 2 ] 2>/dev/null && [ "$n" -lt 255 ] && eval "exec $n>&-" 2>/dev/null; done; exec "$@"';
const clean = (cmd, args, opts = {}) => sh('bash', ['-c', CLOSE_FDS, '_', cmd, ...args], opts);
const cleanSpawn = (cmd, args, opts = {}) => spawn('bash', ['-c', CLOSE_FDS, '_', cmd, ...args], opts);

/**
 * skiff in the background: every output line with its time, `on(line)` called
 * for each, so a trial can act on a moment of its progress.
 */
function skiffAsync(dir, args, env, on = () => {}) {
  const t0 = Date.now();
  const child = cleanSpawn(skiffBin, args, { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = [];
  let out = '';
  let err = '';
  const feed = (stream, chunk) => {
    const text = String(chunk);
    if (stream === 'out') out += text;
    else err += text;
    for (const l of text.split('\n')) {
      if (!l) continue;
      lines.push({ at: Date.now() - t0, l });
      on(l, child);
    }
  };
  child.stdout.on('data', (d) => feed('out', d));
  child.stderr.on('data', (d) => feed('err', d));
  const done = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code: code ?? -1, signal, out, err, lines, ms: Date.now() - t0 })));
  return { child, done };
}
const skiff = (dir, args, env) => {
  const t0 = Date.now();
  const r = sh(skiffBin, args, { cwd: dir, env });
  return { ...r, ms: Date.now() - t0 };
};
const lastLine = (r) => (r.err.trim().split('\n').at(-1) ?? '').slice(0, 200);

function tempProject(name, files) {
  const dir = join(tmpdir(), `skiff-rel-${name}-${run}`);
  rmSync(dir, { recursive: true, force: true });
  work.push(dir);
  return commitRepo(dir, files, name);
}

function freshNamespace(prefix) {
  const ns = `${prefix}-${run}`.slice(0, 60);
  namespaces.push(ns);
  return ns;
}

// ---------------------------------------------------------------------------
// The project most trials deploy: a pre-deploy hook, N ConfigMaps and a
// Deployment whose pod template changes with values.greeting (a rollout each time).

const HOOK = `apiVersion: batch/v1
kind: Job
metadata:
  name: <%= release %>-migrate
  annotations: { skiff.io/hook: pre-deploy }
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 0
      containers:
        - name: migrate
          image: <%= images.web %>
          command: ["sh", "-c", "sleep <%= values.hookSeconds %>; echo migrated"]
          resources: { requests: { cpu: 10m, memory: 16Mi } }
`;
const deployment = (name) =>
  deploymentTemplate(`<%= release %>-${name}`, {
    image: 'web',
    container: 'web',
    podAnnotations: '{ greeting: <%= quote(values.greeting) %> }',
    lines: [
      'resources: { requests: { cpu: 10m, memory: 16Mi } }',
      'readinessProbe:',
      '  exec: { command: ["sh", "-c", "sleep <%= values.readySeconds %>; test -f /www/index.html"] }',
      '  timeoutSeconds: 10',
      '  periodSeconds: 1',
    ],
  });

function appProject(name, { configMaps = 20, hook = true, environments = 'staging: {}', extra = {} } = {}) {
  const files = {
    'skiff.yaml': `project: ${name}\nimages:\n  web: {}\nenvironments:\n${environments
      .split('\n')
      .map((l) => `  ${l}`)
      .join('\n')}\ndeploy:\n  historyMax: 10\n  timeout: 2m\n`,
    Dockerfile: DOCKERFILE,
    '.kube/values.yaml': 'greeting: hello\nhookSeconds: 1\nreadySeconds: 0\n',
    '.kube/web.yaml.ejs': deployment('web'),
    ...extra,
  };
  if (hook) files['.kube/hook.yaml.ejs'] = HOOK;
  for (let i = 0; i < configMaps; i++)
    files[`.kube/cm-${i}.yaml.ejs`] =
      `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: <%= release %>-cm-${i} }\ndata: { greeting: <%= quote(values.greeting) %> }\n`;
  return tempProject(name, files);
}

function buildPush(dir, env) {
  const r = skiff(dir, ['build', '--push'], env);
  if (r.code !== 0) throw new Error(`skiff build --push: ${r.err}`);
}

/** The release's history, and what is wrong with it: pending revisions, not exactly one deployed, revisions out of order. */
function historyProblems(dir, env, target, namespace) {
  const r = skiff(dir, ['history', target, '--namespace', namespace, '-o', 'json'], env);
  if (r.code !== 0) return { problems: [`history exit ${r.code}: ${lastLine(r)}`], revisions: [] };
  const revisions = JSON.parse(r.out);
  const problems = [];
  const pending = revisions.filter((x) => x.status.startsWith('pending'));
  if (pending.length) problems.push(`left ${pending.map((x) => `${x.revision} ${x.status}`).join(', ')}`);
  const deployed = revisions.filter((x) => x.status === 'deployed');
  if (deployed.length !== 1) problems.push(`${deployed.length} deployed revisions (${deployed.map((x) => x.revision).join(', ')})`);
  const numbers = revisions.map((x) => x.revision).sort((a, b) => a - b);
  if (numbers.some((n, i) => i > 0 && n <= numbers[i - 1])) problems.push(`revision numbers repeat: ${numbers.join(',')}`);
  return { problems, revisions };
}

// ---------------------------------------------------------------------------
// The table

const rows = [];
function row(id, trial, total, failures, note = '') {
  rows.push({ id, trial, trials: total, passed: total - failures.length, failures, note });
  log(`${id}: ${total - failures.length}/${total} passed${failures.length ? `: ${failures.join(' | ')}` : ''}`);
}

function printTable() {
  const head = ['id', 'trial', 'trials', 'passed', 'found'];
  const body = rows.map((r) => [
    r.id,
    r.trial,
    String(r.trials),
    String(r.passed),
    [r.failures.length ? r.failures.join('; ') : 'every check held', r.note].filter(Boolean).join(' — '),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => (i === 4 ? 0 : b[i].length))));
  const line = (cells) => cells.map((c, i) => (i === 4 ? c : c.padEnd(widths[i]))).join('  ');
  console.log(line(head));
  for (const b of body) console.log(line(b));
  const failed = rows.filter((r) => r.passed !== r.trials);
  console.log(
    `\n${rows.length} rows, ${rows.reduce((n, r) => n + r.trials, 0)} trials, ${failed.length ? `failed rows: ${failed.map((r) => r.id).join(', ')}` : 'every row passed'} (${((Date.now() - startedAt) / 1000).toFixed(0)}s${quick ? ', --quick' : ''})`,
  );
}

// ---------------------------------------------------------------------------
// R1: SIGKILL at a moment of the deploy

const MOMENTS = {
  // Before the record line, the lock is being (or has just been) taken: a random share of the calibrated time to it.
  lock: { trigger: () => false, early: true },
  record: { trigger: (l) => /^release .* revision \d+ \(/.test(l), delay: [0, 50] },
  hook: { trigger: (l) => /^Job\/\S+-migrate: running \(pre-deploy hook\)/.test(l), delay: [0, 800] },
  apply: { trigger: (l) => /^ConfigMap\/\S+-cm-\d+: applied/.test(l), delay: [0, 40] },
  tracking: { trigger: (l) => /^Deployment\/\S+-web: (waiting|progressing)/.test(l), delay: [0, 600] },
  verdict: { trigger: (l) => /^Deployment\/\S+-web: ready/.test(l), delay: [0, 30] },
};

async function r1() {
  const n = trials('R1', 30, 3);
  const ns = freshNamespace('rel-r1');
  const env = { ...baseEnv, SKIFF_REGISTRY: `127.0.0.1:5000/rel-${run}` };
  const dir = appProject('rone', { configMaps: 20 });
  buildPush(dir, env);
  // Calibration: a deploy that is left alone, and when its record line comes.
  const cal = await skiffAsync(dir, ['deploy', 'staging', '--namespace', ns, '--set', 'readySeconds=1'], env).done;
  if (cal.code !== 0) return row('R1', 'SIGKILL of skiff deploy', n, [`calibration deploy failed: ${lastLine(cal)}`]);
  const recordAt = cal.lines.find((x) => MOMENTS.record.trigger(x.l))?.at ?? 1000;
  const failures = [];
  const seen = {};
  let takeoverMax = 0;
  let ran = 0;
  for (let i = 0; i < n && timeLeft() > 60_000; i++) {
    ran++;
    // Round-robin over the six moments; a short run (--quick) takes every other one.
    const moment = Object.keys(MOMENTS)[(n < 6 ? i * 2 : i) % 6];
    const m = MOMENTS[moment];
    let killed = false;
    const kill = (child, ms) =>
      setTimeout(() => {
        if (child.exitCode === null) {
          killed = true;
          child.kill('SIGKILL');
        }
      }, ms);
    let armed = true;
    const args = ['deploy', 'staging', '--namespace', ns, '--set', `greeting=r1-${i}`, '--set', 'readySeconds=1'];
    const { child, done } = skiffAsync(dir, args, env, (l, c) => {
      if (armed && m.trigger(l)) {
        armed = false;
        kill(c, rand(...m.delay));
      }
    });
    if (m.early) kill(child, rand(0.3, 1.0) * recordAt);
    await done;
    seen[moment] = (seen[moment] ?? 0) + (killed ? 1 : 0);
    // The next deploy: no manual step, the dead holder's lock taken over within its expiry (5 s).
    const next = await skiffAsync(dir, ['deploy', 'staging', '--namespace', ns, '--set', `greeting=r1-${i}-next`], env).done;
    const locked = next.lines.find((x) => MOMENTS.record.trigger(x.l))?.at;
    if (next.code !== 0) failures.push(`#${i} (${moment}): next deploy exit ${next.code}: ${lastLine(next)}`);
    else if (locked === undefined || locked > 5_000 + recordAt + 3_000) failures.push(`#${i} (${moment}): lock taken after ${locked}ms`);
    else {
      takeoverMax = Math.max(takeoverMax, locked);
      const { problems } = historyProblems(dir, env, 'staging', ns);
      if (problems.length) failures.push(`#${i} (${moment}): ${problems.join('; ')}`);
    }
  }
  const killed = Object.values(seen).reduce((a, b) => a + b, 0);
  row(
    'R1',
    'SIGKILL of skiff deploy',
    ran,
    failures,
    `killed at: ${Object.entries(seen)
      .map(([k, v]) => `${k} ${v}`)
      .join(
        ', ',
      )} (${killed} of ${ran} killed, the rest finished first); the next deploy had the lock within ${(takeoverMax / 1000).toFixed(1)}s (SKIFF_LOCK_TTL=5)`,
  );
}

// ---------------------------------------------------------------------------
// R2: kube-apiserver killed during a deploy

const apiserverPidFile = join(STATE, 'cluster', 'run', 'kube-apiserver.pid');
function killApiserver() {
  const pid = Number(readFileSync(apiserverPidFile, 'utf8').trim());
  process.kill(pid, 'SIGKILL');
  return pid;
}
function restartCluster() {
  const r = clean(join(repoRoot, 'scripts', 'cluster'), ['up'], { cwd: repoRoot });
  if (r.code !== 0) throw new Error(`scripts/cluster up: ${r.err.slice(-500)}`);
}
async function apiserverReady(ms = 120_000) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (kubectl('get', '--raw', '/readyz').out.trim() === 'ok') return true;
    await sleep(500);
  }
  return false;
}

async function r2() {
  const n = trials('R2', 6, 1);
  const ns = freshNamespace('rel-r2');
  // A run that cannot renew its lock for two thirds of the TTL stops: 40 s outlives the outages (5–20 s plus the restart).
  const env = { ...baseEnv, SKIFF_REGISTRY: `127.0.0.1:5000/rel-${run}`, SKIFF_LOCK_TTL: '60' };
  const dir = appProject('rtwo', { configMaps: 20 });
  buildPush(dir, env);
  const first = skiff(dir, ['deploy', 'staging', '--namespace', ns], env);
  if (first.code !== 0) return row('R2', 'kube-apiserver down 5–20 s', n, [`first deploy failed: ${lastLine(first)}`]);
  const failures = [];
  const downs = [];
  const phases = ['hook', 'apply', 'tracking'];
  let ran = 0;
  for (let i = 0; i < n && timeLeft() > 120_000; i++) {
    ran++;
    const moment = phases[i % 3];
    const down = quick ? rand(5_000, 7_000) : rand(5_000, 20_000);
    let outage;
    const { done } = skiffAsync(
      dir,
      ['deploy', 'staging', '--namespace', ns, '--set', `greeting=r2-${i}`, '--set', 'hookSeconds=4', '--set', 'readySeconds=3'],
      env,
      (l) => {
        if (!outage && MOMENTS[moment].trigger(l)) {
          outage = (async () => {
            killApiserver();
            const t0 = Date.now();
            await sleep(down);
            restartCluster();
            await apiserverReady();
            downs.push(Date.now() - t0);
          })();
        }
      },
    );
    const r = await done;
    await outage;
    if (!outage) failures.push(`#${i} (${moment}): the moment never came (${lastLine(r)})`);
    else if (r.code !== 0) failures.push(`#${i} (${moment}, down ${(down / 1000).toFixed(0)}s): exit ${r.code}: ${lastLine(r)}`);
    else {
      const { problems } = historyProblems(dir, env, 'staging', ns);
      if (problems.length) failures.push(`#${i} (${moment}): ${problems.join('; ')}`);
    }
  }
  // Past the retry bound: exit 3, the record closed as failed once the API server is back. skiff
  // gives up after the bound (10 s) and then spends at most one more bound closing the revision, so
  // the outage (12–14 s plus the API server's start) outlives the first bound but not the second.
  // An outage longer than both leaves the revision for the next deploy, which closes it (R1 and the
  // unit tests in deploy-orchestration-resilience prove that path).
  ran++;
  let outage;
  const bounded = { ...env, SKIFF_KUBE_RETRY_TIMEOUT: '10' };
  const { done } = skiffAsync(
    dir,
    ['deploy', 'staging', '--namespace', ns, '--set', 'greeting=r2-bound', '--set', 'readySeconds=5', '--no-auto-rollback'],
    bounded,
    (l) => {
      if (!outage && MOMENTS.tracking.trigger(l)) {
        outage = (async () => {
          killApiserver();
          await sleep(quick ? 12_000 : 14_000);
          restartCluster();
          await apiserverReady();
        })();
      }
    },
  );
  const r = await done;
  await outage;
  if (r.code !== 3) failures.push(`past the bound: exit ${r.code}, not 3: ${lastLine(r)}`);
  else {
    await sleep(2_000);
    const { revisions } = historyProblems(dir, env, 'staging', ns);
    const last = revisions.sort((a, b) => b.revision - a.revision)[0];
    if (last?.status !== 'failed') failures.push(`past the bound: exit 3, but revision ${last?.revision} is ${last?.status}, not failed`);
  }
  row(
    'R2',
    'kube-apiserver down 5–20 s',
    ran,
    failures,
    `outages ${downs.map((d) => `${(d / 1000).toFixed(0)}s`).join(' ')}, then one of ${quick ? 12 : 14} s past SKIFF_KUBE_RETRY_TIMEOUT=10`,
  );
}

// ---------------------------------------------------------------------------
// R3: registry faults during a push

function startRegistry(port) {
  const dir = join(tmpdir(), `skiff-rel-registry-${port}-${run}`);
  mkdirSync(join(dir, 'data'), { recursive: true });
  work.push(dir);
  writeFileSync(
    join(dir, 'config.yml'),
    `version: 0.1\nlog: { level: error }\nstorage:\n  filesystem: { rootdirectory: ${dir}/data }\nhttp:\n  addr: 127.0.0.1:${port}\n`,
  );
  const child = cleanSpawn('/usr/bin/docker-registry', ['serve', join(dir, 'config.yml')], { stdio: 'ignore' });
  return child;
}
async function registryUp(port, ms = 20_000) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/v2/`)).ok) return;
    } catch {
      // not yet
    }
    await sleep(200);
  }
  throw new Error(`registry on 127.0.0.1:${port} did not start`);
}
async function tagsOf(registry, repo, auth) {
  const [host, ...path] = `${registry}/${repo}`.split('/');
  const headers = auth ? basicAuth(auth) : {};
  try {
    const res = await fetch(`http://${host}/v2/${path.join('/')}/tags/list`, { headers });
    return res.ok ? ((await res.json()).tags ?? []) : [];
  } catch {
    return [];
  }
}

/** An HTTP proxy on 127.0.0.1 in front of :5000 that answers 500 while `failing`. */
async function failingProxy() {
  const state = { failing: true };
  const server = createServer((req, res) => {
    if (state.failing) {
      req.resume();
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('injected failure');
      return;
    }
    const up = httpRequest({ host: '127.0.0.1', port: 5000, method: req.method, path: req.url, headers: { ...req.headers, host: '127.0.0.1:5000' } }, (r) => {
      const headers = { ...r.headers };
      // Upload locations name the registry: point them back at the proxy.
      if (headers.location) headers.location = headers.location.replace('127.0.0.1:5000', `127.0.0.1:${server.address().port}`);
      res.writeHead(r.statusCode, headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  stops.push(() => server.close());
  return { port: server.address().port, state };
}

async function r3() {
  const failures = [];
  let ran = 0;
  // Each project gets a random file, so its image is new to every registry.
  const project = (name) =>
    tempProject(name, {
      'skiff.yaml': `project: ${name}\nimages:\n  web: {}\n`,
      Dockerfile: `${DOCKERFILE}COPY noise /noise\n`,
      noise: randomBytes(3 << 20).toString('hex'),
    });
  const expectFault = async (what, r, registry, auth) => {
    const tags = await tagsOf(registry, 'web', auth);
    if (r.code !== 3) failures.push(`${what}: exit ${r.code}, not 3: ${lastLine(r)}`);
    else if (r.err.trim().split('\n').at(-1).length > 400) failures.push(`${what}: the message is not one short line`);
    if (tags.length) failures.push(`${what}: the registry has tags ${tags.join(',')} after the failure`);
  };
  const recovered = async (what, r, registry, auth) => {
    if (r.code !== 0) failures.push(`${what}, after recovery: exit ${r.code}: ${lastLine(r)}`);
    else if (!(await tagsOf(registry, 'web', auth)).length) failures.push(`${what}, after recovery: nothing in the registry`);
  };
  const rounds = trials('R3', 2, 1);
  for (let i = 0; i < rounds && timeLeft() > 60_000; i++) {
    // 1. The registry stopped in the middle of the push, then started again.
    ran++;
    const port = 5600 + i;
    let reg = startRegistry(port);
    await registryUp(port);
    const registry = `127.0.0.1:${port}/r3-${run}-${i}`;
    const dir = project(`rthree${i}`);
    const env = { ...baseEnv, SKIFF_REGISTRY: registry };
    const { done } = skiffAsync(dir, ['build', '--push'], env, (l) => {
      if (/push|upload/i.test(l) && reg.exitCode === null) reg.kill('SIGKILL');
    });
    const killer = setTimeout(() => reg.kill('SIGKILL'), 1500);
    const stopped = await done;
    clearTimeout(killer);
    await expectFault('registry stopped during push', stopped, registry);
    reg = startRegistry(port);
    await registryUp(port);
    await recovered('registry stopped during push', skiff(dir, ['build', '--push'], env), registry);
    reg.kill('SIGKILL');

    // 2. A wrong password for the htpasswd registry.
    ran++;
    const authReg = `127.0.0.1:5001/r3-${run}-${i}`;
    const dir2 = project(`rthreeauth${i}`);
    const bad = skiff(dir2, ['build', '--push'], {
      ...baseEnv,
      SKIFF_REGISTRY: authReg,
      SKIFF_REGISTRY_USER: AUTH_USER,
      SKIFF_REGISTRY_PASSWORD: 'not-the-password',
      SKIFF_REGISTRY_HOST: '127.0.0.1:5001',
    });
    await expectFault('wrong password', bad, authReg, `${AUTH_USER}:${AUTH_PASSWORD}`);
    if (bad.err.includes('not-the-password')) failures.push('wrong password: the password was printed');
    await recovered(
      'wrong password',
      skiff(dir2, ['build', '--push'], {
        ...baseEnv,
        SKIFF_REGISTRY: authReg,
        SKIFF_REGISTRY_USER: AUTH_USER,
        SKIFF_REGISTRY_PASSWORD: AUTH_PASSWORD,
        SKIFF_REGISTRY_HOST: '127.0.0.1:5001',
      }),
      authReg,
      `${AUTH_USER}:${AUTH_PASSWORD}`,
    );

    // 3. A registry answering 500 to everything, then healthy again.
    ran++;
    const proxy = await failingProxy();
    const viaProxy = `127.0.0.1:${proxy.port}/r3-${run}-500-${i}`;
    const direct = `127.0.0.1:5000/r3-${run}-500-${i}`;
    const dir3 = project(`rthreefive${i}`);
    const env3 = { ...baseEnv, SKIFF_REGISTRY: viaProxy };
    // In the background: the proxy answers from this process's event loop.
    const five = await skiffAsync(dir3, ['build', '--push'], env3).done;
    await expectFault('registry answering 500', five, direct);
    if (five.code === 3 && !/500|Internal Server Error/i.test(lastLine(five)))
      failures.push(`registry answering 500: the message does not say so: ${lastLine(five)}`);
    proxy.state.failing = false;
    await recovered('registry answering 500', await skiffAsync(dir3, ['build', '--push'], env3).done, direct);
  }
  row('R3', 'registry down mid-push / wrong password / 500', ran, failures);
}

// ---------------------------------------------------------------------------
// R4: the bad-input corpus

async function r4() {
  let cases = loadCorpus();
  if (quick && !trialCounts.R4) cases = cases.filter((_, i) => i % 8 === 0);
  else if (trialCounts.R4) cases = cases.slice(0, Number(trialCounts.R4));
  const registry = `127.0.0.1:5000/rel-${run}-badin`;
  const env = corpusEnv(registry);
  const base = caseRepo({ id: 'base', edits: [] });
  work.push(base);
  const build = runSkiff(base, ['build', '--push'], env, 300_000);
  if (build.exitCode !== 0) return row('R4', 'bad inputs (fixtures/bad-inputs)', cases.length, [`base build failed: ${build.stderr.slice(-300)}`]);
  const failures = [];
  let cluster = clusterState();
  let images = await registryState(registry);
  let ran = 0;
  for (const c of cases) {
    if (timeLeft() < 30_000) break;
    ran++;
    const dir = caseRepo(c);
    work.push(dir);
    const r = runSkiff(dir, c.command, env);
    const bad = judgeCase(c, r);
    const [clusterAfter, imagesAfter] = [clusterState(), await registryState(registry)];
    const changed = [...stateDiff(cluster, clusterAfter), ...stateDiff(images, imagesAfter)];
    [cluster, images] = [clusterAfter, imagesAfter];
    if (bad) failures.push(`${c.id}: ${bad}`);
    if (changed.length) failures.push(`${c.id}: wrote ${changed.slice(0, 3).join(' ')}`);
    rmSync(dir, { recursive: true, force: true });
  }
  row('R4', 'bad inputs (fixtures/bad-inputs)', ran, failures, quick ? 'every 8th case' : '');
}

// ---------------------------------------------------------------------------
// R5: concurrent deploys

const overlaps = (a, b) => a.start < b.end && b.start < a.end;
function window(rec) {
  return { start: Date.parse(rec.startedAt), end: Date.parse(rec.finishedAt ?? rec.startedAt) };
}

async function r5() {
  const failures = [];
  const ns = freshNamespace('rel-r5');
  const env = { ...baseEnv, SKIFF_REGISTRY: `127.0.0.1:5000/rel-${run}`, SKIFF_LOCK_TTL: '30' };
  const dir = appProject('rfive', {
    configMaps: 5,
    hook: true,
    environments: `staging: { namespace: ${ns} }\na: { namespace: ${ns} }\nb: { namespace: ${ns} }\nc: { namespace: ${ns} }`,
  });
  buildPush(dir, env);
  // Five of one release at once: serialized by the lock, each waiting or timing out cleanly.
  const same = await Promise.all(
    [0, 1, 2, 3, 4].map((i) => skiffAsync(dir, ['deploy', 'staging', '--set', `greeting=r5-${i}`, '--lock-timeout', '3m'], env).done),
  );
  same.forEach((r, i) => {
    const timedOut = r.code === 1 && /locked by .* gave up after/.test(r.err);
    if (r.code !== 0 && !timedOut) failures.push(`same release #${i}: exit ${r.code}: ${lastLine(r)}`);
    if (/MaxListenersExceededWarning|Warning: /.test(r.err))
      failures.push(`same release #${i}: runtime warning: ${r.err.match(/.*Warning.*/)[0].slice(0, 120)}`);
  });
  const { problems, revisions } = historyProblems(dir, env, 'staging', ns);
  failures.push(...problems.map((p) => `same release: ${p}`));
  const succeeded = same.filter((r) => r.code === 0).length;
  if (revisions.length !== succeeded) failures.push(`same release: ${revisions.length} revisions for ${succeeded} successful deploys`);
  const w = revisions.map(window).sort((a, b) => a.start - b.start);
  for (let i = 1; i < w.length; i++) if (overlaps(w[i - 1], w[i])) failures.push(`same release: revisions ran at the same time (${i}, ${i + 1})`);
  // A live holder with this machine's hostname and boot whose pid is gone here (a job in another container,
  // another PID namespace): the lock is waited for, not taken over.
  const lease = `skiff-lock-rfive-staging`;
  const twin = {
    user: 'ci',
    host: hostname(),
    pid: 2 ** 22 + 4242,
    action: 'deploy',
    runId: `r5-twin-${run}`,
    bootId: readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(),
    pidNamespace: 4026530000,
  };
  const renewed = new Date().toISOString().replace(/Z$/, '000Z');
  const seeded = sh(kubectlBin, ['--kubeconfig', kubeconfig, 'apply', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: lease, namespace: ns },
      spec: { holderIdentity: JSON.stringify(twin), leaseDurationSeconds: 30, acquireTime: renewed, renewTime: renewed },
    }),
  });
  if (seeded.code !== 0) failures.push(`twin holder: kubectl apply: ${seeded.err.trim().slice(0, 120)}`);
  else {
    const waited = skiff(dir, ['deploy', 'staging', '--set', 'greeting=r5-twin', '--lock-timeout', '5s'], env);
    const holder = kubectl('get', 'lease', lease, '-n', ns, '-o', 'jsonpath={.spec.holderIdentity}').out;
    if (waited.code !== 1 || !/locked by deploy by ci@\S+ \(pid \d+\); gave up after 5s/.test(waited.err))
      failures.push(`twin holder: exit ${waited.code}: ${lastLine(waited)}`);
    if (!holder.includes(twin.runId)) failures.push('twin holder: its lease was taken over');
    kubectl('delete', 'lease', lease, '-n', ns, '--ignore-not-found');
  }
  // Three releases in one namespace: in parallel.
  const three = await Promise.all(['a', 'b', 'c'].map((e) => skiffAsync(dir, ['deploy', e, '--set', 'readySeconds=3'], env).done));
  three.forEach((r, i) => r.code !== 0 && failures.push(`release ${'abc'[i]}: exit ${r.code}: ${lastLine(r)}`));
  const ws = ['a', 'b', 'c'].map((e) => historyProblems(dir, env, e, ns)).map((h) => (h.revisions[0] ? window(h.revisions[0]) : undefined));
  if (ws.every(Boolean) && !(overlaps(ws[0], ws[1]) && overlaps(ws[1], ws[2]) && overlaps(ws[0], ws[2])))
    failures.push('three releases: they did not run in parallel (their windows do not overlap)');
  const spread = w.length ? ((w.at(-1).end - w[0].start) / 1000).toFixed(0) : '?';
  const grouped = [
    failures.filter((f) => f.startsWith('same')),
    failures.filter((f) => f.startsWith('twin')),
    failures.filter((f) => !f.startsWith('same') && !f.startsWith('twin')),
  ]
    .filter((g) => g.length)
    .map((g) => g.join('; '));
  row(
    'R5',
    '5 deploys of one release; a live holder with our hostname; 3 releases in one namespace',
    3,
    grouped,
    `${succeeded}/5 deployed one after another in ${spread}s`,
  );
}

// ---------------------------------------------------------------------------
// R6: leak scan

function decodeRecords(namespace) {
  const secrets = kubectlJson('get', 'secrets', '-n', namespace, '-l', 'owner=skiff').items;
  const byRevision = new Map();
  for (const s of secrets) {
    const key = s.metadata.name.replace(/\.part\d+$/, '');
    const part = Number(s.metadata.labels?.['skiff.io/part'] ?? /\.part(\d+)$/.exec(s.metadata.name)?.[1] ?? 0);
    const list = byRevision.get(key) ?? [];
    list[part] = Buffer.concat(Object.values(s.data ?? {}).map((v) => Buffer.from(v, 'base64')));
    byRevision.set(key, list);
  }
  return [...byRevision.values()].map((parts) => {
    const raw = Buffer.concat(parts.filter(Boolean));
    try {
      return gunzipSync(raw).toString('utf8');
    } catch {
      return raw.toString('utf8');
    }
  });
}

function filesUnder(dir) {
  const out = [];
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

async function r6() {
  const failures = [];
  const ns = freshNamespace('rel-r6');
  const secretValue = `leak-${randomBytes(8).toString('hex')}`;
  // A kube token: a ServiceAccount with rights to the cluster, its token in a kubeconfig of its own.
  const sa = `skiff-leak-${run}`.slice(0, 50);
  kubectl('create', 'serviceaccount', sa, '-n', 'default');
  kubectl('create', 'clusterrolebinding', sa, '--clusterrole=cluster-admin', `--serviceaccount=default:${sa}`);
  stops.push(() => {
    kubectl('delete', 'clusterrolebinding', sa, '--ignore-not-found');
    kubectl('delete', 'serviceaccount', sa, '-n', 'default', '--ignore-not-found');
  });
  const token = kubectl('create', 'token', sa, '-n', 'default', '--duration=1h').out.trim();
  const kc = JSON.parse(kubectl('config', 'view', '--raw', '-o', 'json').out);
  const tokenConfigDir = join(tmpdir(), `skiff-rel-kc-${run}`);
  mkdirSync(tokenConfigDir, { recursive: true });
  work.push(tokenConfigDir);
  const tokenConfig = join(tokenConfigDir, 'kubeconfig');
  const cluster = kc.clusters[0].cluster;
  writeFileSync(
    tokenConfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: cluster.server, 'certificate-authority-data': cluster['certificate-authority-data'] } }],
      users: [{ name: 'u', user: { token } }],
      contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'ctx',
    }),
  );
  const known = { 'registry password': AUTH_PASSWORD, 'kube token': token, 'secret value': secretValue };
  const forms = Object.entries(known).flatMap(([what, v]) => [
    [what, v],
    [`${what} (base64)`, Buffer.from(v).toString('base64')],
  ]);
  const scan = (where, text) => {
    for (const [what, v] of forms) if (text.includes(v)) failures.push(`${what} in ${where}`);
  };
  // Build, push and test through the htpasswd registry; the cluster pulls from :5000 (it has no
  // credentials for :5001), so the rest runs against :5000 with the same credentials in its environment.
  const authRegistry = `127.0.0.1:5001/rel-${run}-leak`;
  const env = {
    ...baseEnv,
    KUBECONFIG: tokenConfig,
    SKIFF_REGISTRY: `127.0.0.1:5000/rel-${run}-leak`,
    SKIFF_REGISTRY_USER: AUTH_USER,
    SKIFF_REGISTRY_PASSWORD: AUTH_PASSWORD,
    SKIFF_REGISTRY_HOST: '127.0.0.1:5001',
  };
  const dir = appProject('rsix', {
    configMaps: 1,
    hook: false,
    environments: `staging: { namespace: ${ns} }`,
    extra: {
      '.kube/values.yaml': `greeting: hello\nhookSeconds: 0\nreadySeconds: 0\ndb:\n  password: ${secretValue}\n`,
      '.kube/secret.yaml.ejs': 'apiVersion: v1\nkind: Secret\nmetadata: { name: db }\nstringData:\n  password: <%= quote(values.db.password) %>\n',
    },
  });
  // The test sees the secret in its environment, as a CI variable would pass it.
  writeFileSync(
    join(dir, 'skiff.yaml'),
    readFileSync(join(dir, 'skiff.yaml'), 'utf8').replace(
      'environments:',
      `tests:\n  unit:\n    image: web\n    command: ["sh", "-c", "test -n \\"$DB_PASSWORD\\" && echo checked"]\n    env: { DB_PASSWORD: ${secretValue} }\nenvironments:`,
    ),
  );
  git(dir, 'commit', '-qam', 'test');
  // Sample every process's argument list while the cycle runs.
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      for (const p of readdirSync('/proc')) {
        if (!/^\d+$/.test(p)) continue;
        try {
          const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').replaceAll('\0', ' ');
          for (const [what, v] of forms) if (cmd.includes(v)) failures.push(`${what} in the argument list of pid ${p} (${cmd.slice(0, 60)})`);
        } catch {
          // gone
        }
      }
      await sleep(100);
    }
  })();
  const cycle = [
    ['build', '--push', '--registry', authRegistry],
    ['test', '--registry', authRegistry],
    ['build', '--push'],
    ['ship', 'staging'],
    ['deploy', 'staging', '--set', 'greeting=second'],
    ['rollback', 'staging'],
    ['history', 'staging'],
    ['history', 'staging', '-o', 'json'],
    ['diff', 'staging', '--set', 'greeting=third'],
    ['status', 'staging'],
    ['render', 'staging'],
  ];
  for (const args of cycle) {
    const r = await skiffAsync(dir, args, env).done;
    if (r.code !== 0 && !(args[0] === 'diff' && r.code === 1)) failures.push(`skiff ${args.join(' ')}: exit ${r.code}: ${lastLine(r)}`);
    scan(`the output of skiff ${args.join(' ')}`, r.out + r.err);
  }
  sampling = false;
  await sampler;
  for (const f of filesUnder(join(dir, '.skiff'))) scan(relative(dir, f), readFileSync(f, 'latin1'));
  decodeRecords(ns).forEach((text, i) => scan(`release record ${i + 1}`, text));
  scan('Leases', kubectl('get', 'leases', '-n', ns, '-o', 'json').out);
  scan('events', kubectl('get', 'events', '-n', ns, '-o', 'json').out);
  const objects = kubectlJson('get', 'all,configmaps,secrets,serviceaccounts,jobs', '-n', ns).items;
  scan('annotations and labels', JSON.stringify(objects.map((o) => [o.metadata.annotations, o.metadata.labels])));
  scan('ConfigMaps', JSON.stringify(objects.filter((o) => o.kind === 'ConfigMap')));
  const unique = [...new Set(failures)];
  row(
    'R6',
    'leak scan: build/test/ship/rollback/history/diff',
    1,
    unique.length ? [unique.slice(0, 6).join('; ')] : [],
    `${cycle.length} commands, /proc/*/cmdline sampled every 100 ms`,
  );
}

// ---------------------------------------------------------------------------
// R7: large releases

async function r7() {
  const failures = [];
  const sizes = quick && !trialCounts.R7 ? [500] : [500, 2000];
  let ran = 0;
  for (const size of sizes) {
    if (timeLeft() < 120_000) break;
    ran++;
    const ns = freshNamespace(`rel-r7-${size}`);
    const env = { ...baseEnv, SKIFF_REGISTRY: `127.0.0.1:5000/rel-${run}` };
    const files = {
      'skiff.yaml': `project: rseven${size}\nimages:\n  web: {}\nenvironments:\n  staging: { namespace: ${ns} }\ndeploy:\n  historyMax: 2\n  timeout: 5m\n`,
      Dockerfile: DOCKERFILE,
      '.kube/values.yaml': 'round: 1\n',
    };
    // One file of many documents, each ConfigMap with 1 KB of random text (compresses little).
    const docs = [];
    for (let i = 0; i < size; i++)
      docs.push(
        `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: cm-${i} }\ndata:\n  round: "<%= values.round %>"\n  blob: "${randomBytes(500).toString('hex')}"\n`,
      );
    files['.kube/many.yaml.ejs'] = docs.join('---\n');
    const dir = tempProject(`rseven${size}`, files);
    buildPush(dir, env);
    const times = [];
    for (const round of [1, 2, 3]) {
      const r = skiff(dir, ['deploy', 'staging', '--set', `round=${round}`], env);
      times.push(r.ms);
      if (r.code !== 0) failures.push(`${size}: deploy ${round}: exit ${r.code}: ${lastLine(r)}`);
    }
    const secrets = kubectlJson('get', 'secrets', '-n', ns, '-l', 'owner=skiff').items;
    for (const s of secrets) {
      const bytes = Object.values(s.data ?? {}).reduce((n, v) => n + Buffer.from(v, 'base64').length, 0);
      if (bytes >= 1 << 20) failures.push(`${size}: ${s.metadata.name} holds ${bytes} bytes, over 1 MiB`);
    }
    const revs = new Set(secrets.map((s) => s.metadata.labels?.version));
    if (revs.size > 2) failures.push(`${size}: ${revs.size} revisions kept with historyMax 2`);
    const rb = skiff(dir, ['rollback', 'staging'], env);
    if (rb.code !== 0) failures.push(`${size}: rollback exit ${rb.code}: ${lastLine(rb)}`);
    const { problems, revisions } = historyProblems(dir, env, 'staging', ns);
    failures.push(...problems.map((p) => `${size}: ${p}`));
    const cm = kubectlJson('get', 'configmap', 'cm-0', '-n', ns);
    if (cm.data?.round !== '2') failures.push(`${size}: after rollback cm-0 has round ${cm.data?.round}, not 2`);
    const count = kubectlJson('get', 'configmaps', '-n', ns, '-l', `skiff.io/release=rseven${size}-staging`).items.length;
    if (count !== size) failures.push(`${size}: ${count} ConfigMaps live`);
    log(
      `R7 ${size} objects: deploys ${times.map((t) => `${(t / 1000).toFixed(1)}s`).join(' ')}, rollback ${(rb.ms / 1000).toFixed(1)}s, ${secrets.length} record Secrets, revisions ${revisions.map((x) => x.revision).join(',')}`,
    );
    rows.r7note = `${rows.r7note ?? ''}${size}: first deploy ${(times[0] / 1000).toFixed(0)}s, ${secrets.length} record Secrets; `;
  }
  const skipped = sizes.slice(ran);
  row(
    'R7',
    `releases of ${sizes.join(' and ')} ConfigMaps`,
    sizes.length,
    [...(failures.length ? [failures.join('; ')] : []), ...skipped.map((n) => `${n}: not run, out of time budget`)],
    rows.r7note ?? '',
  );
}

// ---------------------------------------------------------------------------
// R8: hostile report files

function walk(dir) {
  const out = [];
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    out.push(p);
    if (lstatSync(p).isDirectory()) out.push(...walk(p));
  }
  return out;
}

async function r8() {
  const failures = [];
  const marker = join(tmpdir(), `skiff-r8-escape-${run}`);
  const command = [
    'mkdir -p /out/sub',
    'mkdir -p /good && echo "<testsuite/>" > /good/report.xml',
    'ln -s /etc/shadow /out/shadow.xml',
    'ln -s /etc /out/etc',
    `ln -s ../../../../../../../..${marker} /out/escape`,
    'ln -s ../../../../../../../../tmp /out/sub/tmp',
    'truncate -s 1G /out/big.bin',
    'echo ok',
  ].join(' && ');
  const dir = tempProject('reight', {
    'skiff.yaml': `project: reight\nimages:\n  web: {}\ntests:\n  hostile:\n    image: web\n    command: ${JSON.stringify(['sh', '-c', command])}\n    reports: ["/good/report.xml", "/out", "/out/shadow.xml", "/out/escape"]\n`,
    Dockerfile: DOCKERFILE,
  });
  const before = new Set(walk(dir).filter((p) => !p.includes('/.git/')));
  const env = { ...baseEnv, SKIFF_REGISTRY: `127.0.0.1:5000/rel-${run}`, SKIFF_REPORT_MAX_MB: '16' };
  const r = skiff(dir, ['test', 'hostile'], env);
  if (r.code !== 0 && r.code !== 1) failures.push(`exit ${r.code}: ${lastLine(r)}`);
  if (!/over the report size cap/.test(r.err)) failures.push(`no size-cap warning in: ${r.err.slice(-300)}`);
  if (existsSync(marker)) failures.push(`${marker} was written`);
  const reports = join(dir, '.skiff', 'reports', 'hostile');
  const reportsReal = existsSync(reports) ? realpathSync(reports) : reports;
  let total = 0;
  for (const p of walk(dir)) {
    if (p.includes('/.git/') || before.has(p)) continue;
    const st = lstatSync(p);
    const inside =
      p.startsWith(`${reports}/`) ||
      p === reports ||
      p === join(dir, '.skiff') ||
      p === join(dir, '.skiff', '.gitignore') || // skiff's own: .skiff ignores itself
      p === join(dir, '.skiff', 'reports') ||
      p.startsWith(join(dir, '.skiff', 'reports', 'junit'));
    if (!inside) failures.push(`wrote ${relative(dir, p)}, outside .skiff/reports/hostile/`);
    if (st.isSymbolicLink()) {
      const target = readlinkSync(p);
      let real;
      try {
        real = realpathSync(p);
      } catch {
        real = target;
      }
      if (!real.startsWith(`${reportsReal}/`)) failures.push(`${relative(dir, p)} is a symlink to ${target}`);
    } else if (st.isFile()) total += st.blocks * 512;
  }
  const copied = walk(reports).some((p) => p.endsWith('/report.xml') && lstatSync(p).isFile());
  if (!copied)
    failures.push(
      `the plain report.xml was not copied (${
        walk(reports)
          .map((p) => relative(reports, p))
          .join(', ') || 'nothing'
      }): ${lastLine(r)}`,
    );
  if (total > 17 << 20) failures.push(`${(total / (1 << 20)).toFixed(0)} MiB copied, over the 16 MiB cap`);
  row(
    'R8',
    'hostile test reports (symlinks, 1 GB file)',
    1,
    failures.length ? [failures.join('; ')] : [],
    `${(total / (1 << 20)).toFixed(1)} MiB copied under a 16 MiB cap; Docker's archive API cannot carry ../ or absolute tar names, so those are covered by the unit tests of the extraction`,
  );
}

// ---------------------------------------------------------------------------

const ALL = { R1: r1, R2: r2, R3: r3, R4: r4, R5: r5, R6: r6, R7: r7, R8: r8 };
const selected = Object.keys(ALL).filter((id) => !only || only.includes(id));
let exitCode = 0;
const hardStop = setTimeout(
  () => {
    log(`budget of ${budgetMs / 60_000} min exceeded by 5 min; stopping`);
    printTable();
    process.exit(1);
  },
  budgetMs + 5 * 60_000,
);
try {
  if (kubectl('get', '--raw', '/readyz').out.trim() !== 'ok') throw new Error('the test cluster is not ready: run scripts/cluster up');
  for (const id of selected) {
    if (timeLeft() <= 0) {
      rows.push({ id, trial: 'not run: out of time budget', trials: 0, passed: 0, failures: ['not run'], note: '' });
      continue;
    }
    log(`${id} …`);
    try {
      await ALL[id]();
    } catch (e) {
      row(id, 'harness error', 1, [
        String(e.message ?? e)
          .split('\n')[0]
          .slice(0, 300),
      ]);
    }
  }
} finally {
  clearTimeout(hardStop);
  for (const s of stops.splice(0)) {
    try {
      s();
    } catch {
      // best effort
    }
  }
  for (const ns of namespaces) kubectl('delete', 'namespace', ns, '--wait=false', '--ignore-not-found');
  for (const d of work) rmSync(d, { recursive: true, force: true });
}
printTable();
if (rows.some((r) => r.passed !== r.trials)) exitCode = 1;
process.exit(exitCode);

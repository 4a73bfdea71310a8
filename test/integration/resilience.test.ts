// Faults injected into the real components: the kube-apiserver killed and
// restarted during a deploy (what a managed cluster's control-plane upgrade
// does), an outage longer than the retry bound, and a test image whose report
// files are hostile. Run it under /tmp/skiff-heavy.lock: it stops the API
// server every other test uses.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeconfigPath, kubectl, repoRoot, requireCluster, uniqueSuffix, waitFor } from '../helpers/cluster.js';
import { editFile, commitAll, fixtureRepo, removeTempDirs, skiff, skiffBin, uniqueRegistry } from '../helpers/skiff.js';

const STATE = process.env.SKIFF_STATE ?? '/var/lib/skiff-dev';
const APISERVER_PID = join(STATE, 'cluster', 'run', 'kube-apiserver.pid');

let dir: string;
let registry: string;
let namespace: string;
const env = (extra: Record<string, string> = {}) => ({ KUBECONFIG: kubeconfigPath(), SKIFF_REGISTRY: registry, SKIFF_LOCK_TTL: '10', ...extra });

async function history() {
  const r = await skiff(['history', 'staging', '--namespace', namespace, '-o', 'json'], { cwd: dir, env: env() });
  expect(r.exitCode, r.all).toBe(0);
  return JSON.parse(r.stdout) as Array<{ revision: number; status: string; description: string }>;
}

/** No pending revision, exactly one deployed (the last), revision numbers strictly increasing. */
async function expectConsistentHistory() {
  const h = await history();
  expect(h.filter((r) => r.status.startsWith('pending'))).toEqual([]);
  expect(h.filter((r) => r.status === 'deployed').map((r) => r.revision)).toEqual([h.at(-1)!.revision]);
  for (let i = 1; i < h.length; i++) expect(h[i]!.revision).toBeGreaterThan(h[i - 1]!.revision);
  return h;
}

function startDeploy(extra: Record<string, string> = {}, ...args: string[]): ResultPromise<{ all: true; reject: false }> {
  return execa(skiffBin, ['deploy', 'staging', '--namespace', namespace, '--timeout', '3m', '--no-auto-rollback', ...args], {
    cwd: dir,
    env: { ...process.env, CI: undefined, GITLAB_CI: undefined, NO_COLOR: '1', ...env(extra) },
    extendEnv: false,
    reject: false,
    all: true,
  });
}

async function waitForLease() {
  await waitFor(async () => (await kubectl(['-n', namespace, 'get', 'lease', 'skiff-lock-hello-staging'], { allowFailure: true })).exitCode === 0, 120_000, {
    description: 'the deploy to take its lock',
    intervalMs: 100,
  });
}

async function killApiServer(): Promise<number> {
  const pid = Number((await readFile(APISERVER_PID, 'utf8')).trim());
  process.kill(pid, 'SIGKILL');
  return pid;
}

async function apiServerBack() {
  const r = await execa(join(repoRoot, 'scripts', 'cluster'), ['up'], { reject: false, all: true });
  expect(r.exitCode, r.all).toBe(0);
  await waitFor(async () => (await kubectl(['get', '--raw', '/readyz'], { allowFailure: true })).exitCode === 0, 120_000, {
    description: 'the API server to be ready',
  });
}

beforeAll(async () => {
  await requireCluster();
  dir = await fixtureRepo('hello');
  registry = uniqueRegistry();
  namespace = `resil-${uniqueSuffix()}`;
  const r = await skiff(['build', '--push'], { cwd: dir, env: env() });
  expect(r.exitCode, r.all).toBe(0);
  const first = await skiff(['deploy', 'staging', '--namespace', namespace, '--timeout', '3m'], { cwd: dir, env: env() });
  expect(first.exitCode, first.all).toBe(0);
}, 600_000);

afterAll(async () => {
  // Whatever happened, leave the API server running for everybody else.
  await execa(join(repoRoot, 'scripts', 'cluster'), ['up'], { reject: false });
  await kubectl(['delete', 'namespace', namespace, '--wait=false', '--ignore-not-found'], { allowFailure: true });
  await removeTempDirs();
}, 300_000);

describe('the kube-apiserver restarts during a deploy', () => {
  it('down for ~8 s during hooks/apply: the deploy rides through, keeps its lock and completes', async () => {
    // Within the renew deadline (two thirds of SKIFF_LOCK_TTL: 40 s), the outage and the API server's restart included.
    const child = startDeploy({ SKIFF_LOCK_TTL: '60' }, '--set', 'greeting=through-the-outage');
    await waitForLease();
    await new Promise((r) => setTimeout(r, 1000));
    await killApiServer();
    await new Promise((r) => setTimeout(r, 8000));
    await apiServerBack();
    const r = await child;
    expect(r.exitCode, r.all).toBe(0);
    expect(r.all).not.toMatch(/lost the lock|MaxListenersExceededWarning/);
    const h = await expectConsistentHistory();
    expect(h.at(-1)!.status).toBe('deployed');
    expect((await kubectl(['-n', namespace, 'get', 'lease'], { allowFailure: true })).stdout).not.toMatch(/skiff-lock/);
  }, 300_000);

  it('down past SKIFF_KUBE_RETRY_TIMEOUT: exit 3 naming the API server and context; the next deploy closes the revision and succeeds', async () => {
    // The lock's renew deadline (40 s) outlives both bounds: giving up on the API server is this run's end, not losing the lock.
    const child = startDeploy({ SKIFF_KUBE_RETRY_TIMEOUT: '4', SKIFF_LOCK_TTL: '60' }, '--set', 'greeting=gave-up');
    await waitForLease();
    await new Promise((r) => setTimeout(r, 500));
    await killApiServer();
    const r = await child;
    await apiServerBack();
    expect(r.exitCode, r.all).toBe(3);
    expect(r.stderr).toMatch(
      /error: Kubernetes API https:\/\/127\.0\.0\.1:6443 \(context skiff\)[^\n]*(unreachable|could not be resumed)[^\n]*SKIFF_KUBE_RETRY_TIMEOUT/,
    );
    const next = await skiff(['deploy', 'staging', '--namespace', namespace, '--timeout', '3m', '--lock-timeout', '60s'], { cwd: dir, env: env() });
    expect(next.exitCode, next.all).toBe(0);
    const h = await expectConsistentHistory();
    expect(h.at(-2)!.status).toBe('failed');
  }, 300_000);
});

describe('a test image whose reports are hostile', () => {
  it('symlinks to host files, a hardlink, a device and a 1 GB file: only regular files land in .skiff/reports/unit/, each other entry is a warning', async () => {
    await editFile(dir, 'skiff.yaml', (t) =>
      t
        .replace(
          'command: ["sh", "-c", "/app/run-tests"]',
          `command: ["sh", "-c", 'mkdir -p /out/sub && echo "<testsuite/>" > /out/junit.xml && ln -s /etc/passwd /out/passwd-link && ln -s / /out/root && echo a > /out/sub/a && ln /out/sub/a /out/sub/hard && mknod /out/null c 1 3 && dd if=/dev/zero of=/out/zz-big bs=1M count=1024 2>/dev/null']`,
        )
        .replace('reports: ["/tmp/report.xml"]', 'reports: ["/out"]'),
    );
    await commitAll(dir, 'hostile reports');
    const r = await skiff(['test'], { cwd: dir, env: env(), timeoutMs: 300_000 });
    expect(r.exitCode, r.all).toBe(0);
    const { stdout: found } = await execa('find', [join(dir, '.skiff', 'reports'), '-printf', '%P %y\n']);
    expect(found.split('\n').sort()).toEqual(
      [' d', 'junit.xml f', 'unit d', 'unit/out d', 'unit/out/junit.xml f', 'unit/out/sub d', 'unit/out/sub/a f'].sort(),
    );
    expect(r.stderr).toMatch(/unit: report entry out\/passwd-link: a symlink entry to \/etc\/passwd; only regular files are copied/);
    expect(r.stderr).toMatch(/unit: report entry out\/root: a symlink entry to \/; only regular files are copied/);
    expect(r.stderr).toMatch(/unit: report entry out\/sub\/hard: a link entry to out\/sub\/a; only regular files are copied/);
    expect(r.stderr).toMatch(/unit: report entry out\/null: a character-device entry; only regular files are copied/);
    expect(r.stderr).toMatch(
      /unit: report entry out\/zz-big: 1024\.0 MiB is over the report size cap \(64\.0 MiB per test, [\d.]+ (MiB|bytes) left\); not copied/,
    );
  }, 600_000);
});

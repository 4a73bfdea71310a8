import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeconfigPath, kubectl, kubectlJson, requireCluster, uniqueSuffix } from '../helpers/cluster.js';
import { commitAll, editFile, fixtureRepo, removeTempDirs, skiff, skiffBin, uniqueRegistry } from '../helpers/skiff.js';

// Issue #13: whatever is not ready says why, live while tracking, at the end, and in `skiff status`.
let dir: string;
let registry: string;
let namespace: string;
const env = () => ({ KUBECONFIG: kubeconfigPath(), SKIFF_REGISTRY: registry });
const deploy = (...args: string[]) => skiff(['deploy', 'staging', '--namespace', namespace, '--timeout', '3m', ...args], { cwd: dir, env: env() });
const status = () => skiff(['status', 'staging', '--namespace', namespace], { cwd: dir, env: env() });

/** A deploy whose stderr lines are timestamped as they arrive. */
async function streamedDeploy(...args: string[]) {
  const child = execa(skiffBin, ['deploy', 'staging', '--namespace', namespace, ...args], {
    cwd: dir,
    env: { ...process.env, ...env(), CI: '', NO_COLOR: '1' },
    reject: false,
  });
  const lines: Array<{ at: number; line: string }> = [];
  let partial = '';
  child.stderr.on('data', (d: Buffer) => {
    const at = Date.now();
    const parts = (partial + d.toString()).split('\n');
    partial = parts.pop()!;
    for (const line of parts) lines.push({ at, line });
  });
  const started = Date.now();
  const r = await child;
  if (partial) lines.push({ at: Date.now(), line: partial });
  return { exitCode: r.exitCode, stderr: String(r.stderr), lines, durationMs: Date.now() - started };
}

const PROBE = 'exec `test -f /www/missing.html`';

beforeAll(async () => {
  await requireCluster();
  dir = await fixtureRepo('hello');
  registry = uniqueRegistry();
  namespace = `hello-explain-${uniqueSuffix()}`;
  const r = await skiff(['build', '--push'], { cwd: dir, env: env() });
  expect(r.exitCode, r.all).toBe(0);
  const first = await deploy();
  expect(first.exitCode, first.all).toBe(0);
});

afterAll(async () => {
  await kubectl(['delete', 'namespace', namespace, '--wait=false', '--ignore-not-found'], { allowFailure: true });
  await removeTempDirs();
});

describe('not ready, and why', () => {
  it('a failing readiness probe is named live within seconds of its first failure, and in the final report', async () => {
    const probe = '          readinessProbe:\n            httpGet: { path: /, port: 8080 }\n';
    await editFile(dir, '.kube/deployment.yaml.ejs', (t) => {
      expect(t).toContain(probe);
      return t.replace(probe, '          readinessProbe:\n            exec: { command: ["test", "-f", "/www/missing.html"] }\n');
    });
    await commitAll(dir, 'a readiness probe that never passes');
    const r = await streamedDeploy('--timeout', '20s', '--no-auto-rollback');
    expect(r.exitCode, r.stderr).toBe(1);

    const live = r.lines.find((l) => /^Deployment\/hello-app: waiting \(.*readiness probe failing/.test(l.line));
    expect(live, r.stderr).toBeDefined();
    expect(live!.line).toContain(`${PROBE} in container web`);
    const pod = /pod (hello-app-[\w-]+): readiness probe/.exec(live!.line)![1]!;

    const events = await kubectlJson(['-n', namespace, 'get', 'events', '--field-selector', `involvedObject.name=${pod},reason=Unhealthy`]);
    const firsts = (events.items as Array<Record<string, string>>)
      .map((e) => Date.parse(e.firstTimestamp ?? e.eventTime ?? ''))
      .filter((t) => !Number.isNaN(t))
      .sort((a, b) => a - b);
    expect(firsts.length, JSON.stringify(events.items)).toBeGreaterThan(0);
    const latencyMs = live!.at - firsts[0]!;
    console.log(`readiness probe line ${latencyMs} ms after the first Unhealthy event`);
    // firstTimestamp has whole seconds: allow one for the granularity.
    expect(latencyMs).toBeLessThanOrEqual(6000);

    expect(r.stderr).toMatch(
      new RegExp(
        `Deployment/hello-app: not ready: pod ${pod}: readiness probe failed \\d+ times?: ${PROBE.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} in container web`,
      ),
    );
  });

  it('skiff status names the same cause for the Deployment', async () => {
    const s = await status();
    expect(s.exitCode, s.all).toBe(0);
    expect(s.stdout).toMatch(/Deployment\/hello-app\s+progressing\s+.*readiness probe failed \d+ times?: exec `test -f \/www\/missing\.html` in container web/);
    expect(s.stdout).toMatch(/Service\/hello\s+ready\s+exists/);
  });

  it('skiff status: a Service whose selector matches no ready pod is not ready', async () => {
    await execa('git', ['revert', '--no-edit', 'HEAD'], {
      cwd: dir,
      env: { GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' },
    });
    await writeFile(
      join(dir, '.kube/ghost-service.yaml'),
      [
        'apiVersion: v1',
        'kind: Service',
        'metadata:',
        '  name: hello-ghost',
        '  annotations: { skiff.io/lint-skip: dangling-service }',
        'spec:',
        '  selector: { app: nobody }',
        '  ports:',
        '    - port: 80',
        '',
      ].join('\n'),
    );
    await commitAll(dir, 'a Service that selects nothing');
    const d = await deploy();
    expect(d.exitCode, d.all).toBe(0);
    const s = await status();
    expect(s.exitCode, s.all).toBe(0);
    expect(s.stdout).toMatch(/Service\/hello-ghost\s+not ready\s+no ready endpoints \(selector app=nobody matches no ready pod\)/);
    expect(s.stdout).toMatch(/Service\/hello\s+ready\s+exists/);
    expect(s.stdout).toMatch(/Deployment\/hello-app\s+ready/);
  });

  it('a PVC naming a storage class that does not exist is explained while pending, and fails the deploy early', async () => {
    await writeFile(
      join(dir, '.kube/scratch-pvc.yaml'),
      [
        'apiVersion: v1',
        'kind: PersistentVolumeClaim',
        'metadata:',
        '  name: hello-scratch',
        'spec:',
        '  storageClassName: does-not-exist',
        '  accessModes: [ReadWriteOnce]',
        '  resources:',
        '    requests:',
        '      storage: 16Mi',
        '',
      ].join('\n'),
    );
    await commitAll(dir, 'a claim on a class that does not exist');
    const r = await streamedDeploy('--timeout', '60s', '--no-auto-rollback');
    expect(r.exitCode, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/PersistentVolumeClaim\/hello-scratch: waiting \(Pending: storage class "does-not-exist" does not exist\)/);
    expect(r.stderr).toMatch(/PersistentVolumeClaim\/hello-scratch: StorageClassNotFound/);
    expect(r.stderr).toMatch(/message: storage class "does-not-exist" does not exist/);
    expect(r.stderr).not.toMatch(/timed out/);
    expect(r.durationMs).toBeLessThan(55_000);
    const pvc = await kubectlJson(['-n', namespace, 'get', 'pvc', 'hello-scratch']);
    expect(pvc.status.phase).toBe('Pending');
  });
});

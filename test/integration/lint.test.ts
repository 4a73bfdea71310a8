import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeconfigPath, kubectl, requireCluster, uniqueSuffix } from '../helpers/cluster.js';
import { commitAll, editFile, fixtureRepo, removeTempDirs, skiff, uniqueRegistry } from '../helpers/skiff.js';

let dir: string;
let registry: string;
let namespace: string;
const env = () => ({ KUBECONFIG: kubeconfigPath(), SKIFF_REGISTRY: registry });
const run = (...args: string[]) => skiff([...args, '--namespace', namespace], { cwd: dir, env: env() });
const namespaceExists = async () => (await kubectl(['get', 'namespace', namespace], { allowFailure: true })).exitCode === 0;

beforeAll(async () => {
  await requireCluster();
  dir = await fixtureRepo('hello');
  registry = uniqueRegistry();
  namespace = `hello-lint-${uniqueSuffix()}`;
  const r = await skiff(['build', '--push'], { cwd: dir, env: env() });
  expect(r.exitCode, r.all).toBe(0);
});

afterAll(async () => {
  await kubectl(['delete', 'namespace', namespace, '--wait=false', '--ignore-not-found'], { allowFailure: true });
  await removeTempDirs();
});

describe('skiff lint', () => {
  it('the hello fixture has no errors, only warnings', async () => {
    const r = await run('lint', 'staging');
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stdout).toMatch(/: 0 errors, \d+ warnings?$/m);
    expect(r.stdout).toMatch(
      /^warning: \.kube\/deployment\.yaml\.ejs:1: Deployment\/hello-app spec\.template\.spec\.containers\[0\]\.resources\.requests: .* \[unset-requests\]$/m,
    );
    const json = await run('lint', 'staging', '-o', 'json');
    expect(JSON.parse(json.stdout)).toMatchObject({ errors: 0, cluster: true });
    expect((await run('lint', 'staging', '--strict')).exitCode).toBe(2);
  });

  it('a Service selector typo is an error with file:line, and deploy applies nothing', async () => {
    await editFile(dir, '.kube/service.yaml', (t) => t.replace('selector: { app: hello }', 'selector: { app: wbe }'));
    await commitAll(dir, 'typo');
    const r = await run('lint', 'staging');
    expect(r.exitCode, r.all).toBe(2);
    expect(r.stdout).toMatch(
      /^error: \.kube\/service\.yaml:1: Service\/hello spec\.selector: no pods found matching service labels app=wbe .*\[dangling-service\]$/m,
    );

    const d = await run('deploy', 'staging', '--timeout', '1m');
    expect(d.exitCode, d.all).toBe(2);
    expect(d.stderr).toContain('.kube/service.yaml:1: Service/hello spec.selector: no pods found matching service labels app=wbe');
    expect(await namespaceExists()).toBe(false);
  });

  it('a missing ConfigMap key is caught before apply', async () => {
    await editFile(dir, '.kube/service.yaml', (t) => t.replace('app: wbe', 'app: hello'));
    await editFile(dir, '.kube/deployment.yaml.ejs', (t) =>
      t.replace(
        '          envFrom:',
        '          env:\n            - name: MODE\n              valueFrom: { configMapKeyRef: { name: hello-config, key: MODE } }\n          envFrom:',
      ),
    );
    await commitAll(dir, 'missing key');
    const d = await run('deploy', 'staging', '--timeout', '1m');
    expect(d.exitCode, d.all).toBe(2);
    expect(d.stderr).toMatch(
      /\.kube\/deployment\.yaml\.ejs:1: Deployment\/hello-app spec\.template\.spec\.containers\[0\]\.env\[0\]\.valueFrom\.configMapKeyRef: ConfigMap\/hello-config has no key "MODE".*\[missing-config\]/,
    );
    expect(await namespaceExists()).toBe(false);
  });
});

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { connectionOptions, kubeconfigPaths, needsFullSupport, selectContext } from '../../src/adapters/kubeconfig.js';
import { loadFullConnection } from '../../src/adapters/kubeconfig-full.js';
import { ConfigError } from '../../src/errors.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');

const team = {
  path: '/home/dev/.kube/team.yaml',
  text: `
apiVersion: v1
kind: Config
current-context: staging
clusters:
  - name: staging
    cluster: { server: "https://staging.example:6443/", certificate-authority: certs/ca.crt }
  - name: prod
    cluster: { server: "https://prod.example:6443", certificate-authority-data: ${b64('PROD CA')}, tls-server-name: api.prod }
users:
  - name: ci
    user: { token: secret-token }
  - name: dev
    user: { client-certificate: /abs/dev.crt, client-key-data: ${b64('DEV KEY')} }
  - name: oidc
    user: { exec: { apiVersion: client.authentication.k8s.io/v1, command: kubelogin } }
contexts:
  - name: staging
    context: { cluster: staging, user: ci, namespace: shop }
  - name: prod
    context: { cluster: prod, user: dev }
  - name: sso
    context: { cluster: prod, user: oidc }
  - name: broken
    context: { cluster: nowhere, user: ci }
`,
};
const personal = {
  path: '/home/dev/.kube/config',
  text: `
current-context: prod
clusters:
  - name: staging
    cluster: { server: "https://shadowed.example" }
users: []
contexts:
  - name: laptop
    context: { cluster: staging }
`,
};

describe('kubeconfig', () => {
  it('reads --kubeconfig, else every KUBECONFIG entry, else ~/.kube/config', () => {
    expect(kubeconfigPaths('/x/cfg', { KUBECONFIG: '/a:/b' })).toEqual(['/x/cfg']);
    expect(kubeconfigPaths(undefined, { KUBECONFIG: '/a::/b' })).toEqual(['/a', '/b']);
    expect(kubeconfigPaths(undefined, { HOME: '/home/dev' })).toEqual(['/home/dev/.kube/config']);
  });

  it('merges files like kubectl: the first file to name an entry or a current context wins', () => {
    const sel = selectContext([team, personal]);
    expect(sel).toMatchObject({ context: 'staging', namespace: 'shop', server: 'https://staging.example:6443' });
    // The second file's contexts are still usable, with the first file's clusters.
    expect(selectContext([team, personal], 'laptop')).toMatchObject({ context: 'laptop', namespace: 'default', server: 'https://staging.example:6443' });
  });

  it("selects a GitLab agent's context, named <agent configuration project>:<agent name>", () => {
    const agent = {
      path: '/builds/group/app.tmp/KUBECONFIG',
      text: `
apiVersion: v1
kind: Config
clusters:
  - name: gitlab
    cluster: { server: "https://kas.example/k8s-proxy/" }
users:
  - name: agent:42
    user: { token: "ci:42:job-token" }
contexts:
  - name: group/agent-project:review-agent
    context: { cluster: gitlab, user: agent:42, namespace: review }
`,
    };
    const sel = selectContext([agent], 'group/agent-project:review-agent');
    expect(sel).toMatchObject({ context: 'group/agent-project:review-agent', namespace: 'review', server: 'https://kas.example/k8s-proxy' });
    expect(connectionOptions(sel, () => Buffer.from('')).headers).toEqual({ authorization: 'Bearer ci:42:job-token' });
  });

  it('resolves relative certificate paths against the file that names them, and decodes inline data', () => {
    const read = (p: string) => Buffer.from(`contents of ${p}`);
    const staging = connectionOptions(selectContext([team]), read);
    expect(String(staging.ca)).toBe('contents of /home/dev/.kube/certs/ca.crt');
    expect(staging.headers).toEqual({ authorization: 'Bearer secret-token' });
    const prod = connectionOptions(selectContext([team], 'prod'), read);
    expect(String(prod.ca)).toBe('PROD CA');
    expect(String(prod.cert)).toBe('contents of /abs/dev.crt');
    expect(String(prod.key as Buffer)).toBe('DEV KEY');
    expect(prod.servername).toBe('api.prod');
    expect(prod.headers).toBeUndefined();
  });

  it('names the context and file when a certificate cannot be read', () => {
    const read = () => {
      throw Object.assign(new Error('nope'), { code: 'ENOENT' });
    };
    expect(() => connectionOptions(selectContext([team]), read)).toThrow(
      'kube context "staging": cannot read certificate-authority /home/dev/.kube/certs/ca.crt: ENOENT',
    );
  });

  it('prefers a tokenFile to an inline token, as client-go does, and refuses a CA with insecure-skip-tls-verify', () => {
    const both = {
      path: '/k/config',
      text: 'current-context: c\nclusters: [{name: c, cluster: {server: "https://x:6443", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: old, tokenFile: tok}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n',
    };
    const opts = connectionOptions(selectContext([both]), () => Buffer.from('rotated\n'));
    expect(opts.headers).toEqual({ authorization: 'Bearer rotated' });
    expect(opts.rejectUnauthorized).toBe(false);
    const withCa = { ...both, text: both.text.replace('insecure-skip-tls-verify: true', 'insecure-skip-tls-verify: true, certificate-authority-data: Q0E=') };
    expect(() => connectionOptions(selectContext([withCa]), () => Buffer.from('t'))).toThrow(
      'kube context "c": its cluster sets both a certificate authority and insecure-skip-tls-verify; kubectl refuses that too, keep one',
    );
  });

  it('leaves exec plugins and proxies to the full client', () => {
    expect(needsFullSupport(selectContext([team], 'sso'))).toBe('user exec');
    expect(needsFullSupport(selectContext([team], 'prod'))).toBeUndefined();
  });

  it('explains an unknown context, a dangling cluster and a file that is not YAML', () => {
    expect(() => selectContext([team], 'qa')).toThrow(ConfigError);
    expect(() => selectContext([team], 'qa')).toThrow('kube context "qa" is not in the kubeconfig (contexts: staging, prod, sso, broken)');
    expect(() => selectContext([team], 'broken')).toThrow('kube context "broken" names cluster "nowhere", which is not in the kubeconfig or has no server');
    expect(() => selectContext([{ path: '/k', text: 'clusters: [' }])).toThrow(/^cannot read kubeconfig \/k: /);
    expect(() => selectContext([{ path: '/k', text: 'contexts: []' }])).toThrow('no current context in /k (contexts: none)');
  });
});

describe("client-node's kubeconfigs (exec plugins, proxies, in-cluster)", () => {
  const config = (name: string, server: string, current = true) => `apiVersion: v1
kind: Config
${current ? `current-context: ${name}\n` : ''}clusters: [{ name: ${name}, cluster: { server: "${server}/" } }]
users: [{ name: ${name}, user: { token: t-${name} } }]
contexts: [{ name: ${name}, context: { cluster: ${name}, user: ${name}, namespace: ns-${name} } }]
`;

  it("read KUBECONFIG and HOME from the run's environment, not process.env", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'skiff-kubeconfig-full-'));
    try {
      await writeFile(join(dir, 'a.yaml'), config('one', 'https://one.example:6443'));
      await writeFile(join(dir, 'b.yaml'), config('two', 'https://two.example:6443', false));
      const env = { KUBECONFIG: `${join(dir, 'a.yaml')}:${join(dir, 'b.yaml')}`, HOME: '/nonexistent' };
      expect(process.env.KUBECONFIG).not.toBe(env.KUBECONFIG);
      expect(await loadFullConnection({}, env)).toMatchObject({ server: 'https://one.example:6443', context: 'one', namespace: 'ns-one' });
      expect(await loadFullConnection({ context: 'two' }, env)).toMatchObject({ server: 'https://two.example:6443', namespace: 'ns-two' });

      await mkdir(join(dir, '.kube'));
      await writeFile(join(dir, '.kube', 'config'), config('home', 'https://home.example:6443'));
      expect(await loadFullConnection({}, { HOME: dir })).toMatchObject({ context: 'home', options: { headers: { Authorization: 'Bearer t-home' } } });
      await expect(loadFullConnection({}, { HOME: join(dir, 'nowhere') })).rejects.toThrow(
        'no kubeconfig found (~/.kube/config does not exist) and not running in a cluster; set KUBECONFIG or --kubeconfig',
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

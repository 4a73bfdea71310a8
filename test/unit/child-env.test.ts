// What skiff hands to the processes it starts, and to which registry it sends
// SKIFF_REGISTRY_USER/PASSWORD (issue 18 item 11).
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { execSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import ejs from 'ejs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childEnv, SECRET_ENV_NAMES, takeSecretEnv } from '../../src/adapters/child-env.js';
import { findCredentials } from '../../src/registry/credentials.js';
import { hideSecretsFromExecPlugins } from '../../src/adapters/kubeconfig-full.js';
import { readCiContext } from '../../src/gitlab/ci-variables.js';
import { configFailure } from '../helpers/failure.js';

const KEY = '4d'.repeat(32);
const secrets = { SKIFF_SECRET_KEY: KEY, SKIFF_OLD_SECRET_KEY: KEY, CI_JOB_TOKEN: 'job-token-1', CI_REGISTRY_PASSWORD: 'ci-pw-2', COSIGN_PASSWORD: 'cosign-3' };

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'skiff-child-env-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs fn with these variables in process.env (client-node and child processes read it), then puts it back. */
async function withProcessEnv(vars: Record<string, string>, fn: () => Promise<void>): Promise<void> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  try {
    await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** An executable script that writes its environment to `dump` and then prints `stdout`. */
async function envDumper(name: string, dump: string, stdout: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, `#!/bin/sh\nenv > '${dump}'\ncat <<'EOF'\n${stdout}\nEOF\n`);
  await chmod(path, 0o755);
  return path;
}

describe('childEnv', () => {
  it('drops every secret skiff may hold and keeps the rest', () => {
    const env = childEnv({ PATH: '/bin', HOME: '/home/u', SKIFF_REGISTRY_PASSWORD: 'p', WERF_SECRET_KEY: 'w', ...secrets });
    expect(env).toEqual({ PATH: '/bin', HOME: '/home/u' });
    for (const name of ['SKIFF_SECRET_KEY', 'SKIFF_REGISTRY_PASSWORD', 'CI_REGISTRY_PASSWORD', 'CI_JOB_TOKEN', 'COSIGN_PASSWORD'])
      expect(SECRET_ENV_NAMES).toContain(name);
  });

  it('keeps a variable a build secret is declared to read', () => {
    expect(childEnv({ CI_JOB_TOKEN: 't', SKIFF_SECRET_KEY: KEY }, ['CI_JOB_TOKEN'])).toEqual({ CI_JOB_TOKEN: 't' });
  });

  it('a Docker credential helper skiff runs does not see SKIFF_SECRET_KEY or the job tokens', async () => {
    const dump = join(dir, 'helper.env');
    await envDumper('docker-credential-fake', dump, '{"Username":"helper-user","Secret":"helper-secret"}');
    const config = join(dir, 'docker');
    await rm(config, { recursive: true, force: true });
    await mkdir(config);
    await writeFile(join(config, 'config.json'), JSON.stringify({ credHelpers: { 'registry.example.com': 'fake' } }));
    // skiff's environment is the process's: the helper would inherit it.
    await withProcessEnv({ PATH: `${dir}${delimiter}${process.env.PATH}`, DOCKER_CONFIG: config, MARKER: 'seen', ...secrets }, async () => {
      expect(await findCredentials('registry.example.com', process.env, {})).toMatchObject({ username: 'helper-user', origin: 'docker-credential-fake' });
    });
    const seen = await readFile(dump, 'utf8');
    expect(seen).toContain('MARKER=seen');
    for (const [name, value] of Object.entries(secrets)) {
      expect(seen).not.toContain(`${name}=`);
      expect(seen).not.toContain(value);
    }
  });

  it('a kube exec plugin does not see SKIFF_SECRET_KEY (and does without the scrub: the test can fail)', async () => {
    const { KubeConfig } = await import('@kubernetes/client-node');
    const credential = JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token: 'plugin-token' } });
    const kubeconfig = (command: string) => `apiVersion: v1
kind: Config
clusters: [{ name: c, cluster: { server: "https://127.0.0.1:1" } }]
users: [{ name: u, user: { exec: { apiVersion: client.authentication.k8s.io/v1, command: "${command}", interactiveMode: Never, env: [{ name: FROM_KUBECONFIG, value: kept }] } } }]
contexts: [{ name: ctx, context: { cluster: c, user: u } }]
current-context: ctx
`;
    await withProcessEnv(secrets, async () => {
      const run = async (scrub: boolean) => {
        const dump = join(dir, `plugin-${scrub}.env`);
        const plugin = await envDumper(`plugin-${scrub}`, dump, credential);
        const kc = new KubeConfig();
        kc.loadFromString(kubeconfig(plugin));
        if (scrub) hideSecretsFromExecPlugins(kc.users, process.env);
        const opts: { headers?: Record<string, string> } = {};
        await kc.applyToHTTPSOptions(opts);
        expect(opts.headers?.Authorization ?? opts.headers?.authorization).toBe('Bearer plugin-token');
        return readFile(dump, 'utf8');
      };
      const scrubbed = await run(true);
      expect(scrubbed).toContain('FROM_KUBECONFIG=kept');
      for (const value of Object.values(secrets)) expect(scrubbed).not.toContain(value);
      expect(await run(false)).toContain(`SKIFF_SECRET_KEY=${KEY}`);
    });
  });
});

describe('SKIFF_REGISTRY_USER/PASSWORD are tied to SKIFF_REGISTRY_HOST', () => {
  const creds = { SKIFF_REGISTRY_USER: 'ci-bot', SKIFF_REGISTRY_PASSWORD: 'hunter2-registry', DOCKER_CONFIG: '/nonexistent-skiff-docker-config' };

  it('go to the host SKIFF_REGISTRY_HOST names, with or without a port or scheme written', async () => {
    expect(await findCredentials('registry.example.com', { ...creds, SKIFF_REGISTRY_HOST: 'registry.example.com' }, {})).toEqual({
      username: 'ci-bot',
      password: 'hunter2-registry',
      origin: 'SKIFF_REGISTRY_USER/SKIFF_REGISTRY_PASSWORD',
    });
    expect(await findCredentials('127.0.0.1:5001', { ...creds, SKIFF_REGISTRY_HOST: 'https://127.0.0.1:5001/' }, {})).toMatchObject({ username: 'ci-bot' });
  });

  it('never to another host (the one a repository wrote into skiff.yaml)', async () => {
    const env = { ...creds, SKIFF_REGISTRY_HOST: 'registry.example.com' };
    expect(await findCredentials('attacker.example.net', env, {})).toBeUndefined();
    expect(await findCredentials('registry.example.com.attacker.net', env, {})).toBeUndefined();
    expect(await findCredentials('127.0.0.1:5001', { ...creds, SKIFF_REGISTRY_HOST: '127.0.0.1:5000' }, {})).toBeUndefined();
  });

  it('without SKIFF_REGISTRY_HOST: exit 2, one line naming the variable, nothing sent', async () => {
    const message = await configFailure(findCredentials('attacker.example.net', creds, {}));
    expect(message).toMatch(/^SKIFF_REGISTRY_USER\/SKIFF_REGISTRY_PASSWORD are set but not tied to a registry: set SKIFF_REGISTRY_HOST /);
    expect(message).not.toContain('hunter2-registry');
  });
});

describe('CI_REGISTRY_USER/PASSWORD are tied to CI_REGISTRY', () => {
  const env = { DOCKER_CONFIG: '/nonexistent-skiff-docker-config' };
  const job = (host?: string) => ({ registryLogin: { host, username: 'gitlab-ci-token', password: 'job-token-77' } });

  it("go to CI_REGISTRY's host only", async () => {
    expect(await findCredentials('registry.gitlab.example.com', env, job('registry.gitlab.example.com'))).toEqual({
      username: 'gitlab-ci-token',
      password: 'job-token-77',
      origin: 'CI_REGISTRY_USER/CI_REGISTRY_PASSWORD',
    });
    expect(await findCredentials('attacker.example.net', env, job('registry.gitlab.example.com'))).toBeUndefined();
  });

  it('without CI_REGISTRY: exit 2, one line naming the variable, nothing sent', async () => {
    expect(readCiContext({ CI_REGISTRY_USER: 'gitlab-ci-token', CI_REGISTRY_PASSWORD: 'job-token-77' }).registryLogin).toMatchObject({ host: undefined });
    const message = await configFailure(findCredentials('attacker.example.net', env, job(undefined)));
    expect(message).toMatch(/^CI_REGISTRY_USER\/CI_REGISTRY_PASSWORD are set but not tied to a registry: set CI_REGISTRY /);
    expect(message).not.toContain('job-token-77');
  });
});

describe('takeSecretEnv: the secrets leave process.env at start', () => {
  it('returns the whole environment and leaves the given one without any secret variable', () => {
    const env: NodeJS.ProcessEnv = { PATH: '/bin', HOME: '/home/ci', ...Object.fromEntries(SECRET_ENV_NAMES.map((n) => [n, `v-${n}`])) };
    const taken = takeSecretEnv(env);
    expect(taken).toMatchObject({ PATH: '/bin', HOME: '/home/ci', SKIFF_SECRET_KEY: 'v-SKIFF_SECRET_KEY', CI_JOB_TOKEN: 'v-CI_JOB_TOKEN' });
    expect(Object.keys(taken)).toHaveLength(2 + SECRET_ENV_NAMES.length);
    expect(env).toEqual({ PATH: '/bin', HOME: '/home/ci' });
  });

  it("what reads process.env on its own (an auth provider's execSync, a template's process.env) sees no key", () => {
    const saved = { ...process.env };
    const key = `key-${'ab'.repeat(16)}`;
    try {
      process.env.SKIFF_SECRET_KEY = key;
      process.env.CI_JOB_TOKEN = 'job-token-99';
      const env = takeSecretEnv(process.env);
      expect(env.SKIFF_SECRET_KEY).toBe(key);
      // As client-node 1.4.0's gcp/azure auth providers run cmd-path: execSync, inheriting process.env.
      expect(execSync('echo "[$SKIFF_SECRET_KEY][$CI_JOB_TOKEN]"', { encoding: 'utf8' }).trim()).toBe('[][]');
      expect(ejs.render('[<%= process.env.SKIFF_SECRET_KEY %>]', {})).toBe('[]');
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
    }
  });
});

import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { CiContext } from '../gitlab/ci-variables.js';
import { ConfigError } from '../errors.js';
import { childEnv } from '../adapters/child-env.js';

export interface RegistryCredentials {
  username: string;
  password: string;
  /** Where they came from, for messages (never the secret itself). */
  origin: string;
}

interface DockerConfigFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

function sameHost(key: string, host: string): boolean {
  const strip = (s: string) => s.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
  const k = strip(key);
  if (k === host) return true;
  return host === 'docker.io' && (k === 'index.docker.io' || k === 'registry-1.docker.io');
}

/**
 * Finds credentials for a registry host, in the order a CI job expects:
 * SKIFF_REGISTRY_USER/PASSWORD (for SKIFF_REGISTRY_HOST's host), then
 * GitLab's CI_REGISTRY_USER/PASSWORD (for CI_REGISTRY's host), then the
 * Docker config's credHelpers, auths and credsStore (each per host).
 *
 * The registry is named by the repository (skiff.yaml), which may not be
 * trusted with the job's password: SKIFF_REGISTRY_USER/PASSWORD without
 * SKIFF_REGISTRY_HOST are refused (exit 2) rather than sent to whatever
 * host skiff.yaml names, and so are CI_REGISTRY_USER/PASSWORD without
 * CI_REGISTRY.
 */
export async function findCredentials(host: string, env: NodeJS.ProcessEnv, ci: Pick<CiContext, 'registryLogin'>): Promise<RegistryCredentials | undefined> {
  if (env.SKIFF_REGISTRY_USER && env.SKIFF_REGISTRY_PASSWORD !== undefined) {
    const tied = env.SKIFF_REGISTRY_HOST?.trim();
    if (!tied) {
      throw new ConfigError(
        `SKIFF_REGISTRY_USER/SKIFF_REGISTRY_PASSWORD are set but not tied to a registry: set SKIFF_REGISTRY_HOST to the host they are for (e.g. SKIFF_REGISTRY_HOST=${host}); skiff does not send them to whatever registry skiff.yaml names`,
      );
    }
    if (sameHost(tied, host)) {
      return { username: env.SKIFF_REGISTRY_USER, password: env.SKIFF_REGISTRY_PASSWORD, origin: 'SKIFF_REGISTRY_USER/SKIFF_REGISTRY_PASSWORD' };
    }
  }
  const job = ci.registryLogin;
  if (job && !job.host) {
    throw new ConfigError(
      `CI_REGISTRY_USER/CI_REGISTRY_PASSWORD are set but not tied to a registry: set CI_REGISTRY to the host they are for (GitLab sets it in every job; e.g. CI_REGISTRY=${host}), or unset them; skiff does not send them to whatever registry skiff.yaml names`,
    );
  }
  if (job?.host && sameHost(job.host, host)) {
    return { username: job.username, password: job.password, origin: 'CI_REGISTRY_USER/CI_REGISTRY_PASSWORD' };
  }
  const dir = env.DOCKER_CONFIG || join(homedir(), '.docker');
  let config: DockerConfigFile;
  try {
    config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as DockerConfigFile;
  } catch {
    return undefined;
  }
  const helper = Object.entries(config.credHelpers ?? {}).find(([k]) => sameHost(k, host))?.[1];
  if (helper) return fromHelper(helper, host, env);
  const entry = Object.entries(config.auths ?? {}).find(([k]) => sameHost(k, host))?.[1];
  if (entry?.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString();
    const colon = decoded.indexOf(':');
    if (colon > 0) return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1), origin: `${join(dir, 'config.json')} auths` };
  }
  if (entry?.username && entry.password !== undefined)
    return { username: entry.username, password: entry.password, origin: `${join(dir, 'config.json')} auths` };
  if (config.credsStore) return fromHelper(config.credsStore, host, env);
  return undefined;
}

function fromHelper(helper: string, host: string, env: NodeJS.ProcessEnv): Promise<RegistryCredentials | undefined> {
  return new Promise((resolve) => {
    const child = execFile(`docker-credential-${helper}`, ['get'], { timeout: 10_000, env: childEnv(env) }, (err, stdout) => {
      if (err) return resolve(undefined);
      try {
        const parsed = JSON.parse(stdout) as { Username?: string; Secret?: string };
        if (parsed.Username && parsed.Secret !== undefined)
          return resolve({ username: parsed.Username, password: parsed.Secret, origin: `docker-credential-${helper}` });
      } catch {
        /* an unreadable answer is no credential */
      }
      resolve(undefined);
    });
    child.stdin?.end(host);
  });
}

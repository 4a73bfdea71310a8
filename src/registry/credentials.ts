import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { CiContext } from '../gitlab/ci-variables.js';
import { ConfigError } from '../errors.js';
import { childEnv } from '../adapters/child-env.js';

export interface RegistryCredentials {
  username: string;
  /** Empty when only an identity token was given. */
  password: string;
  /**
   * An OAuth2 refresh token for the registry's token service (`docker login`
   * stores one as config.json's `identitytoken`, a credential helper answers
   * one as user "<token>"): exchanged for a Bearer token instead of the password.
   */
  identityToken?: string;
  /** Where they came from, for messages (never the secret itself). */
  origin: string;
}

interface DockerConfigFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

/** One place credentials may come from: some for the host, none (undefined), or a ConfigError for a misconfiguration. */
type CredentialSource = (host: string, env: NodeJS.ProcessEnv, ci: Pick<CiContext, 'registryLogin'>) => Promise<RegistryCredentials | undefined>;

/**
 * Where credentials come from, in the order a CI job expects; the first source
 * with credentials for the host wins. A new credential source is one entry here.
 */
const SOURCES: readonly CredentialSource[] = [skiffVariables, gitlabJobLogin, dockerConfig];

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
  for (const source of SOURCES) {
    const found = await source(host, env, ci);
    if (found) return found;
  }
  return undefined;
}

function sameHost(key: string, host: string): boolean {
  const strip = (s: string) => s.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
  const k = strip(key);
  if (k === host) return true;
  return host === 'docker.io' && (k === 'index.docker.io' || k === 'registry-1.docker.io');
}

function skiffVariables(host: string, env: NodeJS.ProcessEnv): Promise<RegistryCredentials | undefined> {
  if (!env.SKIFF_REGISTRY_USER || env.SKIFF_REGISTRY_PASSWORD === undefined) return Promise.resolve(undefined);
  const tied = env.SKIFF_REGISTRY_HOST?.trim();
  if (!tied) {
    throw new ConfigError(
      `SKIFF_REGISTRY_USER/SKIFF_REGISTRY_PASSWORD are set but not tied to a registry: set SKIFF_REGISTRY_HOST to the host they are for (e.g. SKIFF_REGISTRY_HOST=${host}); skiff does not send them to whatever registry skiff.yaml names`,
    );
  }
  if (!sameHost(tied, host)) return Promise.resolve(undefined);
  return Promise.resolve({ username: env.SKIFF_REGISTRY_USER, password: env.SKIFF_REGISTRY_PASSWORD, origin: 'SKIFF_REGISTRY_USER/SKIFF_REGISTRY_PASSWORD' });
}

function gitlabJobLogin(host: string, _env: NodeJS.ProcessEnv, ci: Pick<CiContext, 'registryLogin'>): Promise<RegistryCredentials | undefined> {
  const job = ci.registryLogin;
  if (job && !job.host) {
    throw new ConfigError(
      `CI_REGISTRY_USER/CI_REGISTRY_PASSWORD are set but not tied to a registry: set CI_REGISTRY to the host they are for (GitLab sets it in every job; e.g. CI_REGISTRY=${host}), or unset them; skiff does not send them to whatever registry skiff.yaml names`,
    );
  }
  if (!job?.host || !sameHost(job.host, host)) return Promise.resolve(undefined);
  return Promise.resolve({ username: job.username, password: job.password, origin: 'CI_REGISTRY_USER/CI_REGISTRY_PASSWORD' });
}

/** The Docker config's credHelpers, auths and credsStore, in the docker CLI's order. */
async function dockerConfig(host: string, env: NodeJS.ProcessEnv): Promise<RegistryCredentials | undefined> {
  const file = join(env.DOCKER_CONFIG || join(homedir(), '.docker'), 'config.json');
  let config: DockerConfigFile;
  try {
    config = JSON.parse(await readFile(file, 'utf8')) as DockerConfigFile;
  } catch {
    return undefined;
  }
  const helper = Object.entries(config.credHelpers ?? {}).find(([k]) => sameHost(k, host))?.[1];
  if (helper) return fromHelper(helper, host, env);
  const entry = Object.entries(config.auths ?? {}).find(([k]) => sameHost(k, host))?.[1];
  const found = entry && fromAuthsEntry(entry, `${file} auths`);
  if (found) return found;
  if (config.credsStore) return fromHelper(config.credsStore, host, env);
  return undefined;
}

/** An auths entry: `auth` (base64 user:password), or username and password, each with an optional identitytoken. */
function fromAuthsEntry(entry: NonNullable<DockerConfigFile['auths']>[string], origin: string): RegistryCredentials | undefined {
  const identityToken = entry.identitytoken || undefined;
  const withToken = (c: RegistryCredentials): RegistryCredentials => (identityToken ? { ...c, identityToken } : c);
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString();
    const colon = decoded.indexOf(':');
    if (colon > 0) return withToken({ username: decoded.slice(0, colon), password: decoded.slice(colon + 1), origin });
  }
  if (entry.username && entry.password !== undefined) return withToken({ username: entry.username, password: entry.password, origin });
  if (identityToken) return { username: entry.username ?? '', password: '', identityToken, origin };
  return undefined;
}

/** The user name with which a credential helper answers an identity token instead of a password (the docker CLI's convention). */
const IDENTITY_TOKEN_USER = '<token>';

function fromHelper(helper: string, host: string, env: NodeJS.ProcessEnv): Promise<RegistryCredentials | undefined> {
  return new Promise((resolve) => {
    const child = execFile(`docker-credential-${helper}`, ['get'], { timeout: 10_000, env: childEnv(env) }, (err, stdout) => {
      if (err) return resolve(undefined);
      const origin = `docker-credential-${helper}`;
      try {
        const parsed = JSON.parse(stdout) as { Username?: string; Secret?: string };
        if (parsed.Username === IDENTITY_TOKEN_USER && parsed.Secret) return resolve({ username: '', password: '', identityToken: parsed.Secret, origin });
        if (parsed.Username && parsed.Secret !== undefined) return resolve({ username: parsed.Username, password: parsed.Secret, origin });
      } catch {
        /* an unreadable answer is no credential */
      }
      resolve(undefined);
    });
    // A helper that answers without reading the host (or is gone already) closes its stdin:
    // the EPIPE is no failure of ours; its exit and answer, above, decide.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(host);
  });
}

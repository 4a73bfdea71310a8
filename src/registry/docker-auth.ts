import type { RegistryCredentials } from './credentials.js';

/**
 * Docker's AuthConfig, the fields skiff fills: what the Engine takes as
 * X-Registry-Auth (push, pull) and, by registry host, as X-Registry-Config
 * (build). With an identity token the Engine runs the OAuth2 refresh-token
 * grant itself, as skiff's own registry client does (auth.ts).
 */
export interface DockerAuthConfig {
  username: string;
  password: string;
  identitytoken?: string;
  serveraddress?: string;
}

/** What the Engine takes for a push when there are no credentials: it wants an X-Registry-Auth header even then. */
export const ANONYMOUS_ENGINE_AUTH: DockerAuthConfig = { username: '', password: '', serveraddress: '' };

/** The Engine's X-Registry-Auth for credentials (undefined without them); the one place registry credentials become Docker's form. */
export function engineAuth(credentials: RegistryCredentials | undefined, serveraddress?: string): DockerAuthConfig | undefined {
  if (!credentials) return undefined;
  const config: DockerAuthConfig = { username: credentials.username, password: credentials.password };
  if (credentials.identityToken) config.identitytoken = credentials.identityToken;
  if (serveraddress !== undefined) config.serveraddress = serveraddress;
  return config;
}

/** The Engine's X-Registry-Config of a build: credentials by registry host, for FROM pulls and cache imports. */
export function engineRegistryConfig(auth: Record<string, RegistryCredentials>): Record<string, DockerAuthConfig> {
  const config: Record<string, DockerAuthConfig> = {};
  for (const [host, c] of Object.entries(auth)) config[host] = engineAuth(c)!;
  return config;
}

/** A Docker config.json entry as buildkitd's session reads it (through buildctl): `auth` (user:password), `identitytoken` when there is one. */
export interface DockerConfigAuth {
  auth?: string;
  identitytoken?: string;
}

/** The Docker config.json (`{ auths }`) that hands these credentials, by registry host, to buildctl and so to buildkitd's session. */
export function buildkitDockerConfig(auth: Record<string, RegistryCredentials>): { auths: Record<string, DockerConfigAuth> } {
  const auths: Record<string, DockerConfigAuth> = {};
  for (const [host, c] of Object.entries(auth)) {
    const auth = Buffer.from(`${c.username}:${c.password}`).toString('base64');
    // The docker CLI's config reader refuses an `auth` without a user name; a token alone needs none.
    auths[host] = c.identityToken ? { ...(c.username ? { auth } : {}), identitytoken: c.identityToken } : { auth };
  }
  return { auths };
}

/** The secrets inside credentials, for taking them out of any message that may echo them. */
export function redactCredentials(text: string, credentials?: RegistryCredentials): string {
  let out = text;
  for (const secret of [credentials?.password, credentials?.identityToken]) if (secret) out = out.split(secret).join('***');
  return out;
}

/**
 * The environment of every process skiff starts (git, buildctl, tar, Docker
 * credential helpers, kube exec plugins, the editor): skiff's own, without the
 * secrets none of them needs. A credential helper or an exec plugin is
 * whatever program the machine's configuration names; it gets no secret key
 * and no registry password by accident.
 */

/** Variables that hold secret keys, passwords or tokens skiff may be given. */
export const SECRET_ENV_NAMES: readonly string[] = [
  'SKIFF_SECRET_KEY',
  'SKIFF_OLD_SECRET_KEY',
  'WERF_SECRET_KEY',
  'WERF_OLD_SECRET_KEY',
  'SKIFF_REGISTRY_PASSWORD',
  'CI_REGISTRY_PASSWORD',
  'CI_JOB_TOKEN',
  'CI_JOB_JWT',
  'CI_JOB_JWT_V1',
  'CI_JOB_JWT_V2',
  'CI_DEPLOY_PASSWORD',
  'CI_DEPENDENCY_PROXY_PASSWORD',
  'DOCKER_AUTH_CONFIG',
  'SKIFF_COSIGN_KEY',
  'COSIGN_PASSWORD',
  'COSIGN_PRIVATE_KEY',
];

/**
 * A copy of `env` without SECRET_ENV_NAMES, except those in `keep` (a build
 * secret declared as `env: CI_JOB_TOKEN` is buildctl's to read).
 */
export function childEnv(env: NodeJS.ProcessEnv, keep: readonly string[] = []): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env };
  for (const name of SECRET_ENV_NAMES) if (!keep.includes(name)) delete out[name];
  return out;
}

/** The secret variables `env` holds, by name (for a child environment that can only add variables: an exec plugin's). */
export function secretEnvPresent(env: NodeJS.ProcessEnv): string[] {
  return SECRET_ENV_NAMES.filter((name) => env[name] !== undefined);
}

/**
 * Moves the secret variables out of `env` (process.env, once, at start):
 * returns the whole environment, secrets included, for the run context
 * (ctx.env, which every reader of a key or password uses), and leaves `env`
 * without them. Code that reads process.env on its own then never sees one:
 * the Kubernetes client's gcp and azure auth providers run their cmd-path with
 * it, and `.kube/` templates can reach `process`.
 */
export function takeSecretEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const all = { ...env };
  for (const name of SECRET_ENV_NAMES) delete env[name];
  return all;
}

import { existsSync } from 'node:fs';
import type { RequestOptions } from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';
import { ConfigError } from '../errors.js';
import { secretEnvPresent } from './child-env.js';
import type { Connection } from './kubeconfig.js';

/**
 * The kubeconfigs ./kubeconfig.ts leaves to @kubernetes/client-node: exec
 * plugins, auth providers, proxies and in-cluster config. Imported only for
 * them: client-node costs a few hundred milliseconds to load.
 */

/** The connection of a context that needs client-node; KUBECONFIG and HOME are read from `env`. */
export async function loadFullConnection(opts: { context?: string; kubeconfig?: string }, env: NodeJS.ProcessEnv): Promise<Connection> {
  const kc = new KubeConfig();
  try {
    if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
    else loadDefault(kc, env);
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError(`cannot read kubeconfig${opts.kubeconfig ? ` ${opts.kubeconfig}` : ''}: ${(e as Error).message}; set KUBECONFIG or --kubeconfig`);
  }
  hideSecretsFromExecPlugins(kc.users, env);
  if (opts.context) {
    if (!kc.getContexts().some((c) => c.name === opts.context)) {
      const names = kc.getContexts().map((c) => c.name);
      throw new ConfigError(
        `kube context "${opts.context}" is not in the kubeconfig (contexts: ${names.join(', ') || 'none'}); fix environments.<env>.kubeContext or --kube-context`,
      );
    }
    kc.setCurrentContext(opts.context);
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new ConfigError('no Kubernetes cluster configured: set KUBECONFIG (or --kubeconfig) to a kubeconfig with a current context');
  const options: RequestOptions = {};
  try {
    await kc.applyToHTTPSOptions(options);
  } catch (e) {
    throw new ConfigError(`kube context "${kc.getCurrentContext()}" (server ${cluster.server}) cannot be used: ${(e as Error).message}`);
  }
  const namespace = kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
  return { server: cluster.server.replace(/\/+$/, ''), context: kc.getCurrentContext(), options, namespace };
}

/**
 * client-node's loadFromDefault, with KUBECONFIG and HOME read from `env`:
 * the files KUBECONFIG lists (merged), else ~/.kube/config, else in-cluster
 * config (client-node reads KUBERNETES_SERVICE_HOST and _PORT from
 * process.env; they hold no secret).
 */
function loadDefault(kc: KubeConfig, env: NodeJS.ProcessEnv): void {
  const listed = (env.KUBECONFIG ?? '').split(':').filter(Boolean);
  const home = `${env.HOME ?? ''}/.kube/config`;
  const found = listed.length ? listed.some((f) => existsSync(f)) : existsSync(home);
  if (!found && !env.KUBERNETES_SERVICE_HOST) {
    throw new ConfigError(
      `no kubeconfig found (${listed.length ? `KUBECONFIG=${env.KUBECONFIG}` : '~/.kube/config'} does not exist) and not running in a cluster; set KUBECONFIG or --kubeconfig`,
    );
  }
  const [first, ...more] = listed.length ? listed : found ? [home] : [];
  if (first === undefined) return kc.loadFromCluster();
  kc.loadFromFile(first);
  for (const file of more) {
    const next = new KubeConfig();
    next.loadFromFile(file);
    kc.mergeConfig(next);
  }
}

/**
 * An exec plugin (client-node runs it with skiff's environment and its own
 * `env` entries) gets none of skiff's secrets: each is added to its `env`
 * unset, and a variable set to undefined is left out of a child's
 * environment. The same scrub as childEnv().
 */
export function hideSecretsFromExecPlugins(users: ReadonlyArray<{ exec?: unknown }>, env: NodeJS.ProcessEnv): void {
  const hidden = secretEnvPresent(env);
  if (hidden.length === 0) return;
  for (const user of users) {
    const exec = user.exec as { env?: Array<{ name: string; value?: string }> | null } | undefined;
    if (!exec || typeof exec !== 'object') continue;
    // A value the kubeconfig itself gives the plugin is its own, and kept.
    const own = exec.env ?? [];
    exec.env = [...own, ...hidden.filter((name) => !own.some((e) => e.name === name)).map((name) => ({ name, value: undefined }))];
  }
}

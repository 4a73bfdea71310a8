import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import type { RequestOptions } from 'node:https';
import { parse } from 'yaml';
import { ConfigError } from '../errors.js';

/**
 * Kubeconfig handling for the common cases, without loading
 * @kubernetes/client-node (which costs a few hundred milliseconds per run):
 * client certificates, bearer tokens (inline or from a file), basic auth,
 * certificate authorities, insecure-skip-tls-verify and tls-server-name,
 * across KUBECONFIG's merged files. Anything else (exec plugins, auth
 * providers, proxies, in-cluster config) is left to client-node.
 */

type Entry = Record<string, unknown>;
/** A named kubeconfig entry and the directory its relative paths start from. */
interface Sourced {
  value: Entry;
  dir: string;
}

export interface KubeconfigFile {
  path: string;
  text: string;
}

export interface SelectedContext {
  context: string;
  namespace: string;
  server: string;
  cluster: Sourced;
  user: Sourced;
}

export interface Connection {
  server: string;
  context: string;
  namespace: string;
  options: RequestOptions;
}

/** The kubeconfig files kubectl would read, in order: --kubeconfig, else KUBECONFIG's list, else ~/.kube/config. */
export function kubeconfigPaths(flag: string | undefined, env: NodeJS.ProcessEnv): string[] {
  if (flag) return [flag];
  const list = (env.KUBECONFIG ?? '').split(':').filter(Boolean);
  return list.length ? list : [join(env.HOME || homedir(), '.kube', 'config')];
}

/**
 * Merges kubeconfig files the way kubectl does (the first file to name a
 * cluster, user or context wins; the first current-context wins) and picks
 * the context. Pure.
 */
export function selectContext(files: KubeconfigFile[], wanted?: string): SelectedContext {
  const clusters = new Map<string, Sourced>();
  const users = new Map<string, Sourced>();
  const contexts = new Map<string, Sourced>();
  let current: string | undefined;
  for (const file of files) {
    let doc: Entry;
    try {
      doc = (parse(file.text) ?? {}) as Entry;
    } catch (e) {
      throw new ConfigError(`cannot read kubeconfig ${file.path}: ${(e as Error).message.split('\n')[0]}; set KUBECONFIG or --kubeconfig`);
    }
    if (typeof doc !== 'object' || Array.isArray(doc))
      throw new ConfigError(`cannot read kubeconfig ${file.path}: not a kubeconfig (expected a mapping); set KUBECONFIG or --kubeconfig`);
    const dir = dirname(file.path);
    const collect = (list: unknown, field: string, into: Map<string, Sourced>) => {
      for (const item of Array.isArray(list) ? (list as Entry[]) : []) {
        const name = item?.name;
        if (typeof name === 'string' && !into.has(name) && item[field] && typeof item[field] === 'object') into.set(name, { value: item[field] as Entry, dir });
      }
    };
    collect(doc.clusters, 'cluster', clusters);
    collect(doc.users, 'user', users);
    collect(doc.contexts, 'context', contexts);
    if (!current && typeof doc['current-context'] === 'string' && doc['current-context']) current = doc['current-context'];
  }
  const names = [...contexts.keys()];
  const name = wanted ?? current;
  if (!name)
    throw new ConfigError(
      `no current context in ${files.map((f) => f.path).join(', ')} (contexts: ${names.join(', ') || 'none'}); set one with kubectl config use-context, or environments.<env>.kubeContext`,
    );
  const context = contexts.get(name);
  if (!context) {
    if (wanted)
      throw new ConfigError(
        `kube context "${wanted}" is not in the kubeconfig (contexts: ${names.join(', ') || 'none'}); fix environments.<env>.kubeContext or --kube-context`,
      );
    throw new ConfigError(`the current context "${name}" is not in the kubeconfig (contexts: ${names.join(', ') || 'none'})`);
  }
  const clusterName = typeof context.value.cluster === 'string' ? context.value.cluster : '';
  const cluster = clusters.get(clusterName);
  if (!cluster || typeof cluster.value.server !== 'string' || !cluster.value.server) {
    throw new ConfigError(`kube context "${name}" names cluster "${clusterName}", which is not in the kubeconfig or has no server`);
  }
  const userName = typeof context.value.user === 'string' ? context.value.user : undefined;
  const user = userName === undefined ? { value: {}, dir: context.dir } : users.get(userName);
  if (!user) throw new ConfigError(`kube context "${name}" names user "${userName}", which is not in the kubeconfig`);
  return {
    context: name,
    namespace: typeof context.value.namespace === 'string' && context.value.namespace ? context.value.namespace : 'default',
    server: cluster.value.server.replace(/\/+$/, ''),
    cluster,
    user,
  };
}

/** Why this context needs client-node's full kubeconfig support, if it does. Pure. */
export function needsFullSupport(sel: SelectedContext): string | undefined {
  for (const key of ['exec', 'auth-provider', 'as', 'as-groups', 'as-user-extra', 'impersonate', 'impersonate-groups'])
    if (sel.user.value[key] !== undefined) return `user ${key}`;
  if (sel.cluster.value['proxy-url'] !== undefined) return 'cluster proxy-url';
  return undefined;
}

/** TLS and auth request options for a context that needs nothing more than files and tokens. */
export function connectionOptions(sel: SelectedContext, read: (path: string) => Buffer = readFileSync): RequestOptions {
  const file = (s: Sourced, key: string) => {
    const p = s.value[key];
    if (typeof p !== 'string' || !p) return undefined;
    const full = isAbsolute(p) ? p : join(s.dir, p);
    try {
      return read(full);
    } catch (e) {
      throw new ConfigError(`kube context "${sel.context}": cannot read ${key} ${full}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  };
  const data = (s: Sourced, key: string) => (typeof s.value[key] === 'string' && s.value[key] ? Buffer.from(s.value[key], 'base64') : undefined);
  const c = sel.cluster;
  const u = sel.user;
  const options: RequestOptions = {};
  const ca = data(c, 'certificate-authority-data') ?? file(c, 'certificate-authority');
  if (ca) options.ca = ca;
  if (c.value['insecure-skip-tls-verify'] === true) {
    if (ca)
      throw new ConfigError(
        `kube context "${sel.context}": its cluster sets both a certificate authority and insecure-skip-tls-verify; kubectl refuses that too, keep one`,
      );
    options.rejectUnauthorized = false;
  }
  if (typeof c.value['tls-server-name'] === 'string') options.servername = c.value['tls-server-name'];
  const cert = data(u, 'client-certificate-data') ?? file(u, 'client-certificate');
  const key = data(u, 'client-key-data') ?? file(u, 'client-key');
  if (cert) options.cert = cert;
  if (key) options.key = key;
  // As in client-go, a tokenFile (which can be rotated) wins over an inline token.
  const token = file(u, 'tokenFile')?.toString().trim() || (typeof u.value.token === 'string' && u.value.token ? u.value.token : undefined);
  if (token) options.headers = { authorization: `Bearer ${token}` };
  else if (typeof u.value.username === 'string' && typeof u.value.password === 'string') {
    options.headers = { authorization: `Basic ${Buffer.from(`${u.value.username}:${u.value.password}`).toString('base64')}` };
  }
  return options;
}

/**
 * The connection for a context, or undefined when it needs client-node
 * (exec plugins and the like, or in-cluster config when no file exists).
 */
export function loadConnection(opts: { kubeconfig?: string; context?: string }, env: NodeJS.ProcessEnv): Connection | undefined {
  const paths = kubeconfigPaths(opts.kubeconfig, env);
  const present = paths.filter((p) => existsSync(p));
  if (present.length === 0) {
    if (!opts.kubeconfig && env.KUBERNETES_SERVICE_HOST) return undefined;
    const named = opts.kubeconfig ? `--kubeconfig ${opts.kubeconfig}` : env.KUBECONFIG ? `KUBECONFIG=${env.KUBECONFIG}` : '~/.kube/config';
    throw new ConfigError(`no kubeconfig found (${named} does not exist) and not running in a cluster; set KUBECONFIG or --kubeconfig`);
  }
  const files = present.map((path) => {
    try {
      return { path, text: readFileSync(path, 'utf8') };
    } catch (e) {
      throw new ConfigError(`cannot read kubeconfig ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; set KUBECONFIG or --kubeconfig`);
    }
  });
  const sel = selectContext(files, opts.context);
  if (needsFullSupport(sel)) return undefined;
  return { server: sel.server, context: sel.context, namespace: sel.namespace, options: connectionOptions(sel) };
}

import type { EnvironmentConfig } from './project-config.js';
import { DNS_LABEL, type ConfigReader, type Plain, type StringRule } from './config-reader.js';

/** `environments.<name>`: where and under which release each environment deploys, and its values. */
export function validateEnvironments(r: ConfigReader, raw: unknown, project: string): Record<string, EnvironmentConfig> {
  const environments: Record<string, EnvironmentConfig> = {};
  for (const [name, value] of Object.entries(r.mapping(raw, 'environments') ?? {})) {
    const path = `environments.${name}`;
    if (!DNS_LABEL.test(name)) r.problem(path, `environment name "${name}" must be lower-case letters, digits and "-"`);
    environments[name] = validateEnvironment(r, r.mapping(value ?? {}, path) ?? {}, name, project);
  }
  return environments;
}

function validateEnvironment(r: ConfigReader, e: Plain, name: string, project: string): EnvironmentConfig {
  const path = `environments.${name}`;
  r.knownKeys(e, path, ['dynamic', 'namespace', 'kubeContext', 'kubeconfig', 'release', 'url', 'values', 'autoRollback']);
  const values = r.mapping(e.values, `${path}.values`) ?? {};
  const autoRollback = e.autoRollback;
  if (autoRollback !== undefined && typeof autoRollback !== 'boolean') r.problem(`${path}.autoRollback`, `${path}.autoRollback must be true or false`);
  if (e.dynamic !== undefined && typeof e.dynamic !== 'boolean') r.problem(`${path}.dynamic`, `${path}.dynamic must be true or false`);
  const dynamic = e.dynamic === true;
  // In a dynamic environment {slug} stands for up to 24 characters of [a-z0-9-]; check the names with one.
  const label = (hint: string): StringRule => ({
    pattern: dynamic ? { test: (v: string) => DNS_LABEL.test(v.replaceAll('{slug}', 'review-feature-x-abc123')) } : DNS_LABEL,
    hint: dynamic ? `${hint}; {slug} stands for the environment's slug` : hint,
  });
  const fallbackName = dynamic ? `${project}-{slug}` : `${project}-${name}`;
  return {
    name,
    dynamic,
    namespace: r.string(e.namespace, `${path}.namespace`, label('a Kubernetes namespace name')) ?? fallbackName,
    kubeContext: r.string(e.kubeContext, `${path}.kubeContext`),
    kubeconfig: r.string(e.kubeconfig, `${path}.kubeconfig`),
    release: r.string(e.release, `${path}.release`, label('a DNS label')) ?? (dynamic ? fallbackName : undefined),
    url: r.string(e.url, `${path}.url`, { pattern: /^https?:\/\/\S+$/, hint: 'an http:// or https:// URL' }),
    values,
    autoRollback: typeof autoRollback === 'boolean' ? autoRollback : undefined,
  };
}

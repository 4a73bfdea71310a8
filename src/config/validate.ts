import { posix } from 'node:path';
import { ConfigError } from '../errors.js';
import { parseDuration } from '../core/duration.js';
import type {
  BuildSecretConfig,
  BuildkitdEndpoint,
  DeployConfig,
  EnvironmentConfig,
  ImageConfig,
  PositionIndex,
  ProjectConfig,
  TestConfig,
} from './project-config.js';

export interface ConfigProblem {
  path: string;
  line: number;
  col: number;
  message: string;
}

type Plain = Record<string, unknown>;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const IMAGE_NAME = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/;
const ENV_VAR = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SECRET_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
/**
 * skiff's own credentials: a build secret may not read them, or a `RUN --mount=type=secret` step
 * could copy skiff's key (or its registry password) into the image it pushes. CI_JOB_TOKEN,
 * CI_REGISTRY_PASSWORD and the like are the job's, and teams use them as build secrets.
 */
export const OWN_SECRET_VARIABLES: readonly string[] = [
  'SKIFF_SECRET_KEY',
  'SKIFF_OLD_SECRET_KEY',
  'WERF_SECRET_KEY',
  'WERF_OLD_SECRET_KEY',
  'SKIFF_REGISTRY_PASSWORD',
];
/** A test name is also a folder (.skiff/reports/<test>) and a GitLab log section: no "/", no leading ".". */
const TEST_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const BUILDKIT_ADDRESS = /^(tcp:\/\/[^\s/]+|unix:\/\/\/\S+)$/;

/**
 * Checks skiff.yaml as plain data and fills in defaults. Pure: no file or
 * network access. Throws a ConfigError naming file:line:col of the first
 * problem; all problems are in the error's detail.
 */
export function validateConfig(raw: unknown, positions: PositionIndex, file: string): ProjectConfig {
  const problems: ConfigProblem[] = [];
  const problem = (path: string, message: string) => {
    const { line, col } = positions.of(path);
    problems.push({ path, line, col, message });
  };
  const typeName = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'a mapping' : `a ${typeof v}`);
  const isPlain = (v: unknown): v is Plain => typeof v === 'object' && v !== null && !Array.isArray(v);

  const mapping = (v: unknown, path: string, required = false): Plain | undefined => {
    if (v === undefined || v === null) {
      if (required) problem(path, `${path} is required`);
      return undefined;
    }
    if (!isPlain(v)) {
      problem(path, `${path} must be a mapping, got ${typeName(v)}`);
      return undefined;
    }
    return v;
  };
  const knownKeys = (obj: Plain, path: string, keys: string[]) => {
    for (const k of Object.keys(obj)) {
      if (!keys.includes(k)) {
        const p = path ? `${path}.${k}` : k;
        const near = keys.find((known) => editDistance(known, k) <= 2);
        problem(p, `unknown key "${k}" in ${path || 'the top level'}${near ? ` (did you mean "${near}"?)` : `; allowed: ${keys.join(', ')}`}`);
      }
    }
  };
  const string = (v: unknown, path: string, opts: { required?: boolean; pattern?: { test(v: string): boolean }; hint?: string } = {}): string | undefined => {
    if (v === undefined || v === null) {
      if (opts.required) problem(path, `${path} is required${opts.hint ? `: ${opts.hint}` : ''}`);
      return undefined;
    }
    if (typeof v !== 'string') {
      problem(path, `${path} must be a string, got ${typeName(v)}`);
      return undefined;
    }
    if (opts.pattern && !opts.pattern.test(v)) {
      problem(path, `${path} "${v}" is not valid${opts.hint ? `: ${opts.hint}` : ''}`);
      return undefined;
    }
    return v;
  };
  const stringMap = (v: unknown, path: string, keyPattern?: RegExp): Record<string, string> => {
    const out: Record<string, string> = {};
    const obj = mapping(v, path);
    if (!obj) return out;
    for (const [k, val] of Object.entries(obj)) {
      if (keyPattern && !keyPattern.test(k)) problem(`${path}.${k}`, `${path}: "${k}" is not a valid variable name`);
      if (typeof val === 'string' || typeof val === 'number' || typeof val === 'boolean') out[k] = String(val);
      else problem(`${path}.${k}`, `${path}.${k} must be a string, number or boolean, got ${typeName(val)}`);
    }
    return out;
  };
  const stringList = (v: unknown, path: string): string[] => {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) {
      problem(path, `${path} must be a list of strings, got ${typeName(v)}`);
      return [];
    }
    const out: string[] = [];
    v.forEach((item, i) => {
      if (typeof item === 'string') out.push(item);
      else problem(`${path}[${i}]`, `${path}[${i}] must be a string, got ${typeName(item)}`);
    });
    return out;
  };
  const duration = (v: unknown, path: string, fallbackMs: number): number => {
    if (v === undefined || v === null) return fallbackMs;
    const ms = typeof v === 'string' || typeof v === 'number' ? parseDuration(v) : undefined;
    if (ms === undefined || ms <= 0) {
      problem(path, `${path} must be a duration such as "90s", "5m" or "1h", got ${JSON.stringify(v)}`);
      return fallbackMs;
    }
    return ms;
  };
  const relativePath = (v: unknown, path: string, fallback: string): string => {
    const s = string(v, path) ?? fallback;
    if (posix.isAbsolute(s) || s.includes('\\')) {
      problem(path, `${path} must be a relative path inside the repository, got "${s}"`);
      return fallback;
    }
    const norm = posix.normalize(s);
    if (norm === '..' || norm.startsWith('../')) {
      problem(path, `${path} "${s}" points outside the repository`);
      return fallback;
    }
    return norm === '.' ? '' : norm.replace(/\/$/, '');
  };

  // The top level has no key path to name, so it gets messages of its own.
  if (raw === undefined || raw === null) problem('', 'the file is empty: define at least "project" and "images"');
  else if (!isPlain(raw)) problem('', `the top level must be a mapping of keys (project, images, ...), got ${typeName(raw)}`);
  const top = isPlain(raw) ? raw : {};
  knownKeys(top, '', ['project', 'registry', 'builder', 'images', 'tests', 'environments', 'deploy']);
  const project =
    string(top.project, 'project', { required: true, pattern: DNS_LABEL, hint: 'use lower-case letters, digits and "-" (it names releases)' }) ?? 'invalid';
  const registry = string(top.registry, 'registry', {
    pattern: /^[a-z0-9.-]+(:\d+)?(\/[a-z0-9._/-]+)?$/i,
    hint: 'use host[:port]/path, e.g. 127.0.0.1:5000/hello',
  });

  // images.<name>.secrets: [{id, env} | {id, file}]; ids unique per image.
  function buildSecrets(v: unknown, path: string): BuildSecretConfig[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) {
      problem(path, `${path} must be a list of {id, env} or {id, file}, got ${typeName(v)}`);
      return [];
    }
    const out: BuildSecretConfig[] = [];
    const seen = new Set<string>();
    v.forEach((item, i) => {
      const p = `${path}[${i}]`;
      const entry = mapping(item, p);
      if (!entry) return;
      knownKeys(entry, p, ['id', 'env', 'file']);
      const id = string(entry.id, `${p}.id`, {
        required: true,
        pattern: SECRET_ID,
        hint: 'use letters, digits, ".", "_" or "-" (RUN --mount=type=secret,id=… names it)',
      });
      const env = string(entry.env, `${p}.env`, { pattern: ENV_VAR, hint: 'name an environment variable' });
      const file = string(entry.file, `${p}.file`);
      if (env && OWN_SECRET_VARIABLES.includes(env)) {
        problem(
          `${p}.env`,
          `${p}.env is ${env}, one of skiff's own credentials, which a build step could copy into the image; pass the build what it needs in a variable of its own (e.g. a CI/CD variable)`,
        );
      }
      if (entry.env === undefined && entry.file === undefined) problem(p, `${p} needs a source: env (an environment variable) or file (a path)`);
      else if (entry.env !== undefined && entry.file !== undefined) problem(p, `${p} has both env and file; keep one`);
      if (id && seen.has(id)) problem(`${p}.id`, `${p}.id "${id}" is already a secret of this image`);
      if (id) seen.add(id);
      if (id && (env || file)) out.push(env ? { id, env } : { id, file });
    });
    return out;
  }

  const builders: BuildkitdEndpoint[] = [];
  const builderAt = (v: unknown, path: string) => {
    const entry = typeof v === 'string' ? { address: v } : mapping(v, path);
    if (!entry) return;
    knownKeys(entry, path, ['address', 'ca', 'cert', 'key']);
    const address = string(entry.address, `${path}.address`, {
      required: true,
      pattern: BUILDKIT_ADDRESS,
      hint: 'use tcp://host:port or unix:///path/to/buildkitd.sock',
    });
    const tls = { ca: string(entry.ca, `${path}.ca`), cert: string(entry.cert, `${path}.cert`), key: string(entry.key, `${path}.key`) };
    if (Boolean(tls.cert) !== Boolean(tls.key)) problem(path, `${path} needs both cert and key (the client certificate and its key), or neither`);
    if (address) builders.push(tls.ca || tls.cert || tls.key ? { address, tls } : { address });
  };
  if (Array.isArray(top.builder)) {
    if (top.builder.length === 0) problem('builder', 'builder is an empty list: name at least one buildkitd, or remove the key to build on the Docker Engine');
    top.builder.forEach((b, i) => builderAt(b, `builder[${i}]`));
  } else if (top.builder !== undefined && top.builder !== null) builderAt(top.builder, 'builder');

  const images: Record<string, ImageConfig> = {};
  const imagesRaw = mapping(top.images, 'images', true) ?? {};
  if (Object.keys(imagesRaw).length === 0 && top.images !== undefined) problem('images', 'images is empty: define at least one image');
  for (const [name, value] of Object.entries(imagesRaw)) {
    const path = `images.${name}`;
    if (!IMAGE_NAME.test(name)) problem(path, `image name "${name}" must be lower-case letters, digits, ".", "_" or "-"`);
    const img = mapping(value ?? {}, path) ?? {};
    knownKeys(img, path, ['context', 'dockerfile', 'target', 'args', 'dependsOn', 'secrets']);
    const dockerfile = relativePath(img.dockerfile, `${path}.dockerfile`, 'Dockerfile');
    images[name] = {
      name,
      context: relativePath(img.context, `${path}.context`, '.'),
      dockerfile: dockerfile === '' ? 'Dockerfile' : dockerfile,
      target: string(img.target, `${path}.target`),
      args: stringMap(img.args, `${path}.args`, ENV_VAR),
      dependsOn: stringList(img.dependsOn, `${path}.dependsOn`),
      secrets: buildSecrets(img.secrets, `${path}.secrets`),
    };
  }
  for (const img of Object.values(images)) {
    img.dependsOn.forEach((dep, i) => {
      if (!images[dep])
        problem(
          `images.${img.name}.dependsOn[${i}]`,
          `images.${img.name}.dependsOn names "${dep}", which is not an image in skiff.yaml (images: ${Object.keys(images).join(', ')})`,
        );
      else if (dep === img.name) problem(`images.${img.name}.dependsOn[${i}]`, `image "${img.name}" depends on itself`);
    });
  }
  const cycle = findCycle(images);
  if (cycle) problem(`images.${cycle[0]}.dependsOn`, `dependency cycle between images: ${cycle.join(' → ')}; remove one of these dependsOn entries`);

  const tests: Record<string, TestConfig> = {};
  const testsRaw = mapping(top.tests, 'tests') ?? {};
  for (const [name, value] of Object.entries(testsRaw)) {
    const path = `tests.${name}`;
    if (!TEST_NAME.test(name))
      problem(
        path,
        `test name "${name}" must be at most 63 letters, digits, ".", "_" or "-", starting with a letter or digit (it names .skiff/reports/<test>)`,
      );
    else if (name.toLowerCase() === 'junit.xml')
      problem(path, `test name "${name}" is taken: .skiff/reports/junit.xml is the JUnit report of all tests; rename the test`);
    const t = mapping(value, path) ?? {};
    knownKeys(t, path, ['image', 'command', 'env', 'workdir', 'timeout', 'reports', 'network']);
    const image = string(t.image, `${path}.image`, { required: true, hint: 'name an image from the images section' }) ?? '';
    if (image && !images[image])
      problem(`${path}.image`, `${path}.image names "${image}", which is not an image in skiff.yaml (images: ${Object.keys(images).join(', ')})`);
    let command: string[] = [];
    if (typeof t.command === 'string') command = ['sh', '-c', t.command];
    else if (t.command === undefined) problem(path, `${path}.command is required, e.g. command: ["sh", "-c", "./run-tests"]`);
    else command = stringList(t.command, `${path}.command`);
    if (Array.isArray(t.command) && t.command.length === 0) problem(`${path}.command`, `${path}.command is empty`);
    const network = string(t.network, `${path}.network`) ?? 'none';
    if (network !== 'none' && network !== 'host') problem(`${path}.network`, `${path}.network must be "none" or "host", got "${network}"`);
    const reports = stringList(t.reports, `${path}.reports`);
    reports.forEach((r, i) => {
      if (!r.startsWith('/')) problem(`${path}.reports[${i}]`, `${path}.reports[${i}] must be an absolute path inside the container, got "${r}"`);
      // Reports are copied below .skiff/reports/<test>/: a ".." could name something outside it.
      else if (r.split('/').includes('..'))
        problem(`${path}.reports[${i}]`, `${path}.reports[${i}] "${r}" has a ".." segment; name the file by its plain absolute path`);
    });
    const workdir = string(t.workdir, `${path}.workdir`);
    if (workdir !== undefined && !workdir.startsWith('/')) problem(`${path}.workdir`, `${path}.workdir must be an absolute path, got "${workdir}"`);
    tests[name] = {
      name,
      image,
      command,
      env: stringMap(t.env, `${path}.env`, ENV_VAR),
      workdir,
      timeoutMs: duration(t.timeout, `${path}.timeout`, 10 * 60_000),
      reports,
      network: network === 'host' ? 'host' : 'none',
    };
  }

  const environments: Record<string, EnvironmentConfig> = {};
  const envsRaw = mapping(top.environments, 'environments') ?? {};
  for (const [name, value] of Object.entries(envsRaw)) {
    const path = `environments.${name}`;
    if (!DNS_LABEL.test(name)) problem(path, `environment name "${name}" must be lower-case letters, digits and "-"`);
    const e = mapping(value ?? {}, path) ?? {};
    knownKeys(e, path, ['dynamic', 'namespace', 'kubeContext', 'kubeconfig', 'release', 'url', 'values', 'autoRollback']);
    const values = mapping(e.values, `${path}.values`) ?? {};
    const autoRollback = e.autoRollback;
    if (autoRollback !== undefined && typeof autoRollback !== 'boolean') problem(`${path}.autoRollback`, `${path}.autoRollback must be true or false`);
    if (e.dynamic !== undefined && typeof e.dynamic !== 'boolean') problem(`${path}.dynamic`, `${path}.dynamic must be true or false`);
    const dynamic = e.dynamic === true;
    // In a dynamic environment {slug} stands for up to 24 characters of [a-z0-9-]; check the names with one.
    const label = (hint: string) => ({
      pattern: dynamic ? { test: (v: string) => DNS_LABEL.test(v.replaceAll('{slug}', 'review-feature-x-abc123')) } : DNS_LABEL,
      hint: dynamic ? `${hint}; {slug} stands for the environment's slug` : hint,
    });
    const fallbackName = dynamic ? `${project}-{slug}` : `${project}-${name}`;
    environments[name] = {
      name,
      dynamic,
      namespace: string(e.namespace, `${path}.namespace`, label('a Kubernetes namespace name')) ?? fallbackName,
      kubeContext: string(e.kubeContext, `${path}.kubeContext`),
      kubeconfig: string(e.kubeconfig, `${path}.kubeconfig`),
      release: string(e.release, `${path}.release`, label('a DNS label')) ?? (dynamic ? fallbackName : undefined),
      url: string(e.url, `${path}.url`, { pattern: /^https?:\/\/\S+$/, hint: 'an http:// or https:// URL' }),
      values,
      autoRollback: typeof autoRollback === 'boolean' ? autoRollback : undefined,
    };
  }

  const deployRaw = mapping(top.deploy, 'deploy') ?? {};
  knownKeys(deployRaw, 'deploy', ['historyMax', 'autoRollback', 'timeout']);
  const historyMax = deployRaw.historyMax ?? 10;
  if (typeof historyMax !== 'number' || !Number.isInteger(historyMax) || historyMax < 1)
    problem('deploy.historyMax', `deploy.historyMax must be a whole number ≥ 1, got ${JSON.stringify(historyMax)}`);
  if (deployRaw.autoRollback !== undefined && typeof deployRaw.autoRollback !== 'boolean')
    problem('deploy.autoRollback', 'deploy.autoRollback must be true or false');
  const deploy: DeployConfig = {
    historyMax: typeof historyMax === 'number' && historyMax >= 1 ? Math.floor(historyMax) : 10,
    autoRollback: typeof deployRaw.autoRollback === 'boolean' ? deployRaw.autoRollback : undefined,
    timeoutMs: duration(deployRaw.timeout, 'deploy.timeout', 5 * 60_000),
  };

  if (problems.length > 0) {
    problems.sort((a, b) => a.line - b.line || a.col - b.col);
    const p = problems[0]!;
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more problem${problems.length > 2 ? 's' : ''})` : '';
    throw new ConfigError(`${file}:${p.line}:${p.col}: ${p.message}${more}`, { detail: problems });
  }
  return { project, registry, builders, images, tests, environments, deploy, positions, file };
}

/** The first dependency cycle among images, as a path that returns to its start. */
export function findCycle(images: Record<string, { dependsOn: string[] }>): string[] | undefined {
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (name: string): string[] | undefined => {
    if (state.get(name) === 'done') return undefined;
    if (state.get(name) === 'visiting') return [...stack.slice(stack.indexOf(name)), name];
    state.set(name, 'visiting');
    stack.push(name);
    for (const dep of images[name]?.dependsOn ?? []) {
      if (!images[dep] || dep === name) continue;
      const found = visit(dep);
      if (found) return found;
    }
    stack.pop();
    state.set(name, 'done');
    return undefined;
  };
  for (const name of Object.keys(images)) {
    const found = visit(name);
    if (found) return found;
  }
  return undefined;
}

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) dp[0]![j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) dp[i]![j] = Math.min(dp[i - 1]![j]! + 1, dp[i]![j - 1]! + 1, dp[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
  return dp[a.length]![b.length]!;
}

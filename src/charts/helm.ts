import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { childEnv } from '../adapters/child-env.js';
import { findExecutable } from '../adapters/executables.js';
import { ConfigError, InfrastructureError } from '../errors.js';
import type { ClusterCapabilities } from '../kube/kube-client.js';

/**
 * Helm itself, run as a child process: skiff renders charts with Helm's own
 * engine (Go templates, Sprig, include/tpl/lookup) rather than a copy of it.
 * Found through SKIFF_HELM, else on PATH.
 */

/** How a user gets helm, for the error that says it is missing. */
const HOW_TO_GET_HELM =
  'install Helm 4 (https://helm.sh/docs/intro/install/, or "go build helm.sh/helm/v4/cmd/helm") and put it on PATH, or set SKIFF_HELM to its path; the skiff job image has it';

/** The helm binary to run: SKIFF_HELM, else `helm` on PATH; ConfigError (exit 2) when there is none. */
export async function findHelm(env: NodeJS.ProcessEnv, why: string): Promise<string> {
  const found = await findExecutable(env, 'SKIFF_HELM', 'helm');
  if ('path' in found) return found.path;
  if ('bad' in found) throw new ConfigError(`SKIFF_HELM=${found.bad} is not an executable file (give its absolute path); ${needsHelm(why)}`);
  throw new ConfigError(`${needsHelm(why)}, which is not on PATH: ${HOW_TO_GET_HELM}`);
}

/** "the charts in skiff.yaml need helm", ".helm/Chart.yaml needs helm": `why` is the subject, plural when it is "the <things> …". */
function needsHelm(why: string): string {
  return `${why} ${/^the \S+s\b/.test(why) ? 'need' : 'needs'} helm`;
}

export interface HelmTemplateRequest {
  helm: string;
  /** The release name (.Release.Name). */
  release: string;
  namespace: string;
  /** A chart folder or .tgz. */
  chart: string;
  /** Values files in merge order (later wins). */
  valuesFiles: string[];
  /** The cluster's version and API versions when a cluster was reachable. */
  capabilities?: ClusterCapabilities;
  /** How messages name the chart: "chart cache" or ".helm". */
  label: string;
  /** A private folder for Helm's cache, config and data: nothing of the user's Helm set-up is read or written. */
  home: string;
  env: NodeJS.ProcessEnv;
  /** Stops helm (Ctrl-C): its values files can then be removed at once. */
  signal?: AbortSignal;
  /** The most helm may print (MAX_OUTPUT unless given). */
  maxOutputBytes?: number;
}

/** The largest output skiff reads from `helm template`. */
const MAX_OUTPUT = 256 << 20;

/**
 * `helm template` of one chart, CRDs included: the rendered documents with
 * Helm's `# Source:` comments. A template error is a ConfigError naming the
 * chart's file and line (see helmTemplateError).
 */
export async function helmTemplate(req: HelmTemplateRequest): Promise<string> {
  const args = ['template', req.release, req.chart, '--namespace', req.namespace, '--include-crds'];
  for (const f of req.valuesFiles) args.push('--values', f);
  if (req.capabilities) {
    if (req.capabilities.kubeVersion) args.push('--kube-version', req.capabilities.kubeVersion);
    for (const v of req.capabilities.apiVersions) args.push('--api-versions', v);
  }
  const env = {
    // None of the user's Helm set-up (HELM_DEBUG, HELM_REPOSITORY_CONFIG, HELM_KUBE*, …): skiff's private home only.
    ...Object.fromEntries(Object.entries(childEnv(req.env)).filter(([name]) => !name.startsWith('HELM_'))),
    HELM_CACHE_HOME: join(req.home, 'cache'),
    HELM_CONFIG_HOME: join(req.home, 'config'),
    HELM_DATA_HOME: join(req.home, 'data'),
    // A chart's template must not reach a cluster (lookup returns nothing, as in helm template).
    KUBECONFIG: join(req.home, 'no-kubeconfig'),
  };
  return new Promise((resolve, reject) => {
    const maxBuffer = req.maxOutputBytes ?? MAX_OUTPUT;
    execFile(req.helm, args, { env, maxBuffer, encoding: 'utf8', signal: req.signal }, (error, stdout, stderr) => {
      if (!error) return resolve(stdout);
      if (error.code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER') {
        const limit = maxBuffer >= 1 << 20 ? `${maxBuffer >> 20} MB` : `${maxBuffer} bytes`;
        return reject(
          new ConfigError(`${req.label}: helm template printed more than ${limit}; a chart renders objects, not data: check its templates and values`),
        );
      }
      if (req.signal?.aborted)
        return reject(
          new InfrastructureError(`${req.label}: helm template stopped: ${String((req.signal.reason as Error | undefined)?.message ?? 'interrupted')}`),
        );
      if (typeof error.code === 'string') return reject(new InfrastructureError(`${req.label}: cannot run ${req.helm}: ${error.message}`, { cause: error }));
      reject(helmTemplateError(stderr || error.message, req.label));
    });
  });
}

/**
 * Helm's error as skiff names places: `template: redis/templates/master.yaml:12:20: executing … at <.Values.x>: <message>`
 * becomes `chart cache: templates/master.yaml:12: <message> (at <.Values.x>)` (the chart's own folder name dropped, the
 * file given as the chart has it), and likewise for parse and YAML errors. Exit 2.
 */
export function helmTemplateError(stderr: string, label: string): ConfigError {
  const text = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !/^(WARNING|Use --debug)/i.test(l))
    .join(' ')
    .replace(/^Error:\s*/, '');
  const at = (path: string, line: string, message: string) => new ConfigError(`${chartFile(label, path)}:${line}: ${message}`);
  const patterns: Array<[RegExp, (m: RegExpExecArray) => ConfigError]> = [
    // Helm 4: <chart>/templates/x.yaml:4:18 executing "<chart>/templates/x.yaml" at <.Values.x>: message
    // Helm 3: template: <chart>/templates/x.yaml:4:18: executing "…" at <.Values.x>: message
    [EXECUTING, (m) => executionError(m, label)],
    // execution error at (<chart>/templates/x.yaml:1:6): <required's or fail's message>; parse error at (…:1): …
    [/(?:execution|parse) error at \(([^\s:()]+):(\d+)(?::\d+)?\): (.*)$/, (m) => at(m[1]!, m[2]!, m[3]!)],
    [/^template: ([^\s:]+):(\d+)(?::\d+)?: (.*)$/, (m) => at(m[1]!, m[2]!, m[3]!)],
    // YAML parse error on <chart>/templates/x.yaml: error converting YAML to JSON: yaml: line 2: …
    [
      /YAML parse error on ([^\s:]+): (?:error converting YAML to JSON: )?(?:yaml: )?(?:line (\d+): )?(.*)$/,
      (m) => (m[2] ? at(m[1]!, m[2], `invalid YAML (in rendered output): ${m[3]}`) : new ConfigError(`${chartFile(label, m[1]!)}: invalid YAML: ${m[3]}`)),
    ],
  ];
  for (const [pattern, error] of patterns) {
    const m = pattern.exec(text);
    if (m) return error(m);
  }
  return new ConfigError(`${label}: helm template failed: ${text}`);
}

/** A Go template error at a place: `<file>:<line>:<column> executing "<template>" at <<expression>>: <message>`. */
const EXECUTING = /^(?:template: )?([^\s:]+):(\d+)(?::\d+)?:? executing "[^"]*" at <([^>]*)>: (.*)$/;

/**
 * An execution error, at the innermost place: an error inside an included
 * template (a helper of _helpers.tpl) names the helper's line, then the
 * places it was included from, innermost first.
 */
function executionError(outer: RegExpExecArray, label: string): ConfigError {
  // Inside the parentheses a file of the same chart needs no "chart <name>: ".
  const place = (m: RegExpExecArray, short: boolean) => `${short ? chartFile(label, m[1]!).replace(/^chart [^:]+: /, '') : chartFile(label, m[1]!)}:${m[2]}`;
  const included = (m: RegExpExecArray) => EXECUTING.exec(/^error calling include: (.*)$/.exec(m[4]!)?.[1] ?? '');
  let m = outer;
  const from: string[] = [];
  for (let inner = included(m); inner; inner = included(m)) {
    from.unshift(place(m, true));
    m = inner;
  }
  return new ConfigError(`${place(m, false)}: ${m[4]} (at <${m[3]}>${from.length ? `; included from ${from.join(', ')}` : ''})`);
}

/**
 * How skiff names a file of a chart: Helm says `<chart's name>/templates/x.yaml`; the
 * project's own chart is `.helm/templates/x.yaml`, another chart `chart cache: templates/x.yaml`.
 */
export function chartFile(label: string, helmPath: string): string {
  const inChart = helmPath.includes('/') ? helmPath.slice(helmPath.indexOf('/') + 1) : helmPath;
  return label.startsWith('chart ') ? `${label}: ${inChart}` : `${label}/${inChart}`;
}

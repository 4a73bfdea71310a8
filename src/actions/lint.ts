import type { RunContext } from '../context.js';
import type { LiveNamespace } from '../lint/check.js';
import type { LintFinding } from '../lint/finding.js';
import { lintManifests } from '../lint/lint-manifests.js';
import { ConfigError, SkiffError } from '../errors.js';
import type { KubeClient } from '../kube/kube-client.js';
import { readLiveNamespace } from '../lint/lint-release.js';
import { checkOwnership } from '../stages/ownership.js';
import { renderEnvironment, type RenderFlags, type TargetOptions } from '../stages/release-inputs.js';

export interface LintOptions extends TargetOptions, RenderFlags {
  /** Warnings count as errors. */
  strict?: boolean;
  /** Lint the rendered objects alone, without reading the cluster. */
  offline?: boolean;
  /** Objects of another release or tool are taken over (else refused, exit 2, as deploy does). */
  adopt?: boolean;
}

export interface LintResult {
  release: string;
  namespace: string;
  /** Whether the cluster's objects were taken into account. */
  cluster: boolean;
  findings: LintFinding[];
  errors: number;
  warnings: number;
}

/**
 * skiff lint: renders an environment and checks the objects for what the
 * cluster would accept silently (a Service selecting nothing, a missing
 * ConfigMap key). The cluster is only read; unreachable, it is left out.
 */
export async function runLint(ctx: RunContext, opts: LintOptions): Promise<LintResult> {
  const { target, images, rendered } = await renderEnvironment(ctx, opts);
  let live: LiveNamespace | undefined;
  let kube: KubeClient | undefined;
  if (!opts.offline) {
    try {
      kube = await ctx.kube({ context: target.kubeContext, kubeconfig: target.kubeconfig });
      live = await readLiveNamespace(kube, target.namespace);
    } catch (e) {
      // No kubeconfig, no answer, or no right to list: lint what was rendered.
      if (!(e instanceof SkiffError)) throw e;
      ctx.reporter.warn(`cluster not read (${e.message}); linted the rendered objects alone, without what namespace ${target.namespace} already holds`);
    }
  }
  // An object that belongs to another release is the refusal a deploy would give (an object it may not read is left out).
  if (kube && live) {
    await checkOwnership(kube, rendered.manifests, { release: target.release, namespace: target.namespace, adopt: opts.adopt }).catch((e: unknown) => {
      if (e instanceof ConfigError || !(e instanceof SkiffError)) throw e;
      ctx.reporter.warn(`ownership of the rendered objects not checked (${e.message})`);
    });
  }
  const findings = lintManifests({ manifests: rendered.manifests, namespace: target.namespace, images: Object.values(images), live, strict: opts.strict });
  // A message can quote a value: mask secret strings as everywhere else.
  const masked = findings.map((f) => ({ ...f, message: rendered.redactor.text(f.message) }));
  const errors = masked.filter((f) => f.severity === 'error').length;
  return { release: target.release, namespace: target.namespace, cluster: live !== undefined, findings: masked, errors, warnings: masked.length - errors };
}

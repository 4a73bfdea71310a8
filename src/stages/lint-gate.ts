import type { RunContext } from '../context.js';
import { ConfigError } from '../errors.js';
import type { KubeClient } from '../kube/kube-client.js';
import type { Manifest } from '../kube/objects.js';
import { formatFinding } from '../lint/finding.js';
import { lintRelease } from '../lint/lint-release.js';

/**
 * The lint a deploy (and a plan) passes before its dry run: warnings are
 * reported, and the first error (with the count of the rest) is exit 2 before
 * anything is written.
 */
export async function lintGate(
  ctx: RunContext,
  manifests: Manifest[],
  opts: { env: string; namespace: string; images: Record<string, string>; strict?: boolean; kube: KubeClient },
): Promise<void> {
  const findings = await lintRelease(manifests, { namespace: opts.namespace, images: opts.images, strict: opts.strict, kube: opts.kube });
  const errors = findings.filter((f) => f.severity === 'error');
  for (const f of findings) if (f.severity === 'warning') ctx.reporter.warn(formatFinding(f));
  if (errors.length) {
    throw new ConfigError(
      `${formatFinding(errors[0]!)}${errors.length > 1 ? ` (and ${errors.length - 1} more lint errors: skiff lint ${opts.env} lists them)` : ''}`,
      { detail: { findings: errors } },
    );
  }
}

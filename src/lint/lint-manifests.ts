import type { Manifest } from '../kube/objects.js';
import type { LintContext, LintInput, RegisteredCheck, Report } from './check.js';
import { LINT_CHECKS, LINT_SKIP_ANNOTATION, type LintFinding } from './finding.js';
import { containersOf, objectId, podTemplate, type PodTemplate, type RenderedPodTemplate } from './pod-templates.js';
import { LINT_REGISTRY } from './registry.js';

/**
 * `skiff lint`: checks over the rendered objects for the mistakes a cluster
 * accepts without a word (kube-linter's dangling-service and friends). Pure:
 * what the cluster already holds comes in as plain objects.
 */

/** Runs every registered check; findings come in manifest order, an object's skip annotation applied, --strict applied. */
export function lintManifests(input: LintInput, registry: readonly RegisteredCheck[] = LINT_REGISTRY): LintFinding[] {
  const { manifests, namespace } = input;
  const ctx: LintContext = {
    input,
    rendered: manifests.map((m) => podTemplate(m.object, namespace, m)).filter((t): t is RenderedPodTemplate => !!t),
    live: (input.live?.workloads ?? []).map((o) => podTemplate(o, namespace)).filter((t): t is PodTemplate => !!t),
  };
  const findings: LintFinding[] = [];
  for (const m of manifests) {
    const reporter = findingsOf(m, input, findings);
    for (const c of registry) if (c.on === 'object') c.run(m, ctx, reporter(c));
    const t = podTemplate(m.object, namespace, m);
    if (!t) continue;
    for (const container of containersOf(t)) for (const c of registry) if (c.on === 'container') c.run(container, t, ctx, reporter(c));
    for (const c of registry) if (c.on === 'pod-template') c.run(t, ctx, reporter(c));
  }
  return findings;
}

/** For one object: each check's Report, which adds to findings unless the object's skip annotation names the check. */
function findingsOf(m: Manifest, input: LintInput, findings: LintFinding[]): (c: RegisteredCheck) => Report {
  const skip = (m.object.metadata.annotations?.[LINT_SKIP_ANNOTATION] ?? '').split(',').map((s) => s.trim());
  return ({ check }) =>
    (field, message, fix) => {
      if (skip.includes(check)) return;
      const severity = input.strict ? 'error' : LINT_CHECKS[check];
      findings.push({ check, severity, file: m.source.file, line: m.source.line, object: objectId(m.object), field, message, fix });
    };
}

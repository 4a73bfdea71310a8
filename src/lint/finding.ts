/** What `skiff lint` reports: the checks' names, their severities, and a finding as printed. */

export type LintSeverity = 'error' | 'warning';

export type LintCheck =
  | 'dangling-service'
  | 'dangling-ingress'
  | 'missing-config'
  | 'unknown-target-port'
  | 'overlapping-selector'
  | 'unset-requests'
  | 'latest-tag'
  | 'pdb-blocks-eviction';

export const LINT_CHECKS: Record<LintCheck, LintSeverity> = {
  'dangling-service': 'error',
  'dangling-ingress': 'error',
  'missing-config': 'error',
  'unknown-target-port': 'error',
  'overlapping-selector': 'error',
  'unset-requests': 'warning',
  'latest-tag': 'warning',
  'pdb-blocks-eviction': 'warning',
};

/** `skiff.io/lint-skip: dangling-service,latest-tag` silences those checks on the object. */
export const LINT_SKIP_ANNOTATION = 'skiff.io/lint-skip';

export interface LintFinding {
  check: LintCheck;
  severity: LintSeverity;
  file: string;
  line: number;
  /** `Kind/name` */
  object: string;
  field: string;
  message: string;
  fix: string;
}

/** `.kube/service.yaml:1: Service/web spec.selector: no pods found…; make spec.selector… [dangling-service]` */
export function formatFinding(f: LintFinding): string {
  return `${f.file}:${f.line}: ${f.object} ${f.field}: ${f.message}; ${f.fix} [${f.check}]`;
}

/** A Kubernetes object as plain JSON. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [k: string]: unknown;
  };
  [k: string]: unknown;
}

/** Fields of an API server's JSON, read one by one with fallbacks: their shape is the server's. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- untyped JSON from the API server
export type ApiFields = Record<string, any>;

/** A live object as the API server returns it: status and spec read loosely. */
export type LiveObject = KubeObject & ApiFields;

/** A rendered object and the template it came from. */
export interface Manifest {
  object: KubeObject;
  /** Template file (repository-relative) and the line its document starts on. */
  source: { file: string; line: number };
}

/** Labels and annotations skiff reads and writes on the objects it manages. */
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const RELEASE_LABEL = 'skiff.io/release';
/**
 * The namespace of the release an object belongs to: a release is its name
 * and its namespace (`deploy --namespace x` and `--namespace y` make two
 * releases of one name), and the release label alone cannot tell them apart.
 */
export const RELEASE_NAMESPACE_ANNOTATION = 'skiff.io/release-namespace';

/** Which release: its name and the namespace its records and lock live in. */
export interface ReleaseId {
  release: string;
  namespace: string;
}
/** `skiff.io/keep: "true"`: never pruned or dismissed. */
export const KEEP_ANNOTATION = 'skiff.io/keep';
/** Where an object was deployed from: the commit, and in CI the pipeline and job. They change with every deploy. */
export const TRACE_ANNOTATIONS = { commit: 'skiff.io/commit', pipelineUrl: 'skiff.io/pipeline-url', jobUrl: 'skiff.io/job-url' } as const;
/** `skiff.io/hook: pre-deploy | post-deploy`. */
export const HOOK_ANNOTATION = 'skiff.io/hook';
/** Helm's hook annotations, which skiff maps onto its own for charts' hooks (src/charts/helm-output.ts). */
export const HELM_HOOK_ANNOTATIONS = { hook: 'helm.sh/hook', weight: 'helm.sh/hook-weight', deletePolicy: 'helm.sh/hook-delete-policy' } as const;
/** `skiff.io/adopt: "true"` on a rendered object: take it over even if it belongs to another release or tool (as --adopt does). */
export const ADOPT_ANNOTATION = 'skiff.io/adopt';

/** The field manager of skiff before it had one per release; still the namespace's and the release records'. */
export const SHARED_FIELD_MANAGER = 'skiff';

/**
 * The field manager a release applies its objects with, so that server-side
 * apply reports a conflict between two releases instead of handing the
 * fields from one to the other. A release name is at most 53 characters; a
 * field manager may have 128.
 */
export function releaseFieldManager(release: string): string {
  return `skiff-${release}`;
}

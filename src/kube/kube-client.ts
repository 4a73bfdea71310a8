import { ExitCode, SkiffError } from '../errors.js';
import type { KubeObject, LiveObject } from './objects.js';

/**
 * What skiff needs from a Kubernetes API server. The HTTP implementation is
 * adapters/kube.ts; tests of the release orchestration use an in-memory one.
 * Every method reports an API server's refusal as a KubeApiError; an
 * unreachable server or rejected credentials are InfrastructureErrors.
 * Transient failures (connection lost, 429, 502-504) are the implementation's
 * to retry within its bound (kube/retry.ts), so callers see only final answers.
 */
export interface KubeClient {
  /** The kubeconfig context, for messages. */
  readonly context: string;
  /** The API server's URL, for messages that name the cluster (absent for in-memory clients). */
  readonly server?: string;
  /** The namespace of the context, for objects without one. */
  readonly defaultNamespace: string;

  /**
   * Server-side apply with `fieldManager` (a release's: releaseFieldManager), else skiff's shared
   * one; `dryRun` asks the server to validate only. A write's `signal` stops it, retries included
   * (a run that lost its release lock sends nothing more).
   */
  apply(obj: KubeObject, opts?: { dryRun?: boolean; force?: boolean; fieldManager?: string } & WriteOptions): Promise<LiveObject>;
  get(apiVersion: string, kind: string, namespace: string | undefined, name: string): Promise<LiveObject | undefined>;
  list(apiVersion: string, kind: string, namespace: string | undefined, query?: ListQuery): Promise<ListResult>;
  /** Objects of a namespaced kind matching a label selector, across the cluster, by namespace. */
  namespacesWith(apiVersion: string, kind: string, labelSelector: string): Promise<Map<string, LiveObject[]>>;
  /** The server's version and group versions, as Helm's --kube-version and --api-versions take them (absent for in-memory clients). */
  capabilities?(): Promise<ClusterCapabilities>;
  /**
   * Creates an object. A create repeated after a lost answer that finds the
   * object (409) returns it only if it holds what was sent; else the 409 stands.
   */
  create(obj: KubeObject, opts?: WriteOptions): Promise<LiveObject>;
  /** Replaces an object; metadata.resourceVersion makes it conditional. */
  replace(obj: KubeObject, opts?: WriteOptions): Promise<LiveObject>;
  /**
   * Deletes an object; true when it existed. A precondition's resourceVersion
   * (or uid) makes it conditional: 409 Conflict when the object changed (or
   * is another object of the same name).
   */
  delete(
    apiVersion: string,
    kind: string,
    namespace: string | undefined,
    name: string,
    propagation?: 'Background' | 'Foreground',
    preconditions?: { resourceVersion?: string; uid?: string },
    opts?: WriteOptions,
  ): Promise<boolean>;
  /** The last lines of a container's log ('' when there is none yet). */
  logs(namespace: string, pod: string, container: string, opts?: { tailLines?: number; previous?: boolean }): Promise<string>;
  /**
   * Lists, then watches a collection until the watcher's signal aborts,
   * calling onEvent for each change (the list replayed as ADDED events first,
   * then onSynced).
   */
  watch(apiVersion: string, kind: string, namespace: string | undefined, query: ListQuery, watcher: Watcher): Promise<void>;
}

/** What a chart's templates may ask of the cluster (.Capabilities in Helm). */
export interface ClusterCapabilities {
  /** "v1.34.4". */
  kubeVersion: string;
  /** "v1", "apps/v1", … */
  apiVersions: string[];
}

/** What a write may carry besides its object. */
export interface WriteOptions {
  /** Aborting it stops the write, and the retries of a transient failure, at once. */
  signal?: AbortSignal;
}

/** Who receives a watch's events, and when it stops. */
export interface Watcher {
  onEvent: (ev: WatchEvent) => void;
  signal: AbortSignal;
  /** Called once the initial list has been delivered. */
  onSynced?: () => void;
}

export interface ListQuery {
  labelSelector?: string;
  fieldSelector?: string;
}

export interface ListResult {
  items: LiveObject[];
  resourceVersion: string;
}

export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK';
  object: LiveObject;
}

/**
 * Requests in flight at once: applying 100 objects to a cluster 20 ms away takes 7 round trips, not 100.
 * The HTTP client lowers it while the API server rate-limits (AdaptiveLimiter in kube/retry.ts).
 */
export const PARALLEL_REQUESTS = 16;

/**
 * The API server refused a request: its status code, reason and the fields it
 * names. Where skiff knows the template behind the request (apply, dry run),
 * stages/apply.ts turns it into a message with file and line; anywhere else it
 * reaches the user as a refusal of the cluster (exit 3).
 */
export class KubeApiError extends SkiffError {
  override readonly name = 'KubeApiError';
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    readonly causes: Array<{ field?: string; message?: string; reason?: string }> = [],
  ) {
    super('infrastructure', ExitCode.infrastructure, message);
  }
}

/** A kind the cluster does not serve (yet: a CRD applied by this very run may define it a moment later). A 404, like an object not found. */
export class UnknownKindError extends KubeApiError {
  constructor(
    readonly apiVersion: string,
    readonly objectKind: string,
  ) {
    super(404, 'NotFound', `the cluster does not know ${objectKind} in ${apiVersion} (is the CRD installed?)`);
  }
}

/** Whether a request failed because the cluster does not serve the object's kind, as opposed to the object not being there. */
export function isUnknownKind(e: unknown): e is UnknownKindError {
  return e instanceof UnknownKindError;
}

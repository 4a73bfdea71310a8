import type { ContainerEngine } from './adapters/container-engine.js';
import type { CiContext } from './gitlab/ci-variables.js';
import type { KubeClient } from './kube/kube-client.js';

/**
 * Where actions report progress. Actions never print: the CLI picks an
 * implementation (a CI log, a live terminal view, or JSON mode's stderr).
 */
export interface Reporter {
  /** A plain message for the user. */
  info(message: string): void;
  warn(message: string): void;
  /** A line of output from a build, test or container, labelled with its source. */
  log(source: string, line: string): void;
  /**
   * A unit of work (image, test, object) changed state. The line reads
   * `subject: state (detail)`, so the detail never repeats the state.
   */
  status(subject: string, state: string, detail?: string): void;
  /** Shown only with --verbose. */
  debug(message: string): void;
  /**
   * Starts the stretch of the log of one unit of work (an image build, a
   * test, a deploy phase) and returns the function that ends it; ending twice
   * does nothing. Under GitLab CI it is a collapsible section (`name` is its
   * id, `header` its title line; `collapsed` folds it until clicked); other
   * logs show nothing of it. Call the end on every path (finally), then print
   * the unit's verdict and failure text right after it, with no await
   * between, so they are never folded away or left behind another section.
   *
   * `source` is the name the unit's log and status lines carry. GitLab
   * sections cannot interleave, so a section started while another is open
   * waits: its lines are kept and printed, in order, when the open one ends,
   * and other lines that come meanwhile (warnings…) follow the open section's end.
   */
  section(name: string, header: string, opts?: SectionOptions): () => void;
  /**
   * Where a large rollout (above 10 tracked objects) stands, after each
   * change; the last call carries the outcome. A terminal view redraws a
   * table from it; a log leaves it out, its status lines say every change.
   */
  rollout?(progress: RolloutProgress): void;
}

/** A large rollout's state: each tracked object, and the release's summary line. */
export interface RolloutProgress {
  objects: ObjectProgress[];
  /** `37/50 objects ready; pods 1312/1500 ready, 1500/1500 updated` */
  summary: string;
  /** On the last call only: how tracking ended. */
  outcome?: 'done' | 'failed' | 'timeout' | 'aborted';
}

export interface ObjectProgress {
  /** `Deployment/web` */
  object: string;
  state: 'ready' | 'waiting' | 'failed';
  /** Ready and desired pods, for kinds with replicas. */
  pods?: { ready: number; want: number };
  /** Why it is not ready: its progress and what the kubelet says (the detail of its status line). */
  cause?: string;
}

export interface SectionOptions {
  collapsed?: boolean;
  source?: string;
}

/** Which cluster to talk to: a kubeconfig context and file (defaults: the current context, KUBECONFIG). */
export interface ClusterSelector {
  context?: string;
  kubeconfig?: string;
}

/**
 * Everything an action depends on, passed in once (Helm's Configuration):
 * the working directory, environment, CI facts, reporter, clock, abort signal
 * and the lazily created clients of the outside world.
 */
export interface RunContext {
  cwd: string;
  env: NodeJS.ProcessEnv;
  ci: CiContext;
  reporter: Reporter;
  now: () => Date;
  signal: AbortSignal;
  docker: () => Promise<ContainerEngine>;
  kube: (cluster: ClusterSelector) => Promise<KubeClient>;
}

import type { ProblemGroup } from '../kinds/problem-groups.js';
import type { ReleaseRecord } from '../release/release-record.js';
import type { Diagnosis } from '../stages/track.js';

/**
 * What one report page shows: plain data, every string as skiff found it
 * (masked already, never escaped: the renderer escapes). A section whose
 * data was not known when the report was made is undefined, and `unknown`
 * says why, so the page can say so instead of showing an empty section.
 */
export interface ReleaseReport {
  /** What made the report. */
  action: 'deploy' | 'rollback' | 'plan' | 'history';
  release: string;
  environment: string;
  namespace: string;
  project: string;
  revision?: number;
  /** deployed, failed, planned, error, superseded…: the record's status or the run's verdict. */
  result: string;
  description: string;
  commit?: string;
  branch?: string;
  /** CI pipeline and job pages; only http(s) URLs are ever linked. */
  pipelineUrl?: string;
  jobUrl?: string;
  startedAt?: string;
  durationMs?: number;
  /** When the page was made, ISO 8601. */
  generatedAt: string;
  images?: Record<string, string>;
  timeline?: TimelineRow[];
  /** The row (object or hook) that held the release back: failed, not ready, or the last to be ready. */
  heldBy?: string;
  tree?: TreeNode[];
  failures?: FailedPod[];
  /** Failing pods of the release grouped by cause, largest group first. */
  failureGroups?: FailureGroup[];
  notReady?: Array<{ object: string; message: string; cause?: string }>;
  changes?: Array<{ object: string; change: string; diff: string }>;
  /** The revision the changes are counted from. */
  changesFrom?: number;
  warnings?: string[];
  tests?: ReleaseRecord['tests'];
  /** Sections not known for this report and why, e.g. "timeline: …". */
  unknown: string[];
}

export type RowState = 'ready' | 'failed' | 'waiting' | 'applied' | 'done' | 'running';

/** One bar of the waterfall: a phase, a hook or an object, from its start to its end (ms after the report's start). */
export interface TimelineRow {
  kind: 'phase' | 'hook' | 'object';
  subject: string;
  startMs: number;
  /** Undefined: still open when the run ended. */
  endMs?: number;
  state: RowState;
  /** The last progress or verdict detail ("2/3 pods ready"). */
  detail?: string;
  /** Replica progress, when the detail gave one. */
  progress?: { ready: number; want: number };
}

export type Health = 'healthy' | 'progressing' | 'degraded' | 'failed' | 'missing' | 'unknown';

export interface TreeNode {
  /** `Deployment/web`, `Pod/web-5c9…`, `Endpoints/web`. */
  ref: string;
  health: Health;
  detail?: string;
  children: TreeNode[];
}

/** A failed pod as the tracker diagnosed it (its cause, events and last log lines), without the groups. */
export type FailedPod = Omit<Diagnosis, 'groups'>;

/** Pods failing for one cause, as the diagnosis groups them. */
export type FailureGroup = ProblemGroup;

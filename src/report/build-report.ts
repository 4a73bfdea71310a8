import { recordedChanges } from '../actions/diff.js';
import type { ReleaseRecord } from '../release/release-record.js';
import { recordSalt, Redactor } from '../secrets/redact.js';
import type { Diagnosis, NotReady } from '../stages/track.js';
import type { FailedPod, FailureGroup, ReleaseReport, TreeNode } from './report-model.js';
import { heldBy, type TimelineRecorder } from './timeline.js';

/** Who asks for a report, and of what. */
export interface ReportSubject {
  action: ReleaseReport['action'];
  release: string;
  environment: string;
  namespace: string;
  project: string;
  generatedAt: string;
}

/**
 * A revision's report from what its record holds: header, images, tests and
 * the change since the deployed revision before it (as the history masks it).
 * What only the run itself knew is listed in `unknown` until a run adds it.
 */
export function reportFromRecord(subject: ReportSubject, history: readonly ReleaseRecord[], record: ReleaseRecord): ReleaseReport {
  const started = Date.parse(record.startedAt);
  const finished = record.finishedAt ? Date.parse(record.finishedAt) : NaN;
  // The revision that ran before this one: the last deployed (or since superseded) of the earlier ones.
  const previous = [...history].reverse().find((r) => r.revision < record.revision && (r.status === 'deployed' || r.status === 'superseded'));
  const salt = recordSalt(record);
  const redactor = salt ? new Redactor().salted(salt) : new Redactor();
  const report: ReleaseReport = {
    ...subject,
    revision: record.revision,
    result: record.status,
    description: record.description,
    commit: record.git.commit,
    ...(record.git.branch === undefined ? {} : { branch: record.git.branch }),
    ...(record.deployedBy.ciPipelineUrl ? { pipelineUrl: record.deployedBy.ciPipelineUrl } : {}),
    ...(record.deployedBy.ciJobUrl ? { jobUrl: record.deployedBy.ciJobUrl } : {}),
    startedAt: record.startedAt,
    ...(Number.isFinite(started) && Number.isFinite(finished) ? { durationMs: Math.max(0, finished - started) } : {}),
    images: record.images,
    changes: recordedChanges(previous?.manifests ?? [], record.manifests, redactor),
    ...(previous ? { changesFrom: previous.revision } : {}),
    ...(record.tests?.length ? { tests: record.tests } : {}),
    unknown: [],
  };
  // Masks written before salts are plain SHA-256 of the secret: shown without the checksum, as history shows them.
  return salt ? report : (JSON.parse(JSON.stringify(report).replace(/\(masked sha256:[0-9a-f]{12}\)/g, '(masked)')) as ReleaseReport);
}

/** What only the run knew, for a report made from the history. */
export const NOT_IN_HISTORY = [
  'timeline: the history keeps when a revision started and finished, not when each object became ready',
  "failed pods' log lines and events: they are not kept in the history",
  'lint warnings: they are not kept in the history',
];

/** What a deploy or rollback adds to its revision's report: the timeline, the failures, the warnings and the object tree. */
export function addRun(
  report: ReleaseReport,
  run: { recorder: TimelineRecorder; failures?: Diagnosis[]; notReady?: NotReady[]; tree?: TreeNode[]; treeUnknown?: string; durationMs?: number },
): ReleaseReport {
  const timeline = run.recorder.timeline();
  const notReady = run.notReady ?? [];
  const out: ReleaseReport = {
    ...report,
    timeline,
    warnings: run.recorder.warningList(),
    ...(run.durationMs === undefined ? {} : { durationMs: run.durationMs }),
  };
  const held = heldBy(
    timeline,
    notReady.map((n) => n.object),
  );
  if (held && report.result !== 'planned') out.heldBy = held;
  if (run.failures?.length) {
    out.failures = run.failures.map(failedPod);
    const groups = run.failures[0]?.groups;
    if (groups?.length) out.failureGroups = groups.map((g): FailureGroup => ({ ...g, objects: [...g.objects], examples: [...g.examples] }));
  }
  if (notReady.length) out.notReady = notReady;
  if (run.tree) out.tree = run.tree;
  if (run.treeUnknown) out.unknown = [...out.unknown, `object tree: ${run.treeUnknown}`];
  return out;
}

function failedPod(d: Diagnosis): FailedPod {
  const { groups: _groups, ...rest } = d;
  return { ...rest, events: [...d.events], logs: [...d.logs] };
}

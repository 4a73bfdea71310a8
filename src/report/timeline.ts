import type { Reporter } from '../context.js';
import type { RowState, TimelineRow } from './report-model.js';

/** At most this many warnings are kept for a report; a release that warns more is summarised by the count. */
const MAX_WARNINGS = 200;

/**
 * Remembers, with the time, what a report's timeline needs from a run's
 * reporter: each log section (a deploy phase, a hook) from its start to its
 * end, each object's states from applied to ready or failed, and the
 * warnings (lint's among them). `reporter` is what the run reports to: it
 * passes everything on, methods this class does not know included.
 */
export class TimelineRecorder {
  private readonly started: number;
  private readonly rows = new Map<string, TimelineRow>();
  private readonly order: TimelineRow[] = [];
  private readonly warnings: string[] = [];
  private warningCount = 0;
  readonly reporter: Reporter;

  constructor(
    inner: Reporter,
    private readonly clock: () => number = Date.now,
  ) {
    this.started = clock();
    this.reporter = {
      ...passThrough(inner),
      warn: (message) => {
        this.warningCount++;
        if (this.warnings.length < MAX_WARNINGS) this.warnings.push(message);
        inner.warn(message);
      },
      status: (subject, state, detail) => {
        inner.status(subject, state, detail);
        this.status(subject, state, detail);
      },
      section: (name, header, opts) => this.section(inner.section(name, header, opts), header),
    };
  }

  private status(subject: string, state: string, detail?: string): void {
    // The release's summary line is the whole run, which the header shows.
    if (subject === 'release') return;
    const at = this.clock() - this.started;
    const hook = state === 'running' && detail?.endsWith(' hook');
    const row = this.rows.get(subject) ?? this.open(hook ? 'hook' : 'object', subject, at);
    if (hook) row.kind = 'hook';
    row.state = rowState(state);
    if (detail !== undefined) row.detail = detail;
    const progress = detail === undefined ? undefined : replicaProgress(detail);
    if (progress) row.progress = progress;
    // Applied is a moment (an object nothing waits for ends there); ready, failed and done end the bar.
    if (row.state !== 'waiting' && row.state !== 'running') row.endMs = at;
    else delete row.endMs;
  }

  private section(end: () => void, header: string): () => void {
    const row = this.open('phase', header, this.clock() - this.started);
    row.state = 'running';
    let ended = false;
    return () => {
      end();
      if (ended) return;
      ended = true;
      row.endMs = this.clock() - this.started;
      row.state = 'done';
    };
  }

  /** The rows in the order they started; warnings beyond the kept ones are counted in a last line. */
  timeline(): TimelineRow[] {
    return this.order.map((r) => ({ ...r }));
  }

  /** The warnings kept, and how many more there were. */
  warningList(): string[] {
    const more = this.warningCount - this.warnings.length;
    return more > 0 ? [...this.warnings, `… and ${more} more warnings`] : [...this.warnings];
  }

  private open(kind: TimelineRow['kind'], subject: string, at: number): TimelineRow {
    const row: TimelineRow = { kind, subject, startMs: at, state: 'applied' };
    // A phase is named by its header, which repeats (each hook); objects by their reference, once each.
    if (kind !== 'phase') this.rows.set(subject, row);
    this.order.push(row);
    return row;
  }
}

function rowState(state: string): RowState {
  switch (state) {
    case 'ready':
    case 'failed':
    case 'applied':
    case 'waiting':
    case 'running':
      return state;
    case 'complete':
    case 'succeeded':
    case 'done':
    case 'pruned':
      return 'done';
    default:
      return 'waiting';
  }
}

/** "2/3 pods ready", "ready 2/3", "1/4 updated": the first n/m in a progress detail. */
export function replicaProgress(detail: string): { ready: number; want: number } | undefined {
  const m = /(\d+)\/(\d+)/.exec(detail);
  if (!m) return undefined;
  const ready = Number(m[1]);
  const want = Number(m[2]);
  return Number.isSafeInteger(ready) && Number.isSafeInteger(want) && want > 0 ? { ready, want } : undefined;
}

/**
 * The row that held the release back: the first failed object, else the
 * first that never became ready, else the last to become ready (the end of
 * the critical path). Phases are never it.
 */
export function heldBy(rows: readonly TimelineRow[], notReady: readonly string[] = []): string | undefined {
  const items = rows.filter((r) => r.kind !== 'phase');
  const failed = items.find((r) => r.state === 'failed');
  if (failed) return failed.subject;
  const open = notReady.find((o) => items.some((r) => r.subject === o)) ?? items.find((r) => r.endMs === undefined && r.state === 'waiting')?.subject;
  if (open) return open;
  const done = items.filter((r) => r.endMs !== undefined && (r.state === 'ready' || r.state === 'done'));
  return done.sort((a, b) => b.endMs! - a.endMs!)[0]?.subject;
}

/** Every method of a reporter (its own and its class's), bound to it: a wrapper keeps what it does not override. */
function passThrough(inner: Reporter): Reporter {
  const out: Record<string, unknown> = {};
  for (let o: object | null = inner; o !== null && o !== Object.prototype; o = Object.getPrototypeOf(o) as object | null) {
    for (const key of Object.getOwnPropertyNames(o)) {
      const v: unknown = (inner as unknown as Record<string, unknown>)[key];
      if (key !== 'constructor' && !(key in out) && typeof v === 'function') out[key] = (v as (...a: unknown[]) => unknown).bind(inner);
    }
  }
  return out as unknown as Reporter;
}

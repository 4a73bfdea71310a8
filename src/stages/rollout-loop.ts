import { formatRolloutSummary, verdict, workloadCounts, type RolloutVerdict } from '../kinds/readiness.js';
import { kindRow } from '../kinds/table.js';
import { formatUnreadyCause, unreadyCauses, type UnreadyCause } from '../kinds/unready.js';
import { objectRef as id } from '../kube/object-key.js';
import type { KubeObject, LiveObject as Obj } from '../kube/objects.js';
import type { ObjectProgress, RolloutProgress } from '../context.js';
import type { RolloutIndex } from './rollout-index.js';
import type { NotReady, TrackRequest } from './track.js';

/** Progress lines of a workload still rolling out: at most one per this interval (state changes show at once). */
export const PROGRESS_INTERVAL_MS = 2_000;
/** The release-wide summary line of a large rollout: at most one per this interval. */
export const SUMMARY_INTERVAL_MS = 5_000;
/** Above this many tracked objects, one release-wide summary line replaces their progress lines. */
export const SUMMARY_ABOVE = 10;
/** After the first failure, how long other pods' failures are still collected, so the diagnosis groups them. */
export const FAILURE_GATHER_MS = 1_000;

export type Outcome = 'done' | 'failed' | 'timeout' | 'aborted';

/**
 * Turns what the index learns into verdicts and progress lines: after each
 * burst of watch events it judges the objects that changed, shows what
 * changed (a workload's progress at most every few seconds, a large
 * release's as one summary line), and ends tracking once every object is
 * ready or, a moment after the first failure, failed.
 */
export class RolloutLoop {
  readonly verdicts = new Map<string, RolloutVerdict>();
  private readonly causes = new Map<string, UnreadyCause[]>();
  private readonly lastShown = new Map<string, { text: string; state: string; at: number }>();
  private lastSummary = { text: '', at: 0 };
  private firstFailureAt: number | undefined;
  private pendingSyncs = 0;
  private scheduled = false;
  private settled = false;
  private resolve: (r: Outcome) => void = () => {};
  readonly finished = new Promise<Outcome>((resolve) => (this.resolve = resolve));
  /** Above SUMMARY_ABOVE objects one release-wide line replaces the progress lines of each. */
  readonly many: boolean;
  /** PersistentVolumeClaims (namespace/name) whose StorageClass binds on first use: ready once applied. */
  readonly bindLater = new Set<string>();
  /** The cluster's StorageClasses, read once when claims are tracked, to explain a Pending claim. */
  storageClasses: Obj[] | undefined;
  /** When each retried container state (CreateContainerConfigError…) was first seen. */
  private readonly problemSeen = new Map<string, number>();

  constructor(
    private readonly index: RolloutIndex,
    private readonly req: TrackRequest,
    private readonly defaultNamespace: string,
  ) {
    this.many = index.tracked.length > SUMMARY_ABOVE;
  }

  readonly firstSeen = (key: string): number | undefined => {
    if (!this.problemSeen.has(key)) this.problemSeen.set(key, this.req.now().getTime());
    return this.problemSeen.get(key);
  };

  /** Stops tracking with this outcome; the first one counts. */
  end(outcome: Outcome): void {
    this.settled = true;
    this.resolve(outcome);
  }

  /** A watch started; nothing is judged until every watch has listed its current state. */
  watchStarted(): void {
    this.pendingSyncs++;
  }

  watchSynced(): void {
    this.pendingSyncs--;
    this.rejudgeAll();
  }

  rejudgeAll(): void {
    this.index.markAll();
    this.schedule();
  }

  schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // setImmediate, not a microtask: a burst of watch events (a chunk of a thousand pods) is judged once.
    setImmediate(() => {
      this.scheduled = false;
      this.evaluate();
    });
  }

  private evaluate(): void {
    if (this.pendingSyncs > 0 || this.settled) return;
    const now = this.req.now();
    const wallNow = Date.now();
    const judged = this.index.takeChanged().map((o) => {
      const v = this.judge(o, now);
      if (v.state === 'failed' && this.firstFailureAt === undefined) {
        this.firstFailureAt = wallNow;
        setTimeout(() => this.rejudgeAll(), FAILURE_GATHER_MS).unref();
      }
      return [o, v] as const;
    });
    // A terminal's table learns of the changes before their status lines, which it then leaves out.
    if (this.many && judged.length) this.req.reporter.rollout?.(this.progress());
    for (const [o, v] of judged) this.show(o, v, wallNow);
    if (this.many && wallNow - this.lastSummary.at >= SUMMARY_INTERVAL_MS) {
      const text = this.summary();
      if (text !== this.lastSummary.text) this.req.reporter.status('release', 'waiting', text);
      this.lastSummary = { text, at: wallNow };
    }
    this.decide(wallNow);
  }

  /** Ends tracking when everything is ready, or a moment after the first failure. */
  private decide(wallNow: number): void {
    const states = this.index.tracked.map((o) => this.verdicts.get(id(o))?.state);
    if (this.firstFailureAt !== undefined && !states.includes('failed')) this.firstFailureAt = undefined; // it cleared meanwhile
    if (this.firstFailureAt !== undefined) {
      // Collect other pods' failures a moment longer, unless nothing else is still rolling out.
      if (wallNow - this.firstFailureAt >= FAILURE_GATHER_MS || !states.includes('progressing')) this.end('failed');
      return;
    }
    if (states.every((st) => st === 'ready')) this.end('done');
  }

  private judge(o: KubeObject, now: Date): RolloutVerdict {
    const cur = this.index.liveOf(o);
    let v: RolloutVerdict;
    if (!cur) v = { state: 'progressing', message: 'not created yet' };
    else {
      const ns = cur.metadata.namespace ?? this.defaultNamespace;
      const pods = this.index.podsOf(cur);
      const claimContext = kindRow(o.kind)?.rollout?.readsClaimContext === true;
      const related = {
        pods,
        oldPods: this.index.oldPodsOf(cur, pods),
        bindImmediately: !this.bindLater.has(`${ns}/${o.metadata.name}`),
        firstSeen: this.firstSeen,
        storageClasses: this.storageClasses,
        events: claimContext ? this.index.eventsAbout(o.metadata.name) : undefined,
      };
      v = verdict(cur, related, this.req.policy, now);
      // Running but not Ready: say why as soon as the kubelet does (without counts, which change every probe period).
      const unready =
        v.state === 'progressing'
          ? unreadyCauses(
              pods,
              pods.flatMap((p) => this.index.eventsAbout(p.metadata.name)),
            )
          : [];
      this.causes.set(id(o), unready);
    }
    this.verdicts.set(id(o), v);
    return v;
  }

  /** A finished state shows at once; progress of one workload at most every few seconds, and not at all in a large release (the summary says it). */
  private show(o: KubeObject, v: RolloutVerdict, wallNow: number): void {
    const why = this.causes.get(id(o)) ?? [];
    const detail = why.length ? `${v.message}; ${why.map((c) => formatUnreadyCause(c, false)).join('; ')}` : v.message;
    const state = v.state === 'progressing' ? 'waiting' : v.state;
    const shown = this.lastShown.get(id(o));
    if (shown?.text === detail && shown.state === state) return;
    const progressOnly = state === 'waiting' && shown?.state === 'waiting';
    if (progressOnly && (this.many || wallNow - shown.at < PROGRESS_INTERVAL_MS)) return;
    this.lastShown.set(id(o), { text: detail, state, at: wallNow });
    if (state === 'waiting' && this.many && shown === undefined) return;
    this.req.reporter.status(id(o), state, detail);
  }

  /** `37/50 objects ready; pods 1312/1500 ready, 1500/1500 updated` from the live statuses. */
  summary(): string {
    const pods = { want: 0, ready: 0, updated: 0 };
    for (const o of this.index.tracked) {
      const cur = this.index.liveOf(o);
      const c = cur ? workloadCounts(cur) : undefined;
      if (!c) continue;
      pods.want += c.want;
      pods.ready += c.ready;
      pods.updated += c.updated;
    }
    const ready = this.index.tracked.filter((o) => this.verdicts.get(id(o))?.state === 'ready').length;
    return formatRolloutSummary({ ready, total: this.index.tracked.length }, pods);
  }

  /** Where every tracked object stands, for a terminal's table (Reporter.rollout); `outcome` once tracking ended. */
  progress(outcome?: Outcome): RolloutProgress {
    const objects = this.index.tracked.map((o): ObjectProgress => {
      const v = this.verdicts.get(id(o));
      const cur = this.index.liveOf(o);
      const counts = cur ? workloadCounts(cur) : undefined;
      const state = v?.state === 'ready' || v?.state === 'failed' ? v.state : 'waiting';
      const why = this.causes.get(id(o)) ?? [];
      // The detail its status line would carry: its progress, and why its pods are not ready.
      const cause = state === 'ready' ? undefined : [v?.message ?? 'not created yet', ...why.map((c) => formatUnreadyCause(c, false))].join('; ');
      return { object: id(o), state, ...(counts ? { pods: { ready: counts.ready, want: counts.want } } : {}), ...(cause ? { cause } : {}) };
    });
    return { objects, summary: this.summary(), ...(outcome ? { outcome } : {}) };
  }

  /** Objects not ready when tracking stopped, with their last state and why their pods are not ready. */
  notReady(): NotReady[] {
    return this.index.tracked
      .filter((o) => this.verdicts.get(id(o))?.state !== 'ready')
      .map((o): NotReady => {
        const why = this.causes.get(id(o)) ?? [];
        const message = this.verdicts.get(id(o))?.message ?? 'unknown';
        return why.length ? { object: id(o), message, cause: why.map((c) => formatUnreadyCause(c)).join('; ') } : { object: id(o), message };
      });
  }
}

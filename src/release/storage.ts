import { ExitCode, SkiffError, WorkFailedError } from '../errors.js';
import { KubeApiError } from '../kube/kube-client.js';
import { PART_LABEL, recordToSecrets, secretsToRecord } from './record-secrets.js';
import type { KubeObject } from '../kube/objects.js';
import type { ReleaseRecord } from './release-record.js';

/** A driver's create found one of the Secrets there already, holding something else: another run wrote it. */
export class RecordExistsError extends SkiffError {
  override readonly name = 'RecordExistsError';
  constructor(
    readonly secret: string,
    options?: { cause?: unknown },
  ) {
    super('deploy', ExitCode.failed, `Secret ${secret} already exists`, options);
  }
}

/**
 * Where release records live. Dumb on purpose (Helm's driver): no rules,
 * only create, replace, list and delete of record Secrets.
 */
export interface ReleaseDriver {
  /** Fails with RecordExistsError if any of the Secrets exists. Returns the Secrets as stored (with their resourceVersion) where it knows them. */
  create(secrets: KubeObject[]): Promise<KubeObject[] | void>;
  /**
   * Replaces the Secrets, creating those that do not exist. With
   * `resourceVersions`, only if unchanged: a Secret named there is replaced
   * only at that version, any other only created (a KubeApiError 409 or 404
   * when it changed, exists or is gone); a driver without versions ignores it.
   */
  update(secrets: KubeObject[], opts?: { resourceVersions?: ReadonlyMap<string, string> }): Promise<KubeObject[] | void>;
  /** Every chunk of every revision of the release (labels owner=skiff, name=<release>). */
  list(release: string): Promise<KubeObject[]>;
  /** Missing names are not an error. */
  delete(names: string[]): Promise<void>;
  /** This driver writing through a client fenced by a release lock (lock.ts fenceWrites): a write under way stops when `lost` aborts. */
  fenced?(lost: AbortSignal): ReleaseDriver;
}

/** Any driver refusing writes once `lost` aborts (checked before each call). */
function fenceDriver(driver: ReleaseDriver, lost: AbortSignal): ReleaseDriver {
  return {
    create: async (secrets) => (lost.throwIfAborted(), driver.create(secrets)),
    update: async (secrets, opts) => (lost.throwIfAborted(), driver.update(secrets, opts)),
    list: (release) => driver.list(release),
    delete: async (names) => (lost.throwIfAborted(), driver.delete(names)),
  };
}

/** A driver in memory: for tests, and for reading records already listed (cleanup). */
export class MemoryDriver implements ReleaseDriver {
  private readonly secrets = new Map<string, KubeObject>();

  async create(secrets: KubeObject[]): Promise<void> {
    const taken = secrets.find((s) => this.secrets.has(s.metadata.name));
    if (taken) throw new RecordExistsError(taken.metadata.name);
    for (const s of secrets) this.secrets.set(s.metadata.name, structuredClone(s));
  }

  async update(secrets: KubeObject[]): Promise<void> {
    for (const s of secrets) this.secrets.set(s.metadata.name, structuredClone(s));
  }

  async list(release: string): Promise<KubeObject[]> {
    return [...this.secrets.values()].filter((s) => s.metadata.labels?.owner === 'skiff' && s.metadata.labels.name === release).map((s) => structuredClone(s));
  }

  async delete(names: string[]): Promise<void> {
    for (const n of names) this.secrets.delete(n);
  }

  /** Every stored Secret, for assertions. */
  all(): KubeObject[] {
    return [...this.secrets.values()].map((s) => structuredClone(s));
  }
}

interface RevisionSecrets {
  revision: number;
  secrets: KubeObject[];
  /** Chunk 0 is written last and deleted first: without it a revision is not (or no longer) there. */
  complete: boolean;
}

function statusOf(r: RevisionSecrets): string | undefined {
  try {
    return secretsToRecord(r.secrets).status;
  } catch {
    return undefined;
  }
}

/** Chunk 0 last, so that a reader never finds chunk 0 without its parts. */
function writeOrder(secrets: KubeObject[]): KubeObject[] {
  return [...secrets.slice(1), ...secrets.slice(0, 1)];
}

/** What makes a record fit to store: secret material masked (secrets/redact.ts). */
export type SealRecord = (record: ReleaseRecord) => ReleaseRecord;

/**
 * The rules over a driver (Helm's Storage): history, last, last deployed,
 * superseding and max-history pruning. Every record passes through `seal`
 * before it is stored, whatever the caller passes.
 */
export class ReleaseStorage {
  /** The resourceVersion of each record Secret as this storage last wrote it: what closeAfterLostLock is conditional on. */
  private readonly written = new Map<string, string>();
  /** Set on a storage fenced by a release lock: the lost lock, and the unfenced driver for closeAfterLostLock. */
  private lock?: { lost: AbortSignal; closing: ReleaseDriver };

  constructor(
    private readonly driver: ReleaseDriver,
    readonly namespace: string,
    private readonly seal: SealRecord,
  ) {}

  /**
   * This storage for a run that holds the release lock: once `lost` aborts,
   * every write (update, superseding, pruning, deleteAll) is refused with the
   * lost lock's error, and a write under way stops. Only closeAfterLostLock
   * still writes.
   */
  fenced(lost: AbortSignal): ReleaseStorage {
    const storage = new ReleaseStorage(this.driver.fenced?.(lost) ?? fenceDriver(this.driver, lost), this.namespace, this.seal);
    storage.lock = { lost, closing: this.driver };
    return storage;
  }

  /** Whether the release lock this storage is fenced by has been lost. */
  get lockLost(): boolean {
    return this.lock?.lost.aborted === true;
  }

  /**
   * The one write left to a run that lost its lock: its own revision
   * rewritten (closed as failed), only if nobody wrote it since this storage
   * did (conditional on the resourceVersions it wrote, where the driver keeps
   * them); nothing superseded, pruned or deleted. False when the record
   * changed or went meanwhile (the run that took the lock over closes it).
   */
  async closeAfterLostLock(record: ReleaseRecord): Promise<boolean> {
    const secrets = recordToSecrets(this.seal(record), this.namespace);
    try {
      this.remember(await (this.lock?.closing ?? this.driver).update(writeOrder(secrets), { resourceVersions: new Map(this.written) }));
      return true;
    } catch (e) {
      if (e instanceof KubeApiError && (e.status === 409 || e.status === 404)) return false;
      throw e;
    }
  }

  private remember(stored: KubeObject[] | void): void {
    for (const s of stored ?? []) {
      const version = s.metadata.resourceVersion;
      if (typeof version === 'string' && version) this.written.set(s.metadata.name, version);
    }
  }

  private async revisions(release: string): Promise<RevisionSecrets[]> {
    const byRevision = new Map<number, RevisionSecrets>();
    for (const s of await this.driver.list(release)) {
      const labels = s.metadata.labels;
      if (labels?.owner !== 'skiff' || labels.name !== release) continue;
      const revision = Number(labels.version);
      if (!Number.isInteger(revision) || revision < 1) continue;
      let entry = byRevision.get(revision);
      if (!entry) byRevision.set(revision, (entry = { revision, secrets: [], complete: false }));
      entry.secrets.push(s);
      if (labels[PART_LABEL] === undefined) entry.complete = true;
    }
    return [...byRevision.values()].sort((a, b) => a.revision - b.revision);
  }

  /** Every stored revision, oldest first. A revision still being written (no chunk 0 yet) is left out. */
  async history(release: string): Promise<ReleaseRecord[]> {
    return (await this.revisions(release)).filter((r) => r.complete).map((r) => secretsToRecord(r.secrets));
  }

  async last(release: string): Promise<ReleaseRecord | undefined> {
    return (await this.history(release)).at(-1);
  }

  async lastDeployed(release: string): Promise<ReleaseRecord | undefined> {
    return (await this.history(release)).findLast((r) => r.status === 'deployed');
  }

  async get(release: string, revision: number): Promise<ReleaseRecord | undefined> {
    const found = (await this.revisions(release)).find((r) => r.revision === revision && r.complete);
    return found && secretsToRecord(found.secrets);
  }

  /** The revision number a new record gets: the last one + 1. */
  async nextRevision(release: string): Promise<number> {
    return ((await this.revisions(release)).at(-1)?.revision ?? 0) + 1;
  }

  /** Stores a new revision; fails if the revision exists (another run of the same release got there first). */
  async create(record: ReleaseRecord): Promise<void> {
    const secrets = recordToSecrets(this.seal(record), this.namespace);
    const existing = (await this.revisions(record.name)).find((r) => r.revision === record.revision);
    const raced = (cause?: unknown) =>
      new WorkFailedError(
        'deploy',
        `release ${record.name} revision ${record.revision} already exists: another deploy of this release ran at the same time; run it again`,
        { cause },
      );
    if (existing?.complete) throw raced();
    // Leftover parts of an interrupted write would make create fail; they hold nothing.
    if (existing) await this.driver.delete(existing.secrets.map((s) => s.metadata.name));
    try {
      this.remember(await this.driver.create(writeOrder(secrets)));
    } catch (e) {
      // Between the read above and the write, another run stored this revision.
      if (e instanceof RecordExistsError) throw raced(e);
      throw e;
    }
  }

  /** Rewrites a stored revision (status, description, finish time). */
  async update(record: ReleaseRecord): Promise<void> {
    const secrets = recordToSecrets(this.seal(record), this.namespace);
    const existing = (await this.revisions(record.name)).find((r) => r.revision === record.revision);
    this.remember(await this.driver.update(writeOrder(secrets)));
    const keep = new Set(secrets.map((s) => s.metadata.name));
    const surplus = (existing?.secrets ?? []).map((s) => s.metadata.name).filter((n) => !keep.has(n));
    if (surplus.length) await this.driver.delete(surplus);
  }

  /**
   * Marks every earlier 'deployed' revision 'superseded', so that only the
   * revision just deployed (exceptRevision) reads as deployed. Returns the
   * revisions changed.
   */
  async markSuperseded(release: string, exceptRevision: number): Promise<number[]> {
    const changed: number[] = [];
    for (const r of await this.history(release)) {
      if (r.status !== 'deployed' || r.revision >= exceptRevision) continue;
      await this.update({ ...r, status: 'superseded' });
      changed.push(r.revision);
    }
    return changed;
  }

  /**
   * Keeps the newest `max` revisions and the last deployed one, whatever its
   * age (rollback and prune need it); deletes the rest, and leftovers of
   * interrupted writes older than what is kept. max ≤ 0 keeps everything.
   * Returns the revisions deleted.
   */
  async pruneHistory(release: string, max: number): Promise<number[]> {
    if (!(max > 0)) return [];
    const all = await this.revisions(release);
    const complete = all.filter((r) => r.complete);
    const keep = new Set(complete.slice(-max).map((r) => r.revision));
    // An unreadable old revision is pruned like any other instead of blocking pruning for good.
    const deployed = complete.findLast((r) => statusOf(r) === 'deployed');
    if (deployed) keep.add(deployed.revision);
    const oldestKept = keep.size ? Math.min(...keep) : 0;
    const doomed = all.filter((r) => !keep.has(r.revision) && (r.complete || r.revision < oldestKept));
    // Chunk 0 first: a revision without it is already gone for every reader.
    const names = doomed.flatMap((r) =>
      [...r.secrets].sort((a, b) => Number(a.metadata.labels?.[PART_LABEL] ?? 0) - Number(b.metadata.labels?.[PART_LABEL] ?? 0)).map((s) => s.metadata.name),
    );
    if (names.length) await this.driver.delete(names);
    return doomed.filter((r) => r.complete).map((r) => r.revision);
  }

  /** Deletes every record of the release (skiff dismiss --with-history). */
  async deleteAll(release: string): Promise<void> {
    const names = (await this.revisions(release)).flatMap((r) => r.secrets.map((s) => s.metadata.name));
    if (names.length) await this.driver.delete(names);
  }
}

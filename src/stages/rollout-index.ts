import type { OwnedChildren } from '../kinds/kind-row.js';
import { ownedCurrentPods } from '../kinds/readiness.js';
import { kindRow, isStale } from '../kinds/table.js';
import { controllerUid, objectUid } from '../kinds/object-fields.js';
import { involvedName, slimEvent } from '../kinds/event.js';
import { slimPod } from '../kinds/pod.js';
import { slimReplicaSet } from '../kinds/deployment.js';
import type { WatchEvent } from '../kube/kube-client.js';
import type { KubeObject, LiveObject as Obj } from '../kube/objects.js';

type ByOwner = Map<string, Map<string, Obj>>;

/**
 * What the watches have told about a release's tracked objects: each one as
 * it is live, the pods and ReplicaSets under it (slimmed, by their
 * controller's UID), the recent events about each name, and which tracked
 * objects changed since they were last judged. Watch events only update it;
 * the loop (rollout-loop.ts) reads it.
 */
export class RolloutIndex implements OwnedChildren {
  private readonly byKey: Map<string, KubeObject>;
  private readonly live = new Map<string, Obj>();
  private readonly uidToTracked = new Map<string, string>();
  private readonly podsByOwner: ByOwner = new Map();
  private readonly replicaSetsByOwner: ByOwner = new Map();
  private readonly replicaSetOwner = new Map<string, string>();
  private readonly events = new Map<string, Obj[]>();
  private readonly dirty = new Set<string>();
  private allDirty = true;

  constructor(
    readonly tracked: readonly KubeObject[],
    private readonly defaultNamespace: string,
  ) {
    this.byKey = new Map(tracked.map((o) => [this.keyOf(o), o]));
  }

  private keyOf(o: KubeObject): string {
    return `${o.kind}/${o.metadata.namespace ?? this.defaultNamespace}/${o.metadata.name}`;
  }

  /** A tracked kind's event; a watch by label may also see objects of the release that are not tracked. */
  onTracked(kind: string, ev: WatchEvent): void {
    const o = ev.object;
    const key = `${kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
    if (!this.byKey.has(key)) return;
    if (ev.type === 'DELETED') this.live.delete(key);
    else this.live.set(key, o);
    const uid = objectUid(o);
    if (uid) this.uidToTracked.set(uid, key);
    this.dirty.add(key);
  }

  onPod(ev: WatchEvent): void {
    this.markOwner(this.indexChild(this.podsByOwner, ev, slimPod(ev.object)));
  }

  onReplicaSet(ev: WatchEvent): void {
    const rs = slimReplicaSet(ev.object);
    const owner = this.indexChild(this.replicaSetsByOwner, ev, rs);
    const uid = objectUid(rs);
    if (owner && uid) {
      if (ev.type === 'DELETED') this.replicaSetOwner.delete(uid);
      else this.replicaSetOwner.set(uid, owner);
    }
    this.markOwner(owner);
  }

  /** Keeps the last 20 events about each name; any of them may change why something is not ready. */
  onEvent(ev: WatchEvent): void {
    const involved = involvedName(ev.object);
    if (!involved || ev.type === 'DELETED') return;
    this.events.set(involved, [...(this.events.get(involved) ?? []).slice(-19), slimEvent(ev.object)]);
    this.allDirty = true;
  }

  /** Everything is judged again: a watch listed its state, or time passed (grace periods). */
  markAll(): void {
    this.allDirty = true;
  }

  /** The tracked objects that changed since the last call. */
  takeChanged(): KubeObject[] {
    const keys = this.allDirty ? [...this.byKey.keys()] : [...this.dirty];
    this.allDirty = false;
    this.dirty.clear();
    return keys.flatMap((key) => this.byKey.get(key) ?? []);
  }

  liveOf(o: KubeObject): Obj | undefined {
    return this.live.get(this.keyOf(o));
  }

  eventsAbout(name: string): Obj[] {
    return this.events.get(name) ?? [];
  }

  pods(ownerUid: string): Obj[] {
    return [...(this.podsByOwner.get(ownerUid)?.values() ?? [])];
  }

  replicaSets(ownerUid: string): Obj[] {
    return [...(this.replicaSetsByOwner.get(ownerUid)?.values() ?? [])];
  }

  /** The pods of a tracked object's current revision; none while its status describes an earlier spec. */
  podsOf(cur: Obj): Obj[] {
    return isStale(cur) ? [] : ownedCurrentPods(cur, this);
  }

  /** How many of a tracked object's pods are of older revisions; undefined when not known or not such a kind. */
  oldPodsOf(cur: Obj, current: Obj[]): number | undefined {
    const uid = objectUid(cur);
    const count = kindRow(cur.kind)?.rollout?.oldPods;
    if (!count || !uid || isStale(cur)) return undefined;
    return count(cur, uid, current, this);
  }

  private indexChild(into: ByOwner, ev: WatchEvent, obj: Obj): string | undefined {
    const owner = controllerUid(obj);
    if (!owner) return undefined;
    let m = into.get(owner);
    if (!m) into.set(owner, (m = new Map<string, Obj>()));
    if (ev.type === 'DELETED') {
      m.delete(obj.metadata.name);
      if (m.size === 0) into.delete(owner);
    } else m.set(obj.metadata.name, obj);
    return owner;
  }

  private markOwner(ownerUid: string | undefined): void {
    if (!ownerUid) return;
    const direct = this.uidToTracked.get(ownerUid);
    if (direct) this.dirty.add(direct);
    const viaReplicaSet = this.replicaSetOwner.get(ownerUid);
    const owner = viaReplicaSet && this.uidToTracked.get(viaReplicaSet);
    if (owner) this.dirty.add(owner);
  }
}

import { posix } from 'node:path';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ConfigError, WorkFailedError } from '../errors.js';
import type { RunContext } from '../context.js';
import { defaultPolicy, currentPods, verdict, isTracked, type RolloutVerdict } from '../core/readiness.js';
import { mapLimit } from '../core/concurrency.js';
import { unifiedDiff } from '../core/diff.js';
import { maskPaths, maskSecretStrings, redactError, secretStrings, type SecretStrings } from '../core/secret-material.js';
import { loadProject, type ProjectOptions } from '../project.js';
import { applyPhases, hookOf } from '../render/order.js';
import type { KubeObject, Manifest, ReleaseRecord } from '../release/types.js';
import { planImages } from '../stages/image-plan.js';
import { connect, withReleaseLock, type KubeFlags } from '../stages/kube-session.js';
import { renderForTarget, resolveImageRefs, resolveTarget, type ReleaseTarget, type RenderedRelease, type RenderFlags } from '../stages/release-inputs.js';
import type { ReleaseOutcome } from '../stages/release-run.js';
import { rollbackTo } from './deploy.js';

export interface TargetOptions extends ProjectOptions, KubeFlags {
  env: string;
  namespace?: string;
  kubeContext?: string;
}

/** skiff render: the objects a deploy would apply, without touching a cluster. */
export async function runRender(ctx: RunContext, opts: ProjectOptions & RenderFlags & { env: string; namespace?: string; outputDir?: string; imageRefs?: Record<string, string>; showSecrets?: boolean }) {
  const project = await loadProject(ctx, opts);
  const target = resolveTarget(project, opts.env, opts);
  const images = opts.imageRefs ?? (await resolveImageRefs(ctx, project, await planImages(project)));
  const rendered = await renderForTarget(ctx, project, target, images, opts);
  if (!opts.showSecrets) rendered.manifests = rendered.manifests.map((m) => ({ ...m, object: maskSecretObject(maskSecretStrings(m.object, rendered.secrets).object) }));
  if (opts.outputDir) {
    const dir = join(ctx.cwd, opts.outputDir);
    await mkdir(dir, { recursive: true });
    // Written a few at a time: a thousand sequential writes would be most of the run.
    await mapLimit(rendered.manifests, 16, (m) => writeFile(join(dir, `${m.object.kind.toLowerCase()}-${m.object.metadata.name}.yaml`), stringify(m.object)));
  }
  return { release: target.release, namespace: target.namespace, manifests: rendered.manifests, images };
}

export function manifestsToYaml(manifests: Manifest[]): string {
  return manifests.map((m) => `# Source: ${m.source.file}\n${stringify(m.object)}`).join('---\n');
}

/** skiff history: the stored revisions, newest last. */
export async function runHistory(ctx: RunContext, opts: TargetOptions): Promise<ReleaseRecord[]> {
  const project = await loadProject(ctx, { ...opts, readOnly: true });
  const target = resolveTarget(project, opts.env, opts);
  const { storage } = await connect(target, opts);
  return storage.history(target.release);
}

export function formatHistory(records: ReleaseRecord[]): string {
  const rows = [['REVISION', 'UPDATED', 'STATUS', 'COMMIT', 'IMAGES', 'DESCRIPTION']];
  for (const r of records) {
    const images = Object.entries(r.images).sort(([a], [b]) => a.localeCompare(b)).map(([n, ref]) => `${n}:${(ref.split(':').pop() ?? '').slice(0, 12)}`).join(',');
    rows.push([String(r.revision), (r.finishedAt ?? r.startedAt).replace('T', ' ').replace(/\.\d+Z$/, 'Z'), r.status, r.git.commit.slice(0, 8), images, r.description]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((row) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

/** skiff rollback: re-apply revision N (default: the deployed one before the current) as a new revision. */
export async function runRollback(ctx: RunContext, opts: TargetOptions & { to?: number; timeoutMs?: number; forceConflicts?: boolean }): Promise<ReleaseOutcome> {
  const project = await loadProject(ctx, { ...opts, readOnly: true });
  const target = resolveTarget(project, opts.env, opts);
  const { kube, storage } = await connect(target, opts);
  return withReleaseLock(ctx, kube, target, 'rollback', opts, async () => {
    const history = await storage.history(target.release);
    if (history.length === 0) throw new ConfigError(`release ${target.release} has no history in namespace ${target.namespace}; nothing to roll back`);
    let record: ReleaseRecord | undefined;
    if (opts.to !== undefined) {
      record = history.find((r) => r.revision === opts.to);
      if (!record) throw new ConfigError(`release ${target.release} has no revision ${opts.to} (revisions: ${history.map((r) => r.revision).join(', ')})`);
    } else {
      const current = [...history].reverse().find((r) => r.status === 'deployed');
      record = [...history].reverse().find((r) => (r.status === 'superseded' || r.status === 'deployed') && r.revision < (current?.revision ?? Infinity));
      if (!record) throw new ConfigError(`release ${target.release} has no earlier deployed revision to roll back to; use --to N`);
    }
    return rollbackTo(ctx, kube, storage, target, record, {
      project: project.config.project,
      timeoutMs: opts.timeoutMs ?? project.config.deploy.timeoutMs,
      forceConflicts: Boolean(opts.forceConflicts),
      policy: defaultPolicy,
      historyMax: project.config.deploy.historyMax,
    });
  });
}

export interface ObjectStatus {
  object: string;
  state: RolloutVerdict['state'] | 'missing';
  message: string;
}

/** skiff status: the current revision and the live readiness of its objects. */
export async function runStatus(ctx: RunContext, opts: TargetOptions) {
  const project = await loadProject(ctx, { ...opts, readOnly: true });
  const target = resolveTarget(project, opts.env, opts);
  const { kube, storage } = await connect(target, opts);
  const history = await storage.history(target.release);
  const current = [...history].reverse().find((r) => r.status === 'deployed') ?? history.at(-1);
  if (!current) return { release: target.release, namespace: target.namespace, revision: undefined, status: 'not deployed', objects: [] as ObjectStatus[] };
  const namespaces = [...new Set(current.manifests.map((m) => m.metadata.namespace).filter(Boolean))] as string[];
  const pods = (await Promise.all(namespaces.map((ns) => kube.list('v1', 'Pod', ns)))).flatMap((l) => l.items);
  const replicaSets = (await Promise.all(namespaces.map((ns) => kube.list('apps/v1', 'ReplicaSet', ns)))).flatMap((l) => l.items);
  const objects: ObjectStatus[] = await Promise.all(current.manifests.map(async (m) => {
    const live = await kube.get(m.apiVersion, m.kind, m.metadata.namespace, m.metadata.name).catch(() => undefined);
    const name = `${m.kind}/${m.metadata.name}`;
    if (!live) return { object: name, state: 'missing' as const, message: 'not in the cluster' };
    if (!isTracked(m.kind)) return { object: name, state: 'ready' as const, message: 'exists' };
    const v = verdict(live, { pods: currentPods(live, pods.filter((p) => p.metadata.namespace === live.metadata.namespace), replicaSets) }, defaultPolicy, ctx.now());
    return { object: name, state: v.state, message: v.message };
  }));
  return { release: target.release, namespace: target.namespace, revision: current.revision, status: current.status, commit: current.git.commit, description: current.description, objects };
}

/** A Secret with every value replaced, for printing. */
export function maskSecretObject(obj: KubeObject): KubeObject {
  if (obj.kind !== 'Secret') return obj;
  const copy = JSON.parse(JSON.stringify(obj)) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  for (const field of ['data', 'stringData']) {
    for (const key of Object.keys(copy[field] ?? {})) copy[field][key] = '(masked; --show-secrets to print)';
  }
  return copy as KubeObject;
}

const VOLATILE_METADATA = ['managedFields', 'resourceVersion', 'uid', 'generation', 'creationTimestamp', 'selfLink'];

/**
 * An object as YAML for a diff, without secret material: known secret strings
 * masked inline, and fields at `wholePaths` (where the rendered object has a
 * secret) masked whole when they hold one skiff does not know, say an old password.
 */
function comparable(obj: KubeObject | undefined, secrets: SecretStrings, wholePaths: ReadonlySet<string> = new Set()): string {
  if (!obj) return '';
  const copy = JSON.parse(JSON.stringify(maskPaths(maskSecretStrings(obj, secrets).object, wholePaths))) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  delete copy.status;
  for (const k of VOLATILE_METADATA) delete copy.metadata[k];
  if (copy.metadata.annotations) delete copy.metadata.annotations['deployment.kubernetes.io/revision'];
  if (copy.metadata.annotations && Object.keys(copy.metadata.annotations).length === 0) delete copy.metadata.annotations;
  if (copy.kind === 'Secret') {
    for (const field of ['data', 'stringData']) {
      for (const key of Object.keys(copy[field] ?? {})) copy[field][key] = '(masked)';
    }
  }
  return stringify(copy);
}

/** skiff diff: a server-side dry run of the rendered set compared with the live objects. */
export async function runDiff(ctx: RunContext, opts: TargetOptions & RenderFlags) {
  const project = await loadProject(ctx, opts);
  const target = resolveTarget(project, opts.env, opts);
  const images = await resolveImageRefs(ctx, project, await planImages(project));
  const rendered = await renderForTarget(ctx, project, target, images, opts);
  // A dry run's rejection can quote a field's value: keep secrets out of the error.
  return diffRendered(target, rendered, opts).catch((e: unknown) => {
    throw redactError(e, rendered.secrets);
  });
}

async function diffRendered(target: ReleaseTarget, rendered: RenderedRelease, opts: TargetOptions) {
  const { kube, storage } = await connect(target, opts);
  const nsExists = Boolean(await kube.get('v1', 'Namespace', undefined, target.namespace));
  const compared: Array<{ o: KubeObject; live?: KubeObject; after: KubeObject }> = [];
  for (const m of applyPhases(rendered.manifests).flat()) {
    const o = m.object;
    if (hookOf(o)) continue; // hooks are recreated on every deploy, not diffed
    const live = nsExists ? await kube.get(o.apiVersion, o.kind, o.metadata.namespace, o.metadata.name) : undefined;
    const after = nsExists ? await kube.apply(o, { dryRun: true, force: true }) : o;
    compared.push({ o, live, after });
  }
  const current = nsExists ? await storage.lastDeployed(target.release) : undefined;
  const keys = new Set(rendered.manifests.map((m) => `${m.object.kind}/${m.object.metadata.namespace}/${m.object.metadata.name}`));
  const doomed: KubeObject[] = [];
  for (const o of current?.manifests ?? []) {
    if (keys.has(`${o.kind}/${o.metadata.namespace}/${o.metadata.name}`) || o.metadata.annotations?.['skiff.io/keep'] === 'true' || o.metadata.annotations?.['skiff.io/hook']) continue;
    const live = await kube.get(o.apiVersion, o.kind, o.metadata.namespace, o.metadata.name);
    if (live) doomed.push(live);
  }
  // The live Secrets' values are secrets too: the old ones still in live objects are masked as well.
  const liveSecrets = [...compared.map((c) => c.live), ...doomed].filter((o): o is KubeObject => o?.kind === 'Secret');
  const secrets = new Map([...rendered.secrets, ...secretStrings({}, liveSecrets)]);
  const diffs: Array<{ object: string; change: 'create' | 'update' | 'delete'; diff: string }> = [];
  for (const { o, live, after } of compared) {
    const secretPaths = new Set(maskSecretStrings(after, secrets).hits.map((h) => h.path));
    const before = comparable(live, secrets, secretPaths);
    const next = comparable(after, secrets);
    if (before !== next) diffs.push({ object: `${o.kind}/${o.metadata.name}`, change: live ? 'update' : 'create', diff: unifiedDiff(before, next, `live ${o.kind}/${o.metadata.name}`, `rendered ${o.kind}/${o.metadata.name}`) });
  }
  for (const live of doomed) diffs.push({ object: `${live.kind}/${live.metadata.name}`, change: 'delete', diff: unifiedDiff(comparable(live, secrets), '', `live ${live.kind}/${live.metadata.name}`, '(pruned)') });
  return { release: target.release, namespace: target.namespace, changes: diffs };
}

/** skiff dismiss: delete the release's objects and, with --with-history, its records. */
export async function runDismiss(ctx: RunContext, opts: TargetOptions & { withHistory?: boolean }) {
  const project = await loadProject(ctx, { ...opts, readOnly: true });
  const target = resolveTarget(project, opts.env, opts);
  const { kube, storage } = await connect(target, opts);
  if (!(await kube.get('v1', 'Namespace', undefined, target.namespace))) throw new ConfigError(`namespace ${target.namespace} does not exist; release ${target.release} is not deployed`);
  return withReleaseLock(ctx, kube, target, 'dismiss', opts, async () => {
    const history = await storage.history(target.release);
    if (history.length === 0) throw new ConfigError(`release ${target.release} has no history in namespace ${target.namespace}; nothing to dismiss`);
    const seen = new Set<string>();
    const deleted: string[] = [];
    const objects = history.slice().reverse().flatMap((r) => r.manifests);
    for (const phase of applyPhases(objects.map((o) => ({ object: o, source: { file: '', line: 0 } }))).reverse()) {
      for (const { object: o } of phase) {
        const key = `${o.apiVersion}/${o.kind}/${o.metadata.namespace}/${o.metadata.name}`;
        if (seen.has(key) || o.kind === 'Namespace') continue;
        seen.add(key);
        const live = await kube.get(o.apiVersion, o.kind, o.metadata.namespace, o.metadata.name).catch(() => undefined);
        if (!live || live.metadata.labels?.['app.kubernetes.io/managed-by'] !== 'skiff' || live.metadata.annotations?.['skiff.io/keep'] === 'true') continue;
        await kube.delete(o.apiVersion, o.kind, o.metadata.namespace, o.metadata.name);
        ctx.reporter.status(`${o.kind}/${o.metadata.name}`, 'deleted');
        deleted.push(`${o.kind}/${o.metadata.name}`);
      }
    }
    if (opts.withHistory) await storage.deleteAll(target.release);
    else {
      const last = history.at(-1)!;
      await storage.update({ ...last, status: 'uninstalled', description: 'dismissed', finishedAt: ctx.now().toISOString() });
    }
    return { release: target.release, namespace: target.namespace, deleted, historyDeleted: Boolean(opts.withHistory) };
  });
}

export function assertNoFailure(outcome: ReleaseOutcome) {
  if (outcome.status !== 'deployed') throw new WorkFailedError('deploy', outcome.description, { detail: outcome });
}

export const _internal = { posix };

import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import type { RunContext } from '../context.js';
import { ConfigError } from '../errors.js';
import { NOT_IN_HISTORY, reportFromRecord } from '../report/build-report.js';
import { historyReportPath, liveTree, reportSubject, revisionReportPath, writeReportFile, checkReportPaths } from '../report/release-report.js';
import { renderHistoryHtml, type HistoryRow } from '../report/render-html.js';
import { renderReportHtml } from '../report/render-html.js';
import { openRelease } from '../stages/kube-session.js';
import type { TargetOptions } from '../stages/release-inputs.js';

export interface ReportOptions extends TargetOptions {
  /** The revision to report on (default: the latest). */
  revision?: number;
}

export interface ReportResult {
  file: string;
  revision: number;
  /** True when the run's own report was at hand and kept instead of one made from the history. */
  kept: boolean;
}

/**
 * skiff report: a revision's report from the release history in the cluster,
 * at .skiff/report/<env>/<N>.html. The report its run wrote there, which
 * knows more (timeline, failed pods' logs), is kept when it is at hand.
 */
export async function runReport(ctx: RunContext, opts: ReportOptions): Promise<ReportResult> {
  const { project, target, kube, storage } = await openRelease(ctx, opts);
  await checkReportPaths(project.root, target);
  const history = await storage.history(target.release);
  if (history.length === 0) throw new ConfigError(`release ${target.release} has no history in namespace ${target.namespace}; deploy it first`);
  const record = opts.revision === undefined ? history.at(-1)! : history.find((r) => r.revision === opts.revision);
  if (!record)
    throw new ConfigError(
      `release ${target.release} has no revision ${opts.revision} (revisions: ${history.map((r) => r.revision).join(', ')}); name one with --revision`,
    );
  const file = revisionReportPath(target, record.revision);
  if (await isFile(join(project.root, file))) return { file, revision: record.revision, kept: true };
  const report = reportFromRecord(reportSubject(ctx, target, project.config.project, 'history'), history, record);
  report.unknown.push(...NOT_IN_HISTORY);
  // The cluster holds the objects as they are now: that is the latest revision's state only.
  const latest = record.revision === history.at(-1)?.revision;
  if (latest) {
    const live = await liveTree(kube, target.namespace, record.manifests, ctx.now());
    if (live.tree) report.tree = live.tree;
    report.unknown.push(live.tree ? 'object health: as live now, not as at the end of the run' : `object tree: ${live.unknown ?? 'not known'}`);
  } else {
    report.unknown.push('object health: the cluster holds the objects as they are now, not as at this revision');
  }
  await writeReportFile(project.root, file, renderReportHtml(report));
  return { file, revision: record.revision, kept: false };
}

/** skiff history --html: the revisions over time, each linking its report when one is at hand, at .skiff/report/<env>/history.html. */
export async function runHistoryHtml(ctx: RunContext, opts: TargetOptions): Promise<{ file: string; revisions: number }> {
  const { project, target, storage } = await openRelease(ctx, opts);
  await checkReportPaths(project.root, target);
  const history = await storage.history(target.release);
  const rows: HistoryRow[] = [];
  for (const r of history) {
    const report = revisionReportPath(target, r.revision);
    const started = Date.parse(r.startedAt);
    const finished = r.finishedAt ? Date.parse(r.finishedAt) : NaN;
    rows.push({
      revision: r.revision,
      status: r.status,
      description: r.description,
      commit: r.git.commit,
      startedAt: r.startedAt,
      ...(Number.isFinite(started) && Number.isFinite(finished) ? { durationMs: finished - started } : {}),
      ...(r.rollbackOf === undefined ? {} : { rollbackOf: r.rollbackOf }),
      ...((await isFile(join(project.root, report))) ? { report } : {}),
    });
  }
  const file = historyReportPath(target);
  const html = renderHistoryHtml({ release: target.release, environment: target.env, namespace: target.namespace, generatedAt: ctx.now().toISOString(), rows });
  await writeReportFile(project.root, file, html);
  return { file, revisions: rows.length };
}

async function isFile(path: string): Promise<boolean> {
  const st = await lstat(path).catch(() => undefined);
  return Boolean(st?.isFile());
}

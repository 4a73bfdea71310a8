import type { DeployResult } from '../actions/deploy.js';
import type { StatusResult } from '../actions/status.js';
import { describeCluster } from '../kube/cluster-ref.js';
import type { BuildResult } from '../build/build-images.js';
import type { SignedImageResult } from '../signing/signing-run.js';
import type { TestCaseResult } from '../stages/run-tests.js';
import type { Diagnosis } from '../stages/track.js';
import { formatProblemGroup } from '../kinds/problem-groups.js';
import { formatDuration } from '../core/duration.js';
import { parseImageRef } from '../registry/image-ref.js';
import type { ReleaseRecord } from '../release/release-record.js';
import { formatFinding, type LintFinding } from '../lint/finding.js';
import type { LintResult } from '../actions/lint.js';

/**
 * Everything skiff prints, as text: progress lines, tables, reports. Pure
 * functions of the actions' results; src/cli writes what they return.
 */

/** A progress line: `subject: state (detail)`. The detail never repeats the state. */
export function statusLine(subject: string, state: string, detail?: string): string {
  return `${subject}: ${state}${detail ? ` (${detail})` : ''}`;
}

/** Columns padded to the widest cell; the last column is left ragged. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length)));
  return rows.map((row) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

export function formatBuildResult(result: BuildResult, why: boolean): string[] {
  return result.images.map((img) => {
    const what = img.built ? (img.pushed ? 'built and pushed' : 'built') : img.pushed ? 'pushed' : 'unchanged';
    const ref = `${img.reference}${img.digest && img.pushed ? `@${img.digest}` : ''}`;
    const changes = why && img.changes ? ` — ${img.changes.length ? img.changes.join('; ') : 'no input changed'}` : '';
    const signed = 'signature' in img ? (img as SignedImageResult).signature : undefined;
    const signature = signed ? `, ${signed.new ? 'signed' : 'already signed'} (${signed.tag.slice(signed.tag.lastIndexOf(':') + 1)})` : '';
    return `${img.image}: ${what} ${ref}${signature}${changes}`;
  });
}

export function formatTestTable(results: TestCaseResult[]): string {
  const result = (r: TestCaseResult) =>
    r.cached ? 'passed before' : r.passed ? 'passed' : r.interrupted ? 'interrupted' : r.timedOut ? 'timed out' : 'FAILED';
  return table([
    ['TEST', 'IMAGE', 'EXIT', 'DURATION', 'RESULT'],
    ...results.map((r) => [r.test, r.image, r.timedOut ? '-' : String(r.exitCode), r.cached ? '-' : formatDuration(r.durationMs), result(r)]),
  ]);
}

/** The first 12 hex digits of an image reference's digest (or of its tag), as `docker images` shows IDs. */
function shortId(ref: string): string {
  const { digest, tag } = parseImageRef(ref);
  return (digest?.slice('sha256:'.length) ?? tag ?? '').slice(0, 12);
}

export function formatHistory(records: ReleaseRecord[]): string {
  // A release with charts shows each one's version: what a chart bump changed.
  const withCharts = records.some((r) => r.charts?.length);
  const rows = [['REVISION', 'UPDATED', 'STATUS', 'COMMIT', 'IMAGES', ...(withCharts ? ['CHARTS'] : []), 'DESCRIPTION']];
  for (const r of records) {
    const charts = (r.charts ?? []).map((c) => `${c.name}:${c.version}`).join(',');
    const images = Object.entries(r.images)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([n, ref]) => `${n}:${shortId(ref)}`)
      .join(',');
    rows.push([
      String(r.revision),
      (r.finishedAt ?? r.startedAt).replace('T', ' ').replace(/\.\d+Z$/, 'Z'),
      r.status,
      r.git.commit.slice(0, 8),
      images,
      ...(withCharts ? [charts || '-'] : []),
      r.description,
    ]);
  }
  return table(rows);
}

export function formatStatus(s: StatusResult): string {
  const where = s.cluster ? ` on ${describeCluster(s.cluster)}` : '';
  const head = `release ${s.release} in ${s.namespace}${where}: ${s.revision ? `revision ${s.revision} ${s.status}` : s.status}`;
  return [head, ...s.objects.map((o) => `  ${o.object.padEnd(40)} ${o.state.padEnd(12)} ${o.message}`)].join('\n');
}

/** Causes of failing pods a diagnosis prints, at most. */
const MAX_GROUPS = 5;

/** A failed rollout's report: what failed and why, the last events and log lines. */
export function formatDiagnosis(d: Diagnosis): string {
  const where = `${d.object}${d.pod ? ` pod ${d.pod}` : ''}${d.container ? ` container ${d.container}` : ''}`;
  const lines = [`${where}: ${d.reason}${d.exitCode !== undefined ? ` (exit code ${d.exitCode})` : ''}${d.restarts ? `, ${d.restarts} restarts` : ''}`];
  if (d.message) lines.push(`  message: ${d.message}`);
  if (d.events.length) lines.push('  last events:', ...d.events.map((e) => `    ${e}`));
  if (d.logs.length) lines.push(`  last log lines of ${d.container}:`, ...d.logs.map((l) => `    | ${l}`));
  if (d.groups?.length) {
    const pods = d.groups.reduce((n, g) => n + g.count, 0);
    lines.push(`  failing in the release: ${pods} pod${pods === 1 ? '' : 's'}, by cause:`);
    for (const g of d.groups.slice(0, MAX_GROUPS)) lines.push(`    ${formatProblemGroup(g)}`);
    if (d.groups.length > MAX_GROUPS) lines.push(`    … and ${d.groups.length - MAX_GROUPS} more causes (skiff deploy -o json lists them all)`);
  }
  return lines.join('\n');
}

/** The closing lines of a deploy: the verdict, and for a failure the reports and the rollback. */
export function formatDeploySummary(result: DeployResult): string[] {
  if (result.status === 'deployed') {
    return [
      `release ${result.release} revision ${result.revision} deployed${result.url ? ` at ${result.url}` : ''} in ${(result.durationMs / 1000).toFixed(1)}s${result.pruned.length ? `; pruned ${result.pruned.join(', ')}` : ''}`,
    ];
  }
  const lines = result.failures.map((f) => `\n${formatDiagnosis(f)}\n`);
  for (const n of result.notReady) if (n.cause) lines.push(`${n.object}: not ready: ${n.cause}`);
  if (result.rolledBack) lines.push(`rolled back: revision ${result.rolledBack.revision} (${result.rolledBack.description})`);
  return lines;
}

/** A lint finding's line: pure and shared with deploy, whose error message quotes the first one. */
export { formatFinding };

/** skiff lint's report: one line per finding, then the count. */
export function formatLint(r: LintResult): string[] {
  const label = (f: LintFinding) => `${f.severity === 'error' ? 'error' : 'warning'}: ${formatFinding(f)}`;
  const counts = `${r.errors} error${r.errors === 1 ? '' : 's'}, ${r.warnings} warning${r.warnings === 1 ? '' : 's'}`;
  return [...r.findings.map(label), `${r.release} in ${r.namespace}: ${counts}${r.cluster ? '' : ' (rendered objects only: the cluster was not read)'}`];
}

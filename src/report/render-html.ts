import type { FailedPod, Health, ReleaseReport, TimelineRow, TreeNode } from './report-model.js';

/**
 * The release report as one self-contained HTML page: inline CSS, the
 * timeline drawn with CSS, no script and no URL but the CI links the report
 * carries. Every string from the cluster, the repository or Git goes through
 * `esc`, so a hostile commit message, object name or log line is text, never
 * markup; links are only ever http(s).
 */
export function renderReportHtml(r: ReleaseReport): string {
  const title = `${r.release} · ${r.environment}${r.revision === undefined ? '' : ` · revision ${r.revision}`} · ${r.result}`;
  return page(
    title,
    [
      header(r),
      unknownNote(r.unknown),
      timeline(r),
      failures(r),
      tree(r.tree),
      changes(r),
      warnings(r.warnings),
      tests(r.tests),
      images(r.images),
      `<footer>made by skiff at ${esc(r.generatedAt)}</footer>`,
    ].join('\n'),
  );
}

/** One row of `skiff history --html`. `report`: the report file's name beside the page, when it is at hand. */
export interface HistoryRow {
  revision: number;
  status: string;
  description: string;
  commit?: string;
  startedAt?: string;
  durationMs?: number;
  rollbackOf?: number;
  report?: string;
}

/** The revisions of a release over time, newest first, each linking its report when one is at hand. */
export function renderHistoryHtml(h: { release: string; environment: string; namespace: string; generatedAt: string; rows: HistoryRow[] }): string {
  const rows = [...h.rows]
    .sort((a, b) => b.revision - a.revision)
    .map(
      (row) =>
        `<tr class="st-${cls(row.status)}"><td>${row.report ? `<a href="${esc(relativeLink(row.report))}">${row.revision}</a>` : row.revision}</td>` +
        `<td><span class="badge ${cls(row.status)}">${esc(row.status)}</span></td><td>${esc(row.description)}${row.rollbackOf ? ` <span class="muted">(rollback to ${row.rollbackOf})</span>` : ''}</td>` +
        `<td><code>${esc(row.commit?.slice(0, 12) ?? '')}</code></td><td>${esc(row.startedAt ?? '')}</td><td>${row.durationMs === undefined ? '' : esc(seconds(row.durationMs))}</td>` +
        `<td>${row.report ? `<a href="${esc(relativeLink(row.report))}">report</a>` : '<span class="muted">no report at hand</span>'}</td></tr>`,
    )
    .join('\n');
  const body =
    `<header><h1>${esc(h.release)} <span class="muted">history</span></h1><dl class="facts">${fact('environment', h.environment)}${fact('namespace', h.namespace)}${fact('revisions', String(h.rows.length))}</dl></header>\n` +
    `<section><table class="grid"><thead><tr><th>revision</th><th>status</th><th>description</th><th>commit</th><th>started</th><th>duration</th><th>report</th></tr></thead><tbody>\n${rows}\n</tbody></table></section>\n` +
    `<footer>made by skiff at ${esc(h.generatedAt)}</footer>`;
  return page(`${h.release} · ${h.environment} · history`, body);
}

/** HTML-escapes text for element content and quoted attribute values. */
export function esc(s: string): string {
  return s.replace(/[&<>"'`]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The URL when it is an absolute http(s) URL, else undefined: a CI variable may hold anything, a javascript: URL included. */
export function safeHttpUrl(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    const u = new URL(url);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : undefined;
  } catch {
    return undefined;
  }
}

/** A report file beside the history page: its base name only, so the link never leaves the folder. */
function relativeLink(file: string): string {
  const base = file.split(/[\\/]/).pop() ?? '';
  return `./${encodeURIComponent(base)}`;
}

/** A CSS class from a state: letters only. */
const cls = (s: string) => s.toLowerCase().replace(/[^a-z]/g, '');

const seconds = (ms: number) =>
  ms < 1000 ? `${Math.round(ms)} ms` : ms < 120_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;

const fact = (name: string, value: string | undefined) => (value === undefined || value === '' ? '' : `<dt>${esc(name)}</dt><dd>${esc(value)}</dd>`);

function link(name: string, url: string | undefined): string {
  const href = safeHttpUrl(url);
  return href ? `<dt>${esc(name)}</dt><dd><a href="${esc(href)}" rel="noreferrer noopener">${esc(href)}</a></dd>` : '';
}

function header(r: ReleaseReport): string {
  const resultClass = cls(r.result);
  return (
    `<header><h1>${esc(r.release)} <span class="muted">→ ${esc(r.environment)}</span> <span class="badge ${resultClass}" id="result">${esc(r.result)}</span></h1>` +
    `<p class="description">${esc(r.description)}</p><dl class="facts">` +
    fact('action', r.action) +
    fact('revision', r.revision === undefined ? undefined : String(r.revision)) +
    fact('namespace', r.namespace) +
    fact('project', r.project) +
    fact('commit', r.commit) +
    fact('branch', r.branch) +
    fact('started', r.startedAt) +
    fact('duration', r.durationMs === undefined ? undefined : seconds(r.durationMs)) +
    link('pipeline', r.pipelineUrl) +
    link('job', r.jobUrl) +
    `</dl></header>`
  );
}

function unknownNote(unknown: string[]): string {
  if (!unknown.length) return '';
  return `<section class="note"><h2>Not known for this report</h2><ul>${unknown.map((u) => `<li>${esc(u)}</li>`).join('')}</ul></section>`;
}

function timeline(r: ReleaseReport): string {
  const rows = r.timeline;
  if (!rows?.length) return '';
  const total = Math.max(1, r.durationMs ?? 0, ...rows.map((x) => x.endMs ?? x.startMs));
  const pct = (ms: number) => `${Math.min(100, Math.max(0, (ms / total) * 100)).toFixed(2)}%`;
  const bar = (x: TimelineRow) => {
    const end = x.endMs ?? total;
    const width = Math.max(0.4, ((end - x.startMs) / total) * 100);
    const progress = x.progress && x.progress.want > 0 ? ` ${x.progress.ready}/${x.progress.want}` : '';
    const fill =
      x.progress && x.progress.want > 0 ? `<i style="width:${((100 * Math.min(x.progress.ready, x.progress.want)) / x.progress.want).toFixed(1)}%"></i>` : '';
    return `<span class="bar ${cls(x.state)}" style="left:${pct(x.startMs)};width:${Math.min(width, 100).toFixed(2)}%">${fill}</span><span class="at" style="left:${pct(end)}">${esc(seconds(end - x.startMs))}${esc(progress)}</span>`;
  };
  const body = rows
    .map((x) => {
      const held = r.heldBy !== undefined && x.subject === r.heldBy;
      return (
        `<tr class="row ${x.kind}${held ? ' held' : ''}" data-subject="${esc(x.subject)}"><th scope="row"><span class="kind">${esc(x.kind)}</span> ${esc(x.subject)}${held ? ' <b class="flag">held the release back</b>' : ''}</th>` +
        `<td class="state ${cls(x.state)}">${esc(x.state)}</td><td class="lane">${bar(x)}</td><td class="detail">${esc(x.detail ?? '')}</td></tr>`
      );
    })
    .join('\n');
  return `<section id="timeline"><h2>Timeline</h2><p class="muted">${rows.filter((x) => x.kind === 'object').length} objects over ${esc(seconds(total))}</p><table class="waterfall"><tbody>\n${body}\n</tbody></table></section>`;
}

function failures(r: ReleaseReport): string {
  const parts: string[] = [];
  if (r.failureGroups?.length) {
    parts.push(
      `<h3>Failing pods by cause</h3><table class="grid"><thead><tr><th>cause</th><th>pods</th><th>objects</th><th>for example</th></tr></thead><tbody>` +
        r.failureGroups
          .map(
            (g) =>
              `<tr><td class="cause">${esc([g.reason, g.container ? `in container ${g.container}` : '', g.exitCode === undefined ? '' : `(exit ${g.exitCode})`].filter(Boolean).join(' '))}${g.message ? `<div class="muted">${esc(g.message)}</div>` : ''}</td>` +
              `<td>${g.count}</td><td>${esc(g.objects.join(', '))}</td><td>${esc(g.examples.join(', '))}</td></tr>`,
          )
          .join('') +
        `</tbody></table>`,
    );
  }
  for (const f of r.failures ?? []) parts.push(failedPod(f));
  if (r.notReady?.length) {
    parts.push(
      `<h3>Not ready</h3><ul>${r.notReady.map((n) => `<li><b>${esc(n.object)}</b>: ${esc(n.message)}${n.cause ? ` <span class="cause">${esc(n.cause)}</span>` : ''}</li>`).join('')}</ul>`,
    );
  }
  return parts.length ? `<section id="failures"><h2>Why it failed</h2>${parts.join('\n')}</section>` : '';
}

function failedPod(f: FailedPod): string {
  const what = [
    f.reason,
    f.container ? `in container ${f.container}` : '',
    f.exitCode === undefined ? '' : `(exit ${f.exitCode})`,
    f.restarts ? `after ${f.restarts} restarts` : '',
  ]
    .filter(Boolean)
    .join(' ');
  return (
    `<article class="failure"><h3>${esc(f.object)}${f.pod ? ` <span class="muted">pod ${esc(f.pod)}</span>` : ''}</h3><p class="cause">${esc(what)}</p>` +
    (f.message ? `<p>${esc(f.message)}</p>` : '') +
    (f.logs.length ? `<h4>Last log lines</h4><pre class="log">${esc(f.logs.join('\n'))}</pre>` : '') +
    (f.events.length ? `<h4>Events</h4><pre class="events">${esc(f.events.join('\n'))}</pre>` : '') +
    `</article>`
  );
}

const HEALTH_MARK: Record<Health, string> = { healthy: '●', progressing: '◐', degraded: '◑', failed: '✕', missing: '○', unknown: '?' };

function tree(nodes: TreeNode[] | undefined): string {
  if (!nodes?.length) return '';
  const item = (n: TreeNode): string =>
    `<li><span class="h ${n.health}" title="${n.health}">${HEALTH_MARK[n.health]}</span> <span class="ref">${esc(n.ref)}</span> <span class="hw ${n.health}">${n.health}</span>${n.detail ? ` <span class="muted">${esc(n.detail)}</span>` : ''}` +
    (n.children.length ? `<ul>${n.children.map(item).join('')}</ul>` : '') +
    `</li>`;
  return `<section id="tree"><h2>Objects and their health</h2><ul class="tree">${nodes.map(item).join('\n')}</ul></section>`;
}

function changes(r: ReleaseReport): string {
  if (!r.changes) return '';
  const from =
    r.action === 'plan'
      ? 'the live objects (what a deploy would change)'
      : r.changesFrom === undefined
        ? 'nothing before (first revision)'
        : `revision ${r.changesFrom}`;
  if (!r.changes.length) return `<section id="changes"><h2>What changed</h2><p>No object changed since ${esc(from)}.</p></section>`;
  const line = (l: string) => {
    const c = l.startsWith('+') && !l.startsWith('+++') ? 'add' : l.startsWith('-') && !l.startsWith('---') ? 'del' : l.startsWith('@@') ? 'hunk' : '';
    return c ? `<span class="${c}">${esc(l)}</span>` : esc(l);
  };
  const items = r.changes
    .map(
      (c) =>
        `<details${r.changes!.length <= 10 ? ' open' : ''}><summary><span class="badge ${cls(c.change)}">${esc(c.change)}</span> ${esc(c.object)}</summary><pre class="diff">${c.diff.split('\n').map(line).join('\n')}</pre></details>`,
    )
    .join('\n');
  return `<section id="changes"><h2>What changed since ${esc(from)}</h2><p class="muted">Secret values are masked as in skiff diff.</p>${items}</section>`;
}

function warnings(list: string[] | undefined): string {
  if (!list?.length) return '';
  return `<section id="warnings"><h2>Warnings</h2><ul>${list.map((w) => `<li>${esc(w)}</li>`).join('')}</ul></section>`;
}

function tests(list: ReleaseReport['tests']): string {
  if (!list?.length) return '';
  const rows = list
    .map(
      (t) =>
        `<tr><td>${esc(t.test)}</td><td><span class="badge ${t.passed ? 'passed' : 'failed'}">${t.passed ? 'passed' : 'failed'}</span></td><td>${t.exitCode}</td><td>${esc(seconds(t.durationMs))}</td>` +
        `<td>${t.cached ? `cached: passed ${esc(t.cached.passedAt)} on ${esc(t.cached.imageDigest.slice(0, 19))}` : ''}</td></tr>`,
    )
    .join('');
  return `<section id="tests"><h2>Tests of the images</h2><table class="grid"><thead><tr><th>test</th><th>result</th><th>exit</th><th>duration</th><th></th></tr></thead><tbody>${rows}</tbody></table></section>`;
}

function images(map: Record<string, string> | undefined): string {
  const entries = Object.entries(map ?? {});
  if (!entries.length) return '';
  return `<section id="images"><h2>Images</h2><dl class="facts">${entries.map(([k, v]) => fact(k, v)).join('')}</dl></section>`;
}

function page(title: string, body: string): string {
  // default-src 'none': even if something slipped past escaping, the page can load nothing and run nothing.
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${CSS}</style></head>
<body>
${body}
</body></html>
`;
}

const CSS = `
:root{--ok:#1a7f37;--bad:#cf222e;--wait:#9a6700;--info:#0969da;--mute:#6e7781;--line:#d0d7de;--bg:#f6f8fa}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0 auto;max-width:1200px;padding:16px 24px;color:#1f2328}
h1{font-size:22px;margin:4px 0}h2{font-size:17px;border-bottom:1px solid var(--line);padding-bottom:4px;margin-top:28px}h3{font-size:15px;margin:14px 0 6px}h4{font-size:13px;margin:8px 0 4px}
.muted{color:var(--mute);font-weight:normal}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff;background:var(--mute);vertical-align:middle}
.badge.deployed,.badge.passed,.badge.ready,.badge.planned,.badge.create{background:var(--ok)}.badge.failed,.badge.error,.badge.delete{background:var(--bad)}
.badge.update,.badge.pendingupgrade,.badge.pendinginstall,.badge.pendingrollback{background:var(--wait)}.badge.superseded{background:var(--mute)}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:8px 0}dl.facts dt{color:var(--mute)}dl.facts dd{margin:0;word-break:break-all}
.note{background:#fff8c5;border:1px solid #d4a72c66;padding:4px 12px;border-radius:6px}
table{border-collapse:collapse;width:100%}table.grid th,table.grid td{border-bottom:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
table.waterfall th{font-weight:normal;text-align:left;white-space:nowrap;padding:2px 8px 2px 0;max-width:340px;overflow:hidden;text-overflow:ellipsis}
table.waterfall td{padding:2px 6px;border-bottom:1px solid #eaeef2}
table.waterfall .kind{color:var(--mute);font-size:11px;text-transform:uppercase}
td.lane{position:relative;width:45%;min-width:240px;height:18px;background:linear-gradient(90deg,transparent 24.9%,#eaeef2 25%,transparent 25.1%,transparent 49.9%,#eaeef2 50%,transparent 50.1%,transparent 74.9%,#eaeef2 75%,transparent 75.1%)}
.bar{position:absolute;top:4px;height:11px;border-radius:3px;background:var(--info);opacity:.85;overflow:hidden}
.bar i{display:block;height:100%;background:rgba(255,255,255,.35)}
.bar.ready,.bar.done{background:var(--ok)}.bar.failed{background:var(--bad)}.bar.waiting,.bar.running{background:var(--wait)}.bar.applied{background:var(--info)}
.at{position:absolute;top:2px;margin-left:4px;font-size:11px;color:var(--mute);white-space:nowrap}
td.state{font-size:12px;font-weight:600}td.state.ready,td.state.done{color:var(--ok)}td.state.failed{color:var(--bad)}td.state.waiting,td.state.running{color:var(--wait)}
td.detail{font-size:12px;color:var(--mute);max-width:320px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
tr.held th,tr.held td{background:#ffebe9}.flag{color:var(--bad);font-size:11px;text-transform:uppercase}
tr.phase th{font-weight:600}
.failure{border-left:4px solid var(--bad);padding:2px 12px;margin:10px 0;background:#fff}.cause{color:var(--bad);font-weight:600}
pre{background:var(--bg);border:1px solid var(--line);border-radius:6px;padding:8px;overflow:auto;max-height:360px;font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;white-space:pre-wrap;word-break:break-all}
pre.diff .add{color:var(--ok)}pre.diff .del{color:var(--bad)}pre.diff .hunk{color:var(--info)}
details{margin:4px 0}summary{cursor:pointer}
ul.tree,ul.tree ul{list-style:none;padding-left:18px;margin:0}ul.tree{padding-left:0}ul.tree li{margin:1px 0}ul.tree ul{border-left:1px dashed var(--line)}
.h{display:inline-block;width:1em;text-align:center}.h.healthy,.hw.healthy{color:var(--ok)}.h.failed,.hw.failed,.h.degraded,.hw.degraded{color:var(--bad)}.h.progressing,.hw.progressing{color:var(--wait)}.h.missing,.h.unknown,.hw.missing,.hw.unknown{color:var(--mute)}
.hw{font-size:11px;text-transform:uppercase}.ref{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
footer{margin-top:32px;color:var(--mute);font-size:12px}
`;

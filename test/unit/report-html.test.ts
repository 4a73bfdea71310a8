import { describe, expect, it } from 'vitest';
import { recordedChanges } from '../../src/actions/diff.js';
import { addRun, reportFromRecord } from '../../src/report/build-report.js';
import { objectTree } from '../../src/report/object-tree.js';
import { renderHistoryHtml, renderReportHtml, safeHttpUrl } from '../../src/report/render-html.js';
import type { ReleaseReport, TreeNode } from '../../src/report/report-model.js';
import { heldBy, replicaProgress, TimelineRecorder } from '../../src/report/timeline.js';
import type { Reporter } from '../../src/context.js';
import type { ReleaseRecord } from '../../src/release/release-record.js';
import { Redactor } from '../../src/secrets/redact.js';

const now = new Date('2026-01-01T00:10:00Z');
const quiet: Reporter = { info() {}, warn() {}, log() {}, status() {}, debug() {}, section: () => () => {} };

const HOSTILE = `"><script>alert(1)</script><img src=x onerror=alert(2)>`;

function base(extra: Partial<ReleaseReport> = {}): ReleaseReport {
  return {
    action: 'deploy',
    release: 'shop',
    environment: 'staging',
    namespace: 'shop-staging',
    project: 'shop',
    revision: 3,
    result: 'failed',
    description: 'Deployment/web: CrashLoopBackOff',
    commit: 'a'.repeat(40),
    generatedAt: now.toISOString(),
    unknown: [],
    ...extra,
  };
}

const INERT_TAGS = new Set([
  'html',
  'head',
  'meta',
  'title',
  'style',
  'body',
  'header',
  'h1',
  'h2',
  'h3',
  'h4',
  'p',
  'span',
  'dl',
  'dt',
  'dd',
  'section',
  'ul',
  'li',
  'table',
  'thead',
  'tbody',
  'tr',
  'th',
  'td',
  'b',
  'i',
  'article',
  'pre',
  'details',
  'summary',
  'code',
  'div',
  'footer',
  'a',
]);

/** Every place the page could reach the network or run code: tags that load or execute, event handlers, and each link's target. */
function activeParts(html: string): string[] {
  const out: string[] = [];
  for (const [, name, attrs] of html.matchAll(/<([a-zA-Z][a-zA-Z0-9]*)([^>]*)>/g)) {
    if (!INERT_TAGS.has(name!.toLowerCase())) out.push(`<${name}`);
    // Attribute by attribute, so text inside a quoted value is never taken for an attribute.
    for (const m of attrs!.matchAll(/\s*([^\s=>]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]+))?/g))
      if (/^(on[a-z]+|src|href|action|formaction|srcset|style)$/i.test(m[1]!) && !(m[1] === 'style' && /^"[-a-z0-9:;.% ]*"$/i.test(m[2] ?? '')))
        out.push(`${m[1]}=${m[2]}`);
  }
  return out;
}

describe('renderReportHtml', () => {
  it('escapes every text from the cluster, the repository and Git: a hostile one stays text', () => {
    const html = renderReportHtml(
      base({
        description: HOSTILE,
        branch: HOSTILE,
        release: HOSTILE,
        commit: `</title>${HOSTILE}`,
        images: { [HOSTILE]: HOSTILE },
        timeline: [{ kind: 'object', subject: `Deployment/${HOSTILE}`, startMs: 0, endMs: 10, state: 'failed', detail: HOSTILE }],
        heldBy: `Deployment/${HOSTILE}`,
        failures: [{ object: HOSTILE, pod: HOSTILE, reason: HOSTILE, events: [HOSTILE], logs: [`</pre>${HOSTILE}`] }],
        failureGroups: [{ reason: HOSTILE, count: 2, objects: [HOSTILE], examples: [HOSTILE], message: HOSTILE }],
        tree: [{ ref: HOSTILE, health: 'failed', detail: HOSTILE, children: [{ ref: HOSTILE, health: 'healthy', children: [] }] }],
        changes: [{ object: HOSTILE, change: HOSTILE, diff: `+ ${HOSTILE}` }],
        warnings: [HOSTILE],
        notReady: [{ object: HOSTILE, message: HOSTILE, cause: HOSTILE }],
        tests: [{ test: HOSTILE, passed: false, exitCode: 1, durationMs: 5 }],
        unknown: [HOSTILE],
      }),
    );
    expect(activeParts(html)).toEqual([]);
    expect(html).not.toContain('<script');
    expect(html).toContain('&#34;&#62;&#60;script&#62;alert(1)&#60;/script&#62;');
  });

  it('links only http(s) CI pages, escaped; a javascript: or relative URL is not linked', () => {
    const html = renderReportHtml(base({ pipelineUrl: 'javascript:alert(1)', jobUrl: 'https://gitlab.example/g/p/-/jobs/7?a="<b>' }));
    expect(activeParts(html)).toEqual(['href="https://gitlab.example/g/p/-/jobs/7?a=%22%3Cb%3E"']);
    expect(html).not.toContain('javascript:');
    expect(safeHttpUrl('/relative')).toBeUndefined();
    expect(safeHttpUrl('data:text/html,x')).toBeUndefined();
    expect(safeHttpUrl('http://x.test/a')).toBe('http://x.test/a');
  });

  it('forbids the page every load and script by its content security policy', () => {
    const html = renderReportHtml(base());
    expect(html).toMatch(/Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:"/);
  });

  it('marks the object that held the release back, draws each row at its time, and says what is not known', () => {
    const html = renderReportHtml(
      base({
        durationMs: 10_000,
        timeline: [
          { kind: 'object', subject: 'Deployment/api', startMs: 0, endMs: 5_000, state: 'ready', progress: { ready: 2, want: 2 } },
          { kind: 'object', subject: 'Deployment/web', startMs: 1_000, state: 'failed', endMs: 10_000, detail: '0/2 pods ready' },
        ],
        heldBy: 'Deployment/web',
        unknown: ['timeline: not kept'],
      }),
    );
    const rows = [...html.matchAll(/<tr class="row object( held)?" data-subject="([^"]+)">/g)].map((m) => [m[2], Boolean(m[1])]);
    expect(rows).toEqual([
      ['Deployment/api', false],
      ['Deployment/web', true],
    ]);
    expect(html).toContain('left:10.00%;width:90.00%');
    expect(html).toContain('held the release back');
    expect(html).toContain('<li>timeline: not kept</li>');
  });

  it('keeps a report of 50 workloads and 1,500 pods, every pod failing, under 2 MB', () => {
    const tree: TreeNode[] = [];
    const timeline: ReleaseReport['timeline'] = [];
    for (let w = 0; w < 50; w++) {
      const pods = Array.from({ length: 30 }, (_, p) => ({
        ref: `Pod/workload-${w}-7d9f8c6b5-${String(p).padStart(5, 'x')}`,
        health: 'failed' as const,
        detail: 'CrashLoopBackOff, in app, exit 1, 4 restarts',
        children: [],
      }));
      tree.push({
        ref: `Deployment/workload-${w}`,
        health: 'failed',
        detail: '0/30 ready, 30/30 updated',
        children: [{ ref: `ReplicaSet/workload-${w}-7d9f8c6b5`, health: 'degraded', detail: '0/30 ready', children: pods }],
      });
      timeline.push({
        kind: 'object',
        subject: `Deployment/workload-${w}`,
        startMs: w * 100,
        endMs: 60_000,
        state: 'failed',
        detail: '0/30 pods ready',
        progress: { ready: 0, want: 30 },
      });
    }
    const failures = Array.from({ length: 10 }, (_, i) => ({
      object: `Deployment/workload-${i}`,
      pod: `workload-${i}-7d9f8c6b5-xxxx1`,
      reason: 'CrashLoopBackOff',
      exitCode: 1,
      events: Array.from({ length: 10 }, () => 'Back-off restarting failed container app in pod'),
      logs: Array.from({ length: 50 }, (_, l) => `line ${l}: connection refused to db:5432 while starting the application server`),
    }));
    const html = renderReportHtml(base({ tree, timeline, failures, durationMs: 60_000 }));
    expect(Buffer.byteLength(html)).toBeLessThan(2 * 1024 * 1024);
    expect(html.match(/class="h failed"/g)?.length).toBe(1_550);
  });
});

describe('renderHistoryHtml', () => {
  it('lists revisions newest first, linking a report only beside the page and by its base name', () => {
    const html = renderHistoryHtml({
      release: 'shop',
      environment: 'staging',
      namespace: 'ns',
      generatedAt: now.toISOString(),
      rows: [
        { revision: 1, status: 'superseded', description: 'install complete' },
        { revision: 2, status: 'failed', description: HOSTILE, report: '../../etc/staging-2.html' },
      ],
    });
    expect(activeParts(html)).toEqual(['href="./staging-2.html"', 'href="./staging-2.html"']);
    expect(html.indexOf('>2</a>')).toBeLessThan(html.indexOf('<td>1</td>'));
  });
});

describe('TimelineRecorder', () => {
  it('records phases, objects from applied to ready or failed with replica progress, and warnings, passing everything on', () => {
    let t = 1_000;
    const seen: string[] = [];
    // A method the recorder does not know (a live view's) is passed on too.
    const inner = { ...quiet, status: (s: string, st: string) => void seen.push(`${s} ${st}`), rollout: () => void seen.push('rollout') };
    const rec = new TimelineRecorder(inner, () => t);
    const r = rec.reporter;
    const end = r.section('skiff_deploy_apply', 'apply 2 objects');
    r.status('Deployment/web', 'applied');
    r.status('ConfigMap/conf', 'applied');
    t += 500;
    end();
    r.status('Deployment/web', 'waiting', '1/3 pods ready');
    r.warn('lint: no resources');
    t += 1_500;
    r.status('Deployment/web', 'failed', 'CrashLoopBackOff');
    r.status('release', 'failed', '0/1 objects ready');
    expect(rec.timeline()).toEqual([
      { kind: 'phase', subject: 'apply 2 objects', startMs: 0, endMs: 500, state: 'done' },
      { kind: 'object', subject: 'Deployment/web', startMs: 0, endMs: 2_000, state: 'failed', detail: 'CrashLoopBackOff', progress: { ready: 1, want: 3 } },
      { kind: 'object', subject: 'ConfigMap/conf', startMs: 0, endMs: 0, state: 'applied' },
    ]);
    expect(rec.warningList()).toEqual(['lint: no resources']);
    expect(seen).toContain('release failed');
    (r as { rollout?: () => void }).rollout?.();
    expect(seen).toContain('rollout');
    expect(heldBy(rec.timeline())).toBe('Deployment/web');
  });

  it('names as held back the one not ready, else the last to be ready', () => {
    const rows = [
      { kind: 'object' as const, subject: 'A', startMs: 0, endMs: 900, state: 'ready' as const },
      { kind: 'object' as const, subject: 'B', startMs: 0, endMs: 400, state: 'ready' as const },
      { kind: 'phase' as const, subject: 'apply', startMs: 0, endMs: 2_000, state: 'done' as const },
    ];
    expect(heldBy(rows)).toBe('A');
    expect(heldBy([...rows, { kind: 'object', subject: 'C', startMs: 0, state: 'waiting' }], ['C'])).toBe('C');
    expect(replicaProgress('pods 12/30 ready')).toEqual({ ready: 12, want: 30 });
    expect(replicaProgress('applied')).toBeUndefined();
  });
});

describe('objectTree', () => {
  const owner = (uid: string) => [{ uid, controller: true, kind: 'x', name: 'x', apiVersion: 'v1' }];
  const dep = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', uid: 'd1', generation: 1 },
    spec: { replicas: 2 },
    status: { observedGeneration: 1, replicas: 2, readyReplicas: 1, updatedReplicas: 2, availableReplicas: 1 },
  };
  const rs = {
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    metadata: { name: 'web-1', uid: 'r1', ownerReferences: owner('d1'), annotations: { 'deployment.kubernetes.io/revision': '1' } },
    spec: { replicas: 2 },
    status: { readyReplicas: 1 },
  };
  const oldRs = { ...rs, metadata: { ...rs.metadata, name: 'web-0', uid: 'r0' }, spec: { replicas: 0 } };
  const okPod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web-1-a', ownerReferences: owner('r1') },
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
  };
  const badPod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web-1-b', ownerReferences: owner('r1') },
    status: {
      phase: 'Running',
      containerStatuses: [{ name: 'app', restartCount: 3, state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: { terminated: { exitCode: 2 } } }],
    },
  };
  const svc = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' }, spec: { selector: { app: 'web' } } };
  const ep = { apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 'web' }, subsets: [{ addresses: [{}], notReadyAddresses: [{}] }] };
  const ing = {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name: 'web' },
    spec: { rules: [{ http: { paths: [{ backend: { service: { name: 'gone' } } }] } }] },
  };
  const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'conf' } };

  it('hangs ReplicaSets and pods under their Deployment, endpoints under a Service, Services under an Ingress, with health', () => {
    const api = { ...dep, metadata: { name: 'api', uid: 'd2', generation: 1 }, status: { ...dep.status, readyReplicas: 2, availableReplicas: 2 } };
    const objects = [cm, ing, svc, dep, api];
    const live = new Map<string, any>(objects.map((o) => [`${o.kind}/${o.metadata.name}`, o]));
    live.delete('ConfigMap/conf');
    const tree = objectTree({ objects, live, replicaSets: [rs, oldRs], pods: [okPod, badPod], endpoints: [ep] }, now);
    const flat = (n: TreeNode, depth = 0): string[] => [
      `${'  '.repeat(depth)}${n.ref} ${n.health}${n.detail ? ` (${n.detail})` : ''}`,
      ...n.children.flatMap((c) => flat(c, depth + 1)),
    ];
    expect(tree.flatMap((n) => flat(n))).toEqual([
      'Deployment/web failed (1/2 ready, 2/2 updated; pod web-1-b: CrashLoopBackOff)',
      '  ReplicaSet/web-1 degraded (1/2 ready)',
      '    Pod/web-1-a healthy (ready)',
      '    Pod/web-1-b failed (CrashLoopBackOff, in app, exit 2, 3 restarts)',
      'Deployment/api healthy (2/2 ready, 2/2 updated)',
      'Service/web progressing (1 ready endpoints)',
      '  Endpoints/web progressing (1 ready, 1 not ready addresses)',
      'Ingress/web degraded (routes to 1 services)',
      '  Service/gone missing (not in the cluster)',
      'ConfigMap/conf missing (not in the cluster)',
    ]);
  });
});

describe('reports from the history', () => {
  const record = (revision: number, status: ReleaseRecord['status'], data: string, extra: Partial<ReleaseRecord> = {}): ReleaseRecord => ({
    name: 'shop',
    namespace: 'ns',
    revision,
    status,
    description: 'upgrade complete',
    environment: 'staging',
    project: 'shop',
    manifests: [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'conf' }, data: { mode: data } }],
    values: {},
    images: { app: 'r/app@sha256:1' },
    git: { commit: 'c'.repeat(40) },
    deployedBy: { user: 'u', host: 'h', ciJobUrl: 'https://ci.test/job/1' },
    startedAt: '2026-01-01T00:00:00Z',
    finishedAt: '2026-01-01T00:00:42Z',
    ...extra,
  });

  it('shows what changed since the revision that ran before, the tests ship ran, and the run adds what only it knew', () => {
    const history = [
      record(1, 'superseded', 'a'),
      record(2, 'failed', 'b'),
      record(3, 'deployed', 'c', { tests: [{ test: 'unit', passed: true, exitCode: 0, durationMs: 900 }] }),
    ];
    const r = reportFromRecord(
      { action: 'history', release: 'shop', environment: 'staging', namespace: 'ns', project: 'shop', generatedAt: now.toISOString() },
      history,
      history[2]!,
    );
    expect(r).toMatchObject({
      revision: 3,
      result: 'deployed',
      durationMs: 42_000,
      changesFrom: 1,
      jobUrl: 'https://ci.test/job/1',
      tests: [{ test: 'unit' }],
    });
    expect(r.changes).toHaveLength(1);
    expect(r.changes![0]!.diff).toMatch(/^- {2}mode: a$/m);
    expect(r.changes![0]!.diff).toMatch(/^\+ {2}mode: c$/m);
    const rec = new TimelineRecorder(quiet, () => 0);
    rec.reporter.status('Deployment/web', 'failed', 'Error');
    const withRun = addRun(r, {
      recorder: rec,
      failures: [
        {
          object: 'Deployment/web',
          reason: 'Error',
          events: [],
          logs: ['boom'],
          groups: [{ reason: 'Error', count: 3, objects: ['Deployment/web'], examples: ['p1'] }],
        },
      ],
    });
    expect(withRun).toMatchObject({ heldBy: 'Deployment/web', failures: [{ logs: ['boom'] }], failureGroups: [{ count: 3 }] });
  });

  it('masks a secret the redactor knows in the changes, never showing it or its base64', () => {
    const secret = 'hunter2-very-secret';
    const redactor = new Redactor().with([[secret, 'values db.password']]);
    const changes = recordedChanges(
      [],
      [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'conf' }, data: { url: `postgres://u:${secret}@db` } }],
      redactor,
    );
    const text = JSON.stringify(changes);
    expect(text).not.toContain(secret);
    expect(text).not.toContain(Buffer.from(secret).toString('base64'));
    expect(text).toContain('(masked sha256:');
  });
});

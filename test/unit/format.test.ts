import { describe, expect, it } from 'vitest';
import { formatHistory, formatStatus, statusLine } from '../../src/cli/format.js';
import { verdict, defaultPolicy } from '../../src/kinds/readiness.js';
import type { LiveObject } from '../../src/kube/objects.js';
import type { ReleaseRecord } from '../../src/release/release-record.js';

const doubled = /\b(\w+) \(?\1\b/i;

describe('progress lines', () => {
  it('read as one sentence: the detail never repeats the state', () => {
    expect(statusLine('unit', 'passed', '530ms')).toBe('unit: passed (530ms)');
    expect(statusLine('Deployment/web', 'applied')).toBe('Deployment/web: applied');
  });

  it('say what a workload waits for, without doubled or empty words', () => {
    const now = new Date();
    const stale: LiveObject = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', generation: 1 }, spec: { replicas: 1 }, status: {} };
    const job: LiveObject = { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'migrate' }, status: {} };
    for (const obj of [stale, job]) {
      const v = verdict(obj, { pods: [] }, defaultPolicy, now);
      const line = statusLine(`${obj.kind}/${obj.metadata.name}`, 'waiting', v.message);
      expect(line).not.toMatch(doubled);
      expect(line).not.toMatch(/\b0 active, 0 failed/);
    }
    expect(verdict(job, { pods: [] }, defaultPolicy, now).message).toBe('no pod started yet');
  });
});

describe('history table', () => {
  it('shows each image by the first 12 hex digits of its digest', () => {
    const record = {
      revision: 3,
      status: 'deployed',
      startedAt: '2026-01-02T03:04:05.678Z',
      finishedAt: '2026-01-02T03:04:09.000Z',
      git: { commit: '0123456789abcdef' },
      images: { app: `127.0.0.1:5000/hello/app:${'f'.repeat(32)}@sha256:${'ab'.repeat(32)}` },
      description: 'upgrade complete',
    } as unknown as ReleaseRecord;
    const [head, row] = formatHistory([record]).split('\n');
    expect(head).toMatch(/^REVISION\s+UPDATED\s+STATUS\s+COMMIT\s+IMAGES\s+DESCRIPTION$/);
    expect(row).toMatch(/^3\s+2026-01-02 03:04:09Z\s+deployed\s+01234567\s+app:abababababab\s+upgrade complete$/);
  });
});

describe('skiff status', () => {
  it('lines up a Service without ready endpoints and a workload with its cause', () => {
    const text = formatStatus({
      release: 'hello-staging',
      namespace: 'shop',
      cluster: { context: 'prod-eu', server: 'https://10.0.0.1:6443' },
      revision: 3,
      status: 'deployed',
      objects: [
        { object: 'Service/web', state: 'not ready', message: 'no ready endpoints (selector app=wbe matches no ready pod)' },
        { object: 'Service/headless', state: 'ready', message: 'exists' },
        {
          object: 'Deployment/web',
          state: 'progressing',
          message: '1/1 updated, 0/1 available; pod web-1: readiness probe failed 7 times: exec `test -f /www/missing.html` in container web',
        },
      ],
    });
    expect(text.split('\n')).toEqual([
      'release hello-staging in shop on context prod-eu (https://10.0.0.1:6443): revision 3 deployed',
      `  ${'Service/web'.padEnd(40)} not ready    no ready endpoints (selector app=wbe matches no ready pod)`,
      `  ${'Service/headless'.padEnd(40)} ready        exists`,
      `  ${'Deployment/web'.padEnd(40)} progressing  1/1 updated, 0/1 available; pod web-1: readiness probe failed 7 times: exec \`test -f /www/missing.html\` in container web`,
    ]);
  });
});

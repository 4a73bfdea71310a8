import { describe, expect, it } from 'vitest';
import { formatFinding } from '../../../src/lint/finding.js';
import type { KubeObject } from '../../../src/kube/objects.js';
import { checks, deployment, emptyLive, lint, service } from './fixtures.js';

describe('dangling-service', () => {
  it('passes a Service that selects a pod template, and one without a selector (hand-made Endpoints)', () => {
    expect(checks([deployment('web'), service('web', { app: 'web' }), service('external', undefined, 5432)])).toEqual([]);
  });

  it('reports a selector typo with file, line and field', () => {
    const svc = service('web', { app: 'wbe' });
    const [f] = lint([deployment('web'), svc]);
    expect(f).toMatchObject({
      check: 'dangling-service',
      severity: 'error',
      file: '.kube/objects.yaml',
      line: svc.source.line,
      object: 'Service/web',
      field: 'spec.selector',
    });
    expect(formatFinding(f!)).toMatch(
      /^\.kube\/objects\.yaml:\d+: Service\/web spec\.selector: no pods found matching service labels app=wbe in namespace hello-staging; .* \[dangling-service\]$/,
    );
  });

  it('matches by namespace: a pod template elsewhere does not count', () => {
    expect(checks([deployment('web', { namespace: 'other' }), service('web', { app: 'web' })])).toEqual(['dangling-service Service/web spec.selector']);
  });

  it('counts the pods already in the cluster', () => {
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'db-0', labels: { app: 'db' } },
      spec: { containers: [{ name: 'db', ports: [{ name: 'http' }] }] },
    };
    expect(checks([service('db', { app: 'db' })], { live: { ...emptyLive, workloads: [pod as unknown as KubeObject] } })).toEqual([]);
  });
});

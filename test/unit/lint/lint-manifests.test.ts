import { describe, expect, it } from 'vitest';
import { selects } from '../../../src/lint/pod-templates.js';
import { checks, deployment, lint, service } from './fixtures.js';

describe('label selectors', () => {
  it('match labels and expressions; an empty selector selects nothing', () => {
    expect(selects({ app: 'web' }, { app: 'web', tier: 'x' })).toBe(true);
    expect(selects({ app: 'wbe' }, { app: 'web' })).toBe(false);
    expect(selects({ matchExpressions: [{ key: 'app', operator: 'In', values: ['web', 'api'] }] }, { app: 'api' })).toBe(true);
    expect(selects({ matchExpressions: [{ key: 'app', operator: 'DoesNotExist' }] }, { app: 'api' })).toBe(false);
    expect(selects({}, { app: 'web' })).toBe(false);
  });
});

describe('the runner', () => {
  it('orders findings by object, then container by container, then the pod template', () => {
    const web = deployment('web', {
      labels: { app: 'shared' },
      containers: [
        { name: 'a', resources: {}, env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'gone', key: 'x' } } }] },
        { name: 'b', image: 'redis', readinessProbe: { tcpSocket: { port: 'nope' } } },
      ],
      volumes: [{ name: 'v', configMap: { name: 'gone' } }],
    });
    const api = deployment('api', { labels: { app: 'shared' } });
    expect(checks([web, api])).toEqual([
      'missing-config Deployment/web spec.template.spec.containers[0].env[0].valueFrom.configMapKeyRef',
      'unset-requests Deployment/web spec.template.spec.containers[0].resources.requests',
      'unknown-target-port Deployment/web spec.template.spec.containers[1].readinessProbe.tcpSocket.port',
      'latest-tag Deployment/web spec.template.spec.containers[1].image',
      'missing-config Deployment/web spec.template.spec.volumes[0].configMap',
      'overlapping-selector Deployment/web spec.selector',
      'overlapping-selector Deployment/api spec.selector',
    ]);
  });
});

describe('skip annotation and --strict', () => {
  it('skiff.io/lint-skip silences the named checks on that object only', () => {
    const skipped = service('web', { app: 'wbe' }, 'http', { 'skiff.io/lint-skip': 'latest-tag, dangling-service' });
    expect(checks([deployment('web'), skipped])).toEqual([]);
    const web = deployment('web', { container: { image: 'redis', resources: {} }, annotations: { 'skiff.io/lint-skip': 'latest-tag' } });
    expect(checks([web])).toEqual(['unset-requests Deployment/web spec.template.spec.containers[0].resources.requests']);
  });

  it('--strict makes warnings errors', () => {
    const web = deployment('web', { container: { resources: {} } });
    expect(lint([web]).map((f) => f.severity)).toEqual(['warning']);
    expect(lint([web], { strict: true }).map((f) => f.severity)).toEqual(['error']);
  });
});

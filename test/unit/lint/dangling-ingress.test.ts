import { describe, expect, it } from 'vitest';
import type { KubeObject } from '../../../src/kube/objects.js';
import { checks, deployment, emptyLive, ingress, lint, service } from './fixtures.js';

describe('dangling-ingress', () => {
  it('passes a backend naming a Service of the release by port number or name', () => {
    const objs = [deployment('web'), service('web', { app: 'web' })];
    expect(checks([...objs, ingress('web', { number: 80 })])).toEqual([]);
    expect(checks([...objs, ingress('web', { name: 'web' })])).toEqual([]);
  });

  it('reports a missing Service, and a port the Service lacks', () => {
    const objs = [deployment('web'), service('web', { app: 'web' })];
    expect(checks([...objs, ingress('wbe', { number: 80 })])).toEqual(['dangling-ingress Ingress/web spec.rules[0].http.paths[0].backend.service.name']);
    expect(checks([...objs, ingress('web', { number: 8080 })])).toEqual(['dangling-ingress Ingress/web spec.rules[0].http.paths[0].backend.service.port']);
    expect(lint([...objs, ingress('web', { number: 8080 })]).map((f) => `${f.message}; ${f.fix}`)).toEqual([
      'Service web has no port 8080; use one of its ports: web (80)',
    ]);
  });

  it('accepts a Service that only the cluster has', () => {
    const live = {
      ...emptyLive,
      services: [{ apiVersion: 'v1', kind: 'Service', metadata: { name: 'legacy' }, spec: { ports: [{ port: 80 }] } } as unknown as KubeObject],
    };
    expect(checks([ingress('legacy', { number: 80 })], { live })).toEqual([]);
  });
});

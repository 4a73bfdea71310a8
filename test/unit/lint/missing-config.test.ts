import { describe, expect, it } from 'vitest';
import type { KubeObject } from '../../../src/kube/objects.js';
import { checks, configMap, deployment, emptyLive, only } from './fixtures.js';

describe('missing-config', () => {
  const envRef = (key: string, optional?: boolean) => ({ env: [{ name: 'MODE', valueFrom: { configMapKeyRef: { name: 'settings', key, optional } } }] });

  it('passes references to rendered ConfigMaps, keys, optional ones and cluster Secrets', () => {
    const live = {
      ...emptyLive,
      secrets: [{ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'db' }, data: { password: 'eA==' } } as unknown as KubeObject],
    };
    const web = deployment('web', {
      container: { ...envRef('MODE'), envFrom: [{ secretRef: { name: 'db' } }, { configMapRef: { name: 'extra', optional: true } }] },
      volumes: [{ name: 'conf', configMap: { name: 'settings', items: [{ key: 'MODE', path: 'mode' }] } }],
    });
    expect(checks([configMap('settings', { MODE: 'x' }), web], { live })).toEqual([]);
  });

  it('reports a missing key, a missing ConfigMap and a missing Secret volume', () => {
    const web = deployment('web', { container: envRef('MDOE'), volumes: [{ name: 's', secret: { secretName: 'tls' } }] });
    const found = only('missing-config', [configMap('settings', { MODE: 'x' }), web]);
    expect(found.map((f) => `${f.field}: ${f.message}`)).toEqual([
      'spec.template.spec.containers[0].env[0].valueFrom.configMapKeyRef: ConfigMap/settings has no key "MDOE" (keys: MODE)',
      'spec.template.spec.volumes[0].secret: Secret/tls is neither rendered',
    ]);
    expect(checks([deployment('web', { container: envRef('MODE') })])).toEqual([
      'missing-config Deployment/web spec.template.spec.containers[0].env[0].valueFrom.configMapKeyRef',
    ]);
    expect(checks([deployment('web', { container: envRef('MODE', true) })])).toEqual([]);
  });

  it('says the cluster was read, and checks projected volumes and envFrom', () => {
    const web = deployment('web', {
      container: { envFrom: [{ configMapRef: { name: 'extra' } }] },
      volumes: [{ name: 'p', projected: { sources: [{ secret: { name: 'tls', items: [{ key: 'crt', path: 'crt' }] } }] } }],
    });
    expect(only('missing-config', [web], { live: emptyLive }).map((f) => `${f.field}: ${f.message}`)).toEqual([
      'spec.template.spec.containers[0].envFrom[0].configMapRef: ConfigMap/extra is neither rendered nor in namespace hello-staging',
      'spec.template.spec.volumes[0].projected.sources[0].secret: Secret/tls is neither rendered nor in namespace hello-staging',
    ]);
  });
});

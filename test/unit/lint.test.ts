import { describe, expect, it } from 'vitest';
import { formatFinding, lintManifests, selects, type LintCheck, type LiveNamespace } from '../../src/lint/checks.js';
import type { KubeObject, Manifest } from '../../src/kube/objects.js';

const APP = '127.0.0.1:5000/hello/app:0123abcd@sha256:' + 'ab'.repeat(32);
const NS = 'hello-staging';

let line = 0;
const m = (object: Record<string, unknown>, file = '.kube/objects.yaml'): Manifest => ({
  object: object as unknown as KubeObject,
  source: { file, line: ++line },
});

interface PodOpts {
  labels?: Record<string, string>;
  container?: Record<string, unknown>;
  volumes?: unknown[];
  replicas?: number;
  annotations?: Record<string, string>;
  namespace?: string;
}
const container = (extra: Record<string, unknown> = {}) => ({
  name: 'web',
  image: APP,
  ports: [{ name: 'http', containerPort: 8080 }],
  resources: { requests: { cpu: '10m', memory: '16Mi' } },
  ...extra,
});
const deployment = (name: string, o: PodOpts = {}) =>
  m({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: o.namespace ?? NS, annotations: o.annotations },
    spec: {
      replicas: o.replicas ?? 2,
      selector: { matchLabels: o.labels ?? { app: name } },
      template: { metadata: { labels: o.labels ?? { app: name } }, spec: { containers: [container(o.container)], volumes: o.volumes } },
    },
  });
const service = (name: string, selector: Record<string, string> | undefined, targetPort: number | string = 'http', annotations?: Record<string, string>) =>
  m({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: NS, annotations }, spec: { selector, ports: [{ name: 'web', port: 80, targetPort }] } });
const ingress = (service: string, port: Record<string, unknown>) =>
  m({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name: 'web', namespace: NS },
    spec: { rules: [{ host: 'x', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: service, port } } }] } }] },
  });
const configMap = (name: string, data: Record<string, string>) => m({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: NS }, data });

const lint = (manifests: Manifest[], more: { live?: LiveNamespace; strict?: boolean } = {}) =>
  lintManifests({ manifests, namespace: NS, images: [APP], ...more });
const checks = (manifests: Manifest[], more: { live?: LiveNamespace; strict?: boolean } = {}) =>
  lint(manifests, more).map((f) => `${f.check} ${f.object} ${f.field}`);
const only = (check: LintCheck, manifests: Manifest[], more: { live?: LiveNamespace; strict?: boolean } = {}) =>
  lint(manifests, more).filter((f) => f.check === check);
const emptyLive: LiveNamespace = { workloads: [], services: [], configMaps: [], secrets: [] };

describe('label selectors', () => {
  it('match labels and expressions; an empty selector selects nothing', () => {
    expect(selects({ app: 'web' }, { app: 'web', tier: 'x' })).toBe(true);
    expect(selects({ app: 'wbe' }, { app: 'web' })).toBe(false);
    expect(selects({ matchExpressions: [{ key: 'app', operator: 'In', values: ['web', 'api'] }] }, { app: 'api' })).toBe(true);
    expect(selects({ matchExpressions: [{ key: 'app', operator: 'DoesNotExist' }] }, { app: 'api' })).toBe(false);
    expect(selects({}, { app: 'web' })).toBe(false);
  });
});

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
  });

  it('accepts a Service that only the cluster has', () => {
    const live = {
      ...emptyLive,
      services: [{ apiVersion: 'v1', kind: 'Service', metadata: { name: 'legacy' }, spec: { ports: [{ port: 80 }] } } as unknown as KubeObject],
    };
    expect(checks([ingress('legacy', { number: 80 })], { live })).toEqual([]);
  });
});

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
});

describe('unknown-target-port', () => {
  it('passes a named targetPort and probe port that the container declares', () => {
    const web = deployment('web', { container: { readinessProbe: { httpGet: { path: '/', port: 'http' } } } });
    expect(checks([web, service('web', { app: 'web' }, 'http')])).toEqual([]);
  });

  it('reports a Service targetPort name and a probe port name nobody declares', () => {
    const web = deployment('web', { container: { readinessProbe: { httpGet: { path: '/', port: 'htp' } } } });
    expect(checks([web, service('web', { app: 'web' }, 'htpp')])).toEqual([
      'unknown-target-port Deployment/web spec.template.spec.containers[0].readinessProbe.httpGet.port',
      'unknown-target-port Service/web spec.ports[0].targetPort',
    ]);
  });
});

describe('overlapping-selector', () => {
  it('passes workloads with their own labels, and a Job sharing one', () => {
    const job = m({
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'migrate', namespace: NS },
      spec: { template: { metadata: { labels: { app: 'web' } }, spec: { containers: [container()] } } },
    });
    expect(checks([deployment('web'), deployment('api'), job])).toEqual([]);
  });

  it('reports two Deployments with the same labels', () => {
    expect(checks([deployment('web', { labels: { app: 'web' } }), deployment('web-canary', { labels: { app: 'web' } })])).toEqual([
      'overlapping-selector Deployment/web spec.selector',
      'overlapping-selector Deployment/web-canary spec.selector',
    ]);
  });
});

describe('warnings', () => {
  it('unset-requests: a container without resources.requests', () => {
    expect(checks([deployment('web')])).toEqual([]);
    const [f] = lint([deployment('web', { container: { resources: {} } })]);
    expect(f).toMatchObject({ check: 'unset-requests', severity: 'warning', field: 'spec.template.spec.containers[0].resources.requests' });
  });

  it('latest-tag: an image not from skiff.yaml without a tag or tagged latest', () => {
    expect(checks([deployment('web', { container: { image: 'redis:7.2' } })])).toEqual([]);
    expect(checks([deployment('web', { container: { image: 'redis' } })])).toEqual(['latest-tag Deployment/web spec.template.spec.containers[0].image']);
    expect(checks([deployment('web', { container: { image: 'registry.local:5000/redis:latest' } })])).toEqual([
      'latest-tag Deployment/web spec.template.spec.containers[0].image',
    ]);
  });

  it('pdb-blocks-eviction: one replica and a PodDisruptionBudget allowing no disruption', () => {
    const pdb = (spec: Record<string, unknown>) =>
      m({
        apiVersion: 'policy/v1',
        kind: 'PodDisruptionBudget',
        metadata: { name: 'web', namespace: NS },
        spec: { selector: { matchLabels: { app: 'web' } }, ...spec },
      });
    expect(checks([deployment('web', { replicas: 2 }), pdb({ minAvailable: 1 })])).toEqual([]);
    expect(checks([deployment('web', { replicas: 1 }), pdb({ maxUnavailable: 1 })])).toEqual([]);
    expect(checks([deployment('web', { replicas: 1 }), pdb({ minAvailable: 1 })])).toEqual(['pdb-blocks-eviction Deployment/web spec.replicas']);
    expect(checks([deployment('web', { replicas: 1 }), pdb({ maxUnavailable: 0 })])).toEqual(['pdb-blocks-eviction Deployment/web spec.replicas']);
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

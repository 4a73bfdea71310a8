import { lintManifests } from '../../../src/lint/lint-manifests.js';
import type { LiveNamespace } from '../../../src/lint/check.js';
import type { LintCheck } from '../../../src/lint/finding.js';
import type { KubeObject, Manifest } from '../../../src/kube/objects.js';

/** Small rendered objects for the lint checks' tests, each with its own source line. */

export const APP = '127.0.0.1:5000/hello/app:0123abcd@sha256:' + 'ab'.repeat(32);
export const NS = 'hello-staging';

let line = 0;
export const m = (object: Record<string, unknown>, file = '.kube/objects.yaml'): Manifest => ({
  object: object as unknown as KubeObject,
  source: { file, line: ++line },
});

export interface PodOpts {
  labels?: Record<string, string>;
  container?: Record<string, unknown>;
  containers?: Array<Record<string, unknown>>;
  volumes?: unknown[];
  replicas?: number;
  annotations?: Record<string, string>;
  namespace?: string;
}
export const container = (extra: Record<string, unknown> = {}) => ({
  name: 'web',
  image: APP,
  ports: [{ name: 'http', containerPort: 8080 }],
  resources: { requests: { cpu: '10m', memory: '16Mi' } },
  ...extra,
});
export const deployment = (name: string, o: PodOpts = {}) =>
  m({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: o.namespace ?? NS, annotations: o.annotations },
    spec: {
      replicas: o.replicas ?? 2,
      selector: { matchLabels: o.labels ?? { app: name } },
      template: {
        metadata: { labels: o.labels ?? { app: name } },
        spec: { containers: o.containers?.map(container) ?? [container(o.container)], volumes: o.volumes },
      },
    },
  });
export const service = (
  name: string,
  selector: Record<string, string> | undefined,
  targetPort: number | string = 'http',
  annotations?: Record<string, string>,
) =>
  m({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: NS, annotations }, spec: { selector, ports: [{ name: 'web', port: 80, targetPort }] } });
export const ingress = (service: string, port: Record<string, unknown>) =>
  m({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name: 'web', namespace: NS },
    spec: { rules: [{ host: 'x', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: service, port } } }] } }] },
  });
export const configMap = (name: string, data: Record<string, string>) => m({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: NS }, data });

export interface LintMore {
  live?: LiveNamespace;
  strict?: boolean;
}
export const lint = (manifests: Manifest[], more: LintMore = {}) => lintManifests({ manifests, namespace: NS, images: [APP], ...more });
/** `check Kind/name field` of every finding, in order. */
export const checks = (manifests: Manifest[], more: LintMore = {}) => lint(manifests, more).map((f) => `${f.check} ${f.object} ${f.field}`);
export const only = (check: LintCheck, manifests: Manifest[], more: LintMore = {}) => lint(manifests, more).filter((f) => f.check === check);
export const emptyLive: LiveNamespace = { workloads: [], services: [], configMaps: [], secrets: [] };

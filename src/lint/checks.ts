import { parseImageRef } from '../registry/image-ref.js';
import type { ApiFields, KubeObject, Manifest } from '../kube/objects.js';

/**
 * `skiff lint`: checks over the rendered objects for the mistakes a cluster
 * accepts without a word (kube-linter's dangling-service and friends). Pure:
 * what the cluster already holds comes in as plain objects.
 */

export type LintSeverity = 'error' | 'warning';

export type LintCheck =
  | 'dangling-service'
  | 'dangling-ingress'
  | 'missing-config'
  | 'unknown-target-port'
  | 'overlapping-selector'
  | 'unset-requests'
  | 'latest-tag'
  | 'pdb-blocks-eviction';

export const LINT_CHECKS: Record<LintCheck, LintSeverity> = {
  'dangling-service': 'error',
  'dangling-ingress': 'error',
  'missing-config': 'error',
  'unknown-target-port': 'error',
  'overlapping-selector': 'error',
  'unset-requests': 'warning',
  'latest-tag': 'warning',
  'pdb-blocks-eviction': 'warning',
};

/** `skiff.io/lint-skip: dangling-service,latest-tag` silences those checks on the object. */
export const LINT_SKIP_ANNOTATION = 'skiff.io/lint-skip';

export interface LintFinding {
  check: LintCheck;
  severity: LintSeverity;
  file: string;
  line: number;
  /** `Kind/name` */
  object: string;
  field: string;
  message: string;
  fix: string;
}

/** What the release's namespace already holds, read from the cluster (read-only). */
export interface LiveNamespace {
  /** Pods and workloads: their pod labels can back a Service. */
  workloads: KubeObject[];
  services: KubeObject[];
  configMaps: KubeObject[];
  secrets: KubeObject[];
}

export interface LintInput {
  manifests: Manifest[];
  /** The namespace of objects that name none. */
  namespace: string;
  /** The image references skiff.yaml's images rendered to: never `latest`. */
  images: string[];
  /** The release's namespace in the cluster, when one was reachable. */
  live?: LiveNamespace;
  /** Warnings count as errors. */
  strict?: boolean;
}

type Labels = Record<string, string>;
interface LabelSelector {
  matchLabels?: Labels;
  matchExpressions?: Array<{ key: string; operator: string; values?: string[] }>;
}

/** A pod template of a rendered or live object, with the path to it. */
interface PodTemplate {
  owner: KubeObject;
  manifest?: Manifest;
  namespace: string;
  /** `spec.template.` for a Deployment, `` for a Pod. */
  path: string;
  labels: Labels;
  spec: ApiFields;
}

const TEMPLATE_PATHS: Record<string, string[]> = {
  Pod: [],
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
};

function podTemplate(obj: KubeObject, namespace: string, manifest?: Manifest): PodTemplate | undefined {
  const at = TEMPLATE_PATHS[obj.kind];
  if (!at) return undefined;
  let t: ApiFields | undefined = obj;
  for (const k of at) t = t?.[k] as ApiFields | undefined;
  if (!t?.spec) return undefined;
  return {
    owner: obj,
    manifest,
    namespace: obj.metadata.namespace ?? namespace,
    path: at.length ? `${at.join('.')}.` : '',
    labels: (t.metadata?.labels as Labels | undefined) ?? {},
    spec: t.spec as ApiFields,
  };
}

/** Whether a label selector (a Service's map, or matchLabels/matchExpressions) selects these labels. */
export function selects(selector: Labels | LabelSelector, labels: Labels): boolean {
  const s: LabelSelector = 'matchLabels' in selector || 'matchExpressions' in selector ? selector : { matchLabels: selector as Labels };
  const exprs = s.matchExpressions ?? [];
  if (!Object.keys(s.matchLabels ?? {}).length && !exprs.length) return false;
  for (const [k, v] of Object.entries(s.matchLabels ?? {})) if (labels[k] !== String(v)) return false;
  for (const e of exprs) {
    const has = e.key in labels;
    const values = (e.values ?? []).map(String);
    if (e.operator === 'In' && !(has && values.includes(labels[e.key]!))) return false;
    if (e.operator === 'NotIn' && has && values.includes(labels[e.key]!)) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

const id = (o: KubeObject) => `${o.kind}/${o.metadata.name}`;
const nsOf = (o: KubeObject, namespace: string) => o.metadata.namespace ?? namespace;
const containersOf = (spec: ApiFields): Array<[string, ApiFields]> => [
  ...((spec.initContainers ?? []) as ApiFields[]).map((c, i): [string, ApiFields] => [`spec.initContainers[${i}]`, c]),
  ...((spec.containers ?? []) as ApiFields[]).map((c, i): [string, ApiFields] => [`spec.containers[${i}]`, c]),
];
const portNames = (spec: ApiFields): Set<string> =>
  new Set(containersOf(spec).flatMap(([, c]) => ((c.ports ?? []) as ApiFields[]).map((p) => p.name as string | undefined).filter((n): n is string => !!n)));

/** Runs every check; findings come in manifest order, an object's skip annotation applied, --strict applied. */
export function lintManifests(input: LintInput): LintFinding[] {
  const { manifests, namespace, live } = input;
  const rendered = manifests.map((m) => podTemplate(m.object, namespace, m)).filter((t): t is PodTemplate => !!t);
  const liveTemplates = (live?.workloads ?? []).map((o) => podTemplate(o, namespace)).filter((t): t is PodTemplate => !!t);
  const findings: LintFinding[] = [];
  const report = (m: Manifest, check: LintCheck, field: string, message: string, fix: string) => {
    const skip = (m.object.metadata.annotations?.[LINT_SKIP_ANNOTATION] ?? '').split(',').map((s) => s.trim());
    if (skip.includes(check)) return;
    const severity = input.strict ? 'error' : LINT_CHECKS[check];
    findings.push({ check, severity, file: m.source.file, line: m.source.line, object: id(m.object), field, message, fix });
  };

  const servicesIn = (ns: string) => [
    ...manifests.map((m) => m.object).filter((o) => o.kind === 'Service' && nsOf(o, namespace) === ns),
    ...(ns === namespace ? (live?.services ?? []) : []),
  ];

  for (const m of manifests) {
    const o = m.object as KubeObject & ApiFields;
    const ns = nsOf(o, namespace);

    if (o.kind === 'Service' && o.spec?.selector && Object.keys(o.spec.selector as object).length) {
      const selector = o.spec.selector as Labels;
      const pods = [...rendered, ...(ns === namespace ? liveTemplates : [])].filter((t) => t.namespace === ns && selects(selector, t.labels));
      if (!pods.length) {
        const shown = Object.entries(selector)
          .map(([k, v]) => `${k}=${v}`)
          .join(',');
        report(
          m,
          'dangling-service',
          'spec.selector',
          `no pods found matching service labels ${shown} in namespace ${ns}`,
          'make spec.selector equal to the labels of a pod template (spec.template.metadata.labels), or remove the selector for hand-made Endpoints',
        );
      } else {
        const names = new Set(pods.flatMap((t) => [...portNames(t.spec)]));
        ((o.spec.ports ?? []) as ApiFields[]).forEach((p, i) => {
          if (typeof p.targetPort === 'string' && !names.has(p.targetPort)) {
            report(
              m,
              'unknown-target-port',
              `spec.ports[${i}].targetPort`,
              `port name "${p.targetPort}" is declared by no container of the selected pods (${[...new Set(pods.map((t) => id(t.owner)))].join(', ')})`,
              names.size ? `use one of ${[...names].join(', ')} or a port number` : 'name the container port (ports[].name) or use a port number',
            );
          }
        });
      }
    }

    if (o.kind === 'Ingress') lintIngress(m, servicesIn(ns), report);

    const t = podTemplate(o, namespace, m);
    if (t) {
      lintPodSpec(m, t, input, report);
      const selector = o.spec?.selector as LabelSelector | undefined;
      if (selector && o.kind !== 'Job' && o.kind !== 'CronJob') {
        for (const other of rendered) {
          // A Job's pods carry their controller's reference: a ReplicaSet never adopts them.
          if (other.owner === o || other.namespace !== ns || other.owner.kind === 'Job' || other.owner.kind === 'CronJob') continue;
          if (!selects(selector, other.labels)) continue;
          report(
            m,
            'overlapping-selector',
            'spec.selector',
            `selector also matches the pods of ${id(other.owner)}: the two controllers fight over them`,
            `give each workload a distinguishing label in its selector and pod template`,
          );
        }
      }
      if (o.kind === 'Deployment' && (o.spec?.replicas ?? 1) === 1) {
        for (const pdb of manifests.map((x) => x.object as KubeObject & ApiFields)) {
          if (pdb.kind !== 'PodDisruptionBudget' || nsOf(pdb, namespace) !== ns || !pdb.spec?.selector) continue;
          if (!selects(pdb.spec.selector as LabelSelector, t.labels) || !blocksSingle(pdb.spec as ApiFields)) continue;
          report(
            m,
            'pdb-blocks-eviction',
            'spec.replicas',
            `1 replica and ${id(pdb)} allows no disruption: a node drain waits forever`,
            'run 2 or more replicas, or let the PodDisruptionBudget allow one unavailable pod (maxUnavailable: 1)',
          );
        }
      }
    }
  }

  return findings;

  function lintPodSpec(m: Manifest, t: PodTemplate, inp: LintInput, rep: typeof report) {
    const known = (kind: 'ConfigMap' | 'Secret', name: string): Set<string> | undefined => {
      const keysOf = (o: ApiFields) => new Set(Object.keys({ ...(o.data ?? {}), ...(o.binaryData ?? {}), ...(o.stringData ?? {}) }));
      const r = inp.manifests.find((x) => x.object.kind === kind && x.object.metadata.name === name && nsOf(x.object, inp.namespace) === t.namespace);
      if (r) return keysOf(r.object);
      if (t.namespace !== inp.namespace) return undefined;
      const l = (kind === 'ConfigMap' ? inp.live?.configMaps : inp.live?.secrets)?.find((x) => x.metadata.name === name);
      return l ? keysOf(l) : undefined;
    };
    const fixFor = (kind: string) => `add the ${kind} to .kube/ (or create it in the cluster), correct the name, or mark the reference optional: true`;
    const ref = (field: string, kind: 'ConfigMap' | 'Secret', name: unknown, keys: unknown[], optional: unknown) => {
      if (optional === true || typeof name !== 'string') return;
      const have = known(kind, name);
      if (!have) {
        rep(m, 'missing-config', field, `${kind}/${name} is neither rendered${inp.live ? ' nor in namespace ' + t.namespace : ''}`, fixFor(kind));
        return;
      }
      for (const key of keys) {
        if (typeof key === 'string' && !have.has(key)) {
          rep(
            m,
            'missing-config',
            field,
            `${kind}/${name} has no key "${key}" (keys: ${[...have].join(', ') || 'none'})`,
            `add the key to ${kind}/${name} or correct it`,
          );
        }
      }
    };

    for (const [at, c] of containersOf(t.spec)) {
      const base = `${t.path}${at}`;
      ((c.env ?? []) as ApiFields[]).forEach((e, i) => {
        const cm = e.valueFrom?.configMapKeyRef as ApiFields | undefined;
        const sec = e.valueFrom?.secretKeyRef as ApiFields | undefined;
        if (cm) ref(`${base}.env[${i}].valueFrom.configMapKeyRef`, 'ConfigMap', cm.name, [cm.key], cm.optional);
        if (sec) ref(`${base}.env[${i}].valueFrom.secretKeyRef`, 'Secret', sec.name, [sec.key], sec.optional);
      });
      ((c.envFrom ?? []) as ApiFields[]).forEach((e, i) => {
        if (e.configMapRef) ref(`${base}.envFrom[${i}].configMapRef`, 'ConfigMap', e.configMapRef.name, [], e.configMapRef.optional);
        if (e.secretRef) ref(`${base}.envFrom[${i}].secretRef`, 'Secret', e.secretRef.name, [], e.secretRef.optional);
      });

      const ports = new Set(((c.ports ?? []) as ApiFields[]).map((p) => p.name as string | undefined).filter(Boolean));
      for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
        const p = c[probe] as ApiFields | undefined;
        for (const handler of ['httpGet', 'tcpSocket', 'grpc']) {
          const port = p?.[handler]?.port as unknown;
          if (typeof port === 'string' && !ports.has(port)) {
            rep(
              m,
              'unknown-target-port',
              `${base}.${probe}.${handler}.port`,
              `port name "${port}" is not declared by container ${c.name as string}`,
              `declare it in the container's ports (name: ${port}) or use the port number`,
            );
          }
        }
      }

      if (at.startsWith('spec.containers') && !(c.resources?.requests && Object.keys(c.resources.requests as object).length)) {
        rep(
          m,
          'unset-requests',
          `${base}.resources.requests`,
          `container ${c.name as string} requests no CPU or memory: the scheduler packs it blindly and it is evicted first`,
          'set resources.requests.cpu and resources.requests.memory',
        );
      }

      const image = c.image as string | undefined;
      if (image && !inp.images.includes(image)) {
        const { tag, digest } = parseImageRef(image);
        if (!digest && (!tag || tag === 'latest')) {
          rep(
            m,
            'latest-tag',
            `${base}.image`,
            `image ${image} ${tag ? 'is tagged latest' : 'has no tag (latest)'}: a restart may run another version`,
            'pin a version tag or digest, or build the image with skiff.yaml and use images.<name>',
          );
        }
      }
    }

    ((t.spec.volumes ?? []) as ApiFields[]).forEach((v, i) => {
      const field = `${t.path}spec.volumes[${i}]`;
      const keys = (items: unknown) => ((items ?? []) as ApiFields[]).map((x) => x.key as unknown);
      if (v.configMap) ref(`${field}.configMap`, 'ConfigMap', v.configMap.name, keys(v.configMap.items), v.configMap.optional);
      if (v.secret) ref(`${field}.secret`, 'Secret', v.secret.secretName, keys(v.secret.items), v.secret.optional);
      ((v.projected?.sources ?? []) as ApiFields[]).forEach((s, j) => {
        if (s.configMap) ref(`${field}.projected.sources[${j}].configMap`, 'ConfigMap', s.configMap.name, keys(s.configMap.items), s.configMap.optional);
        if (s.secret) ref(`${field}.projected.sources[${j}].secret`, 'Secret', s.secret.name, keys(s.secret.items), s.secret.optional);
      });
    });
  }
}

/** A PodDisruptionBudget that lets no pod of a single-replica workload go. */
function blocksSingle(spec: ApiFields): boolean {
  const value = (v: unknown) => (typeof v === 'string' && v.endsWith('%') ? Number.parseFloat(v) : Number(v));
  if (spec.maxUnavailable !== undefined) return value(spec.maxUnavailable) === 0;
  if (spec.minAvailable !== undefined) return value(spec.minAvailable) >= 1 || (typeof spec.minAvailable === 'string' && value(spec.minAvailable) > 0);
  return false;
}

function lintIngress(m: Manifest, services: KubeObject[], report: (m: Manifest, check: LintCheck, field: string, message: string, fix: string) => void) {
  const spec = (m.object as ApiFields).spec as ApiFields | undefined;
  const backends: Array<[string, ApiFields]> = [];
  if (spec?.defaultBackend) backends.push(['spec.defaultBackend', spec.defaultBackend as ApiFields]);
  if (spec?.backend) backends.push(['spec.backend', spec.backend as ApiFields]);
  ((spec?.rules ?? []) as ApiFields[]).forEach((r, i) =>
    ((r.http?.paths ?? []) as ApiFields[]).forEach((p, j) => backends.push([`spec.rules[${i}].http.paths[${j}].backend`, p.backend as ApiFields])),
  );
  for (const [field, b] of backends) {
    // networking.k8s.io/v1 (service.name, service.port) and the old extensions/v1beta1 (serviceName, servicePort).
    const name = (b?.service?.name ?? b?.serviceName) as string | undefined;
    const port = (b?.service?.port?.number ?? b?.service?.port?.name ?? b?.servicePort) as number | string | undefined;
    if (!name) continue;
    const svc = services.find((s) => s.metadata.name === name) as ApiFields | undefined;
    if (!svc) {
      const names = services.map((s) => s.metadata.name);
      report(
        m,
        'dangling-ingress',
        `${field}.service.name`,
        `Service ${name} does not exist`,
        names.length ? `use one of ${names.join(', ')}, or add the Service` : 'add the Service',
      );
      continue;
    }
    if (port === undefined) continue;
    const ports = (svc.spec?.ports ?? []) as ApiFields[];
    const ok = ports.some((p) => (typeof port === 'number' ? p.port === port : p.name === port || String(p.port) === port));
    if (!ok) {
      const shown = ports.map((p) => (p.name ? `${p.name as string} (${p.port as number})` : String(p.port))).join(', ');
      report(m, 'dangling-ingress', `${field}.service.port`, `Service ${name} has no port ${String(port)}`, `use one of its ports: ${shown || 'none'}`);
    }
  }
}

/** `.kube/service.yaml:1: Service/web spec.selector: no pods found…; make spec.selector… [dangling-service]` */
export function formatFinding(f: LintFinding): string {
  return `${f.file}:${f.line}: ${f.object} ${f.field}: ${f.message}; ${f.fix} [${f.check}]`;
}

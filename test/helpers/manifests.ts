// Kubernetes manifests as the YAML text a project's .kube/ holds, for unit tests
// (rendered by skiff against MemoryKube) and integration tests (applied to the
// test cluster). Every workload kind shares one pod template, so a test states
// only what makes its object different.

/** One container of a pod: `lines` are further keys of the container (ports, probes, mounts) as YAML. */
export interface ContainerOptions {
  /** Default `app`. */
  container?: string;
  /** Default `busybox:1`; an EJS expression such as `<%= images.app %>` in templates. */
  image?: string;
  /** Omitted: the image's own command. */
  command?: string[];
  lines?: string[];
}

/** A pod template: `podLines` are further keys of the pod spec (volumes) as YAML. */
export interface PodOptions extends ContainerOptions {
  restartPolicy?: 'Always' | 'OnFailure' | 'Never';
  /** terminationGracePeriodSeconds; omitted by default. */
  gracePeriod?: number;
  podLines?: string[];
}

export interface WorkloadOptions extends PodOptions {
  /** Default 1. */
  replicas?: number;
}

export interface JobOptions extends PodOptions {
  backoffLimit?: number;
  annotations?: Record<string, string>;
}

/** A command that keeps a container running until the test is done with it. */
export const SLEEP = ['sleep', '3600'];

const indent = (prefix: string, lines: string[]) => lines.map((l) => `${prefix}${l}`);
const flow = (value: unknown) => JSON.stringify(value);

function podSpec(o: PodOptions): string[] {
  return [
    'spec:',
    ...(o.restartPolicy ? [`  restartPolicy: ${o.restartPolicy}`] : []),
    ...(o.gracePeriod === undefined ? [] : [`  terminationGracePeriodSeconds: ${o.gracePeriod}`]),
    '  containers:',
    `    - name: ${o.container ?? 'app'}`,
    `      image: ${o.image ?? 'busybox:1'}`,
    ...(o.command ? [`      command: ${flow(o.command)}`] : []),
    ...indent('      ', o.lines ?? []),
    ...indent('  ', o.podLines ?? []),
  ];
}

const head = (apiVersion: string, kind: string, name: string, annotations?: Record<string, string>) => [
  `apiVersion: ${apiVersion}`,
  `kind: ${kind}`,
  'metadata:',
  `  name: ${name}`,
  ...(annotations ? ['  annotations:', ...Object.entries(annotations).map(([k, v]) => `    ${k}: ${flow(v)}`)] : []),
];

/** A Deployment or StatefulSet whose pods carry the label app=<name>. */
function workload(kind: 'Deployment' | 'StatefulSet', name: string, o: WorkloadOptions, specLines: string[] = []): string {
  return [
    ...head('apps/v1', kind, name),
    'spec:',
    ...specLines,
    `  replicas: ${o.replicas ?? 1}`,
    `  selector: { matchLabels: { app: ${name} } }`,
    '  template:',
    `    metadata: { labels: { app: ${name} } }`,
    ...indent('    ', podSpec(o)),
    '',
  ].join('\n');
}

export const deployment = (name: string, o: WorkloadOptions = {}) => workload('Deployment', name, o);

/** A StatefulSet governed by the headless Service `name`. */
export const statefulSet = (name: string, o: WorkloadOptions = {}) => workload('StatefulSet', name, o, [`  serviceName: ${name}`]);

/** A Deployment of one replica that sleeps: a workload that is ready whenever the test says. */
export const sleeper = (name: string, image = 'busybox:1') => deployment(name, { image, command: SLEEP });

export const pod = (name: string, o: PodOptions = {}) => [...head('v1', 'Pod', name), ...podSpec(o), ''].join('\n');

export function job(name: string, o: JobOptions = {}): string {
  return [
    ...head('batch/v1', 'Job', name, o.annotations),
    'spec:',
    ...(o.backoffLimit === undefined ? [] : [`  backoffLimit: ${o.backoffLimit}`]),
    '  template:',
    ...indent('    ', podSpec({ restartPolicy: 'Never', ...o })),
    '',
  ].join('\n');
}

/** A Job that runs as a skiff hook (annotation skiff.io/hook) and exits 0. */
export const hookJob = (name: string, hook: 'pre-deploy' | 'post-deploy' = 'pre-deploy') =>
  job(name, { backoffLimit: 0, container: name, command: ['sh', '-c', 'echo migrating'], annotations: { 'skiff.io/hook': hook } });

export const configMap = (name: string, data: Record<string, string> = { greeting: 'hello' }, annotations?: Record<string, string>) =>
  [...head('v1', 'ConfigMap', name, annotations), 'data:', ...Object.entries(data).map(([k, v]) => `  ${k}: ${flow(v)}`), ''].join('\n');

export const service = (name: string) =>
  [...head('v1', 'Service', name), 'spec:', `  selector: { app: ${name} }`, '  ports:', '    - port: 80', '      targetPort: 8080', ''].join('\n');

export const ingress = (name: string) =>
  [
    ...head('networking.k8s.io/v1', 'Ingress', name),
    'spec:',
    '  rules:',
    `    - host: ${name}.example.test`,
    '      http:',
    '        paths:',
    '          - path: /',
    '            pathType: Prefix',
    '            backend:',
    `              service: { name: ${name}, port: { number: 80 } }`,
    '',
  ].join('\n');

/** Documents joined into one multi-document YAML file. */
export const docs = (...parts: string[]) => `${parts.map((p) => p.replace(/\n$/, '')).join('\n---\n')}\n`;

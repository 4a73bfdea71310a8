import type { ApiFields } from '../../kube/objects.js';
import type { ContainerCheck, LintContext, PodTemplateCheck, Report } from '../check.js';
import { namespaceOf, type PodTemplate } from '../pod-templates.js';

/** A pod's reference to a ConfigMap or Secret (or to keys of one). */
interface ConfigReference {
  field: string;
  kind: 'ConfigMap' | 'Secret';
  name: unknown;
  keys: unknown[];
  optional: unknown;
}

/** The keys of the ConfigMap or Secret, rendered or in the release's namespace; undefined when neither has it. */
function knownKeys(kind: ConfigReference['kind'], name: string, t: PodTemplate, ctx: LintContext): Set<string> | undefined {
  const { manifests, namespace, live } = ctx.input;
  const keysOf = (o: ApiFields) => new Set(Object.keys({ ...(o.data ?? {}), ...(o.binaryData ?? {}), ...(o.stringData ?? {}) }));
  const r = manifests.find((x) => x.object.kind === kind && x.object.metadata.name === name && namespaceOf(x.object, namespace) === t.namespace);
  if (r) return keysOf(r.object);
  if (t.namespace !== namespace) return undefined;
  const l = (kind === 'ConfigMap' ? live?.configMaps : live?.secrets)?.find((x) => x.metadata.name === name);
  return l ? keysOf(l) : undefined;
}

function checkReference({ field, kind, name, keys, optional }: ConfigReference, t: PodTemplate, ctx: LintContext, report: Report): void {
  if (optional === true || typeof name !== 'string') return;
  const have = knownKeys(kind, name, t, ctx);
  if (!have) {
    report(
      field,
      `${kind}/${name} is neither rendered${ctx.input.live ? ' nor in namespace ' + t.namespace : ''}`,
      `add the ${kind} to .kube/ (or create it in the cluster), correct the name, or mark the reference optional: true`,
    );
    return;
  }
  for (const key of keys) {
    if (typeof key !== 'string' || have.has(key)) continue;
    report(field, `${kind}/${name} has no key "${key}" (keys: ${[...have].join(', ') || 'none'})`, `add the key to ${kind}/${name} or correct it`);
  }
}

/** A container's env valueFrom and envFrom references. */
function containerReferences(c: ApiFields, base: string): ConfigReference[] {
  const refs: ConfigReference[] = [];
  ((c.env ?? []) as ApiFields[]).forEach((e, i) => {
    const cm = e.valueFrom?.configMapKeyRef as ApiFields | undefined;
    const sec = e.valueFrom?.secretKeyRef as ApiFields | undefined;
    const at = `${base}.env[${i}].valueFrom`;
    if (cm) refs.push({ field: `${at}.configMapKeyRef`, kind: 'ConfigMap', name: cm.name, keys: [cm.key], optional: cm.optional });
    if (sec) refs.push({ field: `${at}.secretKeyRef`, kind: 'Secret', name: sec.name, keys: [sec.key], optional: sec.optional });
  });
  ((c.envFrom ?? []) as ApiFields[]).forEach((e, i) => {
    const cm = e.configMapRef as ApiFields | undefined;
    const sec = e.secretRef as ApiFields | undefined;
    if (cm) refs.push({ field: `${base}.envFrom[${i}].configMapRef`, kind: 'ConfigMap', name: cm.name, keys: [], optional: cm.optional });
    if (sec) refs.push({ field: `${base}.envFrom[${i}].secretRef`, kind: 'Secret', name: sec.name, keys: [], optional: sec.optional });
  });
  return refs;
}

/** A pod's configMap, secret and projected volumes. */
function volumeReferences(t: PodTemplate): ConfigReference[] {
  const refs: ConfigReference[] = [];
  const keys = (items: unknown) => ((items ?? []) as ApiFields[]).map((x) => x.key as unknown);
  const add = (field: string, kind: ConfigReference['kind'], source: ApiFields, name: unknown) =>
    refs.push({ field, kind, name, keys: keys(source.items), optional: source.optional });
  ((t.spec.volumes ?? []) as ApiFields[]).forEach((v, i) => {
    const field = `${t.path}spec.volumes[${i}]`;
    if (v.configMap) add(`${field}.configMap`, 'ConfigMap', v.configMap as ApiFields, v.configMap.name);
    if (v.secret) add(`${field}.secret`, 'Secret', v.secret as ApiFields, v.secret.secretName);
    ((v.projected?.sources ?? []) as ApiFields[]).forEach((s, j) => {
      if (s.configMap) add(`${field}.projected.sources[${j}].configMap`, 'ConfigMap', s.configMap as ApiFields, s.configMap.name);
      if (s.secret) add(`${field}.projected.sources[${j}].secret`, 'Secret', s.secret as ApiFields, s.secret.name);
    });
  });
  return refs;
}

/** An env reference to a ConfigMap or Secret (or a key of one) that is neither rendered nor in the namespace: the pod never starts. */
export const missingConfigInEnv: ContainerCheck = {
  check: 'missing-config',
  on: 'container',
  run(c, t, ctx, report) {
    for (const ref of containerReferences(c.container, c.field)) checkReference(ref, t, ctx, report);
  },
};

/** The same for the pod's volumes. */
export const missingConfigInVolumes: PodTemplateCheck = {
  check: 'missing-config',
  on: 'pod-template',
  run(t, ctx, report) {
    for (const ref of volumeReferences(t)) checkReference(ref, t, ctx, report);
  },
};

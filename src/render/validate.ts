import { isClusterScoped } from '../kinds/table.js';
import { apiGroup, describeObject, objectKey } from '../kube/object-key.js';
import { HOOK_ANNOTATION, MANAGED_BY_LABEL, RELEASE_LABEL, RELEASE_NAMESPACE_ANNOTATION, type KubeObject, type Manifest } from '../kube/objects.js';
import { HOOKS } from '../kinds/apply-order.js';
import { ConfigError } from '../errors.js';
import { problemAt, type RenderedFile } from './template.js';
import { isPlainMap } from './values.js';

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const RBAC_KINDS = new Set(['Role', 'ClusterRole', 'RoleBinding', 'ClusterRoleBinding']);

const KIND = /^[A-Za-z][A-Za-z0-9]*$/;
/** The type of the Secrets release records are stored in (src/release/record-secrets.ts). */
const RELEASE_RECORD_TYPE = 'skiff.io/release.v1';

/** A release name must be a DNS label of at most 53 characters. */
export function checkReleaseName(release: string, env: string): void {
  if (!(release.length <= 53 && DNS_LABEL.test(release))) {
    throw new ConfigError(
      `release name "${release}" must be a DNS label of at most 53 characters (lower-case letters, digits and "-"); set environments.${env}.release in skiff.yaml`,
    );
  }
}

/** What the API server would say about a name, or undefined when it is valid. */
function nameProblem(kind: string, name: string): string | undefined {
  if (RBAC_KINDS.has(kind)) {
    // RBAC names are path segments: "system:aggregate-to-view" is fine.
    return name === '.' || name === '..' || /[/%]/.test(name) ? 'must not be "." or ".." or contain "/" or "%"' : undefined;
  }
  if (kind === 'Namespace' && !(name.length <= 63 && DNS_LABEL.test(name))) {
    return 'must be a DNS label: at most 63 lower-case letters, digits and "-", starting and ending with a letter or digit';
  }
  if (kind === 'Service' && !(name.length <= 63 && DNS_1035_LABEL.test(name))) {
    return 'must be a DNS-1035 label: at most 63 lower-case letters, digits and "-", starting with a letter and ending with a letter or digit';
  }
  if (!(name.length <= 253 && DNS_SUBDOMAIN.test(name))) {
    return 'must be a DNS subdomain: at most 253 lower-case letters, digits, "-" and ".", starting and ending with a letter or digit';
  }
  return undefined;
}

function clusterScopedCustomKinds(manifests: Manifest[]): Set<string> {
  const out = new Set<string>();
  for (const { object } of manifests) {
    if (object.kind !== 'CustomResourceDefinition') continue;
    const spec = object.spec as { group?: unknown; scope?: unknown; names?: { kind?: unknown } } | undefined;
    if (spec?.scope === 'Cluster' && typeof spec.group === 'string' && typeof spec.names?.kind === 'string') {
      out.add(`${spec.group}/${spec.names.kind}`);
    }
  }
  return out;
}

function checkStringMap(r: RenderedFile, line: number, who: string, field: string, map: unknown, isLabels: boolean): void {
  if (map === undefined || map === null) return;
  if (!isPlainMap(map)) throw problemAt(r, line, `${who}: metadata.${field} must be a mapping of strings`);
  for (const [k, v] of Object.entries(map)) {
    if (typeof v !== 'string') {
      throw problemAt(r, line, `${who}: metadata.${field}.${k} must be a string, found ${JSON.stringify(v)}; quote it`);
    }
    if (isLabels && !(v.length <= 63 && LABEL_VALUE.test(v))) {
      throw problemAt(
        r,
        line,
        `${who}: label ${k}: "${v}" is not a valid label value: at most 63 letters, digits, "-", "_" and ".", starting and ending with a letter or digit`,
      );
    }
  }
}

/**
 * Checks every object as the API server would (names, namespaces, labels,
 * annotations, hooks, duplicates) and completes it in place: the release
 * namespace where none is given, skiff's labels, and the annotation naming
 * the release's namespace.
 */
export function validateAndComplete(
  manifests: Manifest[],
  fileOf: Map<Manifest, RenderedFile>,
  input: { namespace: string; release: string; annotations?: Record<string, string> },
): void {
  const customClusterKinds = clusterScopedCustomKinds(manifests);
  const seen = new Map<string, Manifest>();
  for (const m of manifests) {
    const r = fileOf.get(m)!;
    const line = m.source.line;
    const o = m.object as unknown as Record<string, unknown>;
    for (const field of ['apiVersion', 'kind'] as const) {
      if (o[field] === undefined) throw problemAt(r, line, `missing ${field}; every object needs apiVersion, kind and metadata.name`);
      if (typeof o[field] !== 'string' || o[field] === '') throw problemAt(r, line, `${field} must be a non-empty string, found ${JSON.stringify(o[field])}`);
    }
    const kind = o.kind as string;
    // A kind is a CamelCase identifier to the API server, and part of a file name for render --output-dir.
    if (!KIND.test(kind)) throw problemAt(r, line, `kind ${JSON.stringify(kind)} is not a kind: letters and digits, starting with a letter (e.g. ConfigMap)`);
    if (kind === 'List' || kind.endsWith('List')) {
      if (Array.isArray(o.items)) throw problemAt(r, line, `kind: ${kind} is not applied as such; put each item in its own YAML document (separated by ---)`);
    }
    const meta = o.metadata;
    if (meta === undefined || meta === null) throw problemAt(r, line, `${kind}: missing metadata.name; every object needs apiVersion, kind and metadata.name`);
    if (!isPlainMap(meta)) throw problemAt(r, line, `${kind}: metadata must be a mapping`);
    if (meta.name === undefined || meta.name === null) {
      const hint = meta.generateName !== undefined ? ' (generateName cannot be applied: give the object a fixed name)' : '';
      throw problemAt(r, line, `${kind}: missing metadata.name${hint}; every object needs apiVersion, kind and metadata.name`);
    }
    if (typeof meta.name !== 'string') throw problemAt(r, line, `${kind}: metadata.name must be a string, found ${JSON.stringify(meta.name)}`);
    const name = meta.name;
    const who = `${kind} "${name}"`;
    const bad = nameProblem(kind, name);
    if (bad) throw problemAt(r, line, `${who}: metadata.name ${bad}`);
    checkStringMap(r, line, who, 'labels', meta.labels, true);
    checkStringMap(r, line, who, 'annotations', meta.annotations, false);
    // A template (a chart's above all) must not plant a release record: it would be another release's history and rollback.
    if (kind === 'Secret' && (o.type === RELEASE_RECORD_TYPE || (meta.labels as Record<string, unknown> | undefined)?.owner === 'skiff')) {
      throw problemAt(r, line, `${who}: is a skiff release record (type ${RELEASE_RECORD_TYPE} or label owner: skiff); templates cannot write release records`);
    }
    const hook = (meta.annotations as Record<string, string> | undefined)?.[HOOK_ANNOTATION];
    if (hook !== undefined && !(HOOKS as readonly string[]).includes(hook)) {
      throw problemAt(r, line, `${who}: annotation ${HOOK_ANNOTATION}: "${hook}" is not a hook; use ${HOOKS.map((h) => `"${h}"`).join(' or ')}`);
    }

    const clusterScoped = isClusterScoped(kind) || customClusterKinds.has(`${apiGroup(o.apiVersion as string)}/${kind}`);
    const { name: _name, namespace, labels, ...rest } = meta;
    let ns: string | undefined;
    if (!clusterScoped) {
      if (namespace === undefined || namespace === null || namespace === '') ns = input.namespace;
      else if (typeof namespace !== 'string' || !(namespace.length <= 63 && DNS_LABEL.test(namespace))) {
        throw problemAt(r, line, `${who}: metadata.namespace ${JSON.stringify(namespace)} is not a namespace name (a DNS label)`);
      } else ns = namespace;
    }
    // Rebuilt so that name and namespace lead, as kubectl prints them; a
    // namespace on a cluster-scoped object is dropped, as the API server does.
    const metadata: KubeObject['metadata'] = { name };
    if (ns !== undefined) metadata.namespace = ns;
    metadata.labels = { ...(labels as Record<string, string> | undefined), [MANAGED_BY_LABEL]: 'skiff', [RELEASE_LABEL]: input.release };
    Object.assign(metadata, rest);
    if (input.annotations && Object.keys(input.annotations).length) metadata.annotations = { ...(metadata.annotations ?? {}), ...input.annotations };
    metadata.annotations = { ...(metadata.annotations ?? {}), [RELEASE_NAMESPACE_ANNOTATION]: input.namespace };
    m.object.metadata = metadata;

    const key = objectKey(m.object);
    const first = seen.get(key);
    if (first) {
      throw problemAt(
        r,
        line,
        `duplicate object ${describeObject(m.object)}: also defined at ${first.source.file}:${first.source.line}; each object (kind, name, namespace) must be defined once`,
      );
    }
    seen.set(key, m);
  }
}

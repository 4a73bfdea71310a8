import type { KubeObject } from './objects.js';

type Identified = Pick<KubeObject, 'apiVersion' | 'kind'> & { metadata: { name: string; namespace?: string } };

/** "apps/v1" → "apps"; "v1" → "" (the core group). */
export function apiGroup(apiVersion: string): string {
  const slash = apiVersion.lastIndexOf('/');
  return slash < 0 ? '' : apiVersion.slice(0, slash);
}

/**
 * `<group>/<kind>/<namespace>/<name>`: the identity of an object across API
 * versions, so that apps/v1 and apps/v1beta2 of one Deployment compare equal
 * for duplicate detection and pruning. Cluster-scoped objects have "" as namespace.
 */
export function objectKey(obj: Identified): string {
  return `${apiGroup(obj.apiVersion)}/${obj.kind}/${obj.metadata.namespace ?? ''}/${obj.metadata.name}`;
}

/** `Deployment "web"` or `Deployment "web" in namespace "shop"`, for messages. */
export function describeObject(obj: Identified): string {
  const ns = obj.metadata.namespace;
  return `${obj.kind} "${obj.metadata.name}"${ns ? ` in namespace "${ns}"` : ''}`;
}

/** `Deployment/web`: how progress lines and results name an object. */
export function objectRef(obj: { kind: string; metadata: { name: string } }): string {
  return `${obj.kind}/${obj.metadata.name}`;
}

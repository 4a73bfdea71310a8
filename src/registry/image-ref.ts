/**
 * Image references, "host[:port]/path[:tag][@digest]", taken apart. Pure:
 * the one place that knows where the registry host ends and the tag begins.
 */
export interface ImageRef {
  /** The registry host ("docker.io" when the reference names none). */
  host: string;
  /** The repository's path on its registry: "hello/app". */
  path: string;
  tag?: string;
  /** "sha256:<64 hex>" */
  digest?: string;
}

/** The registry host of an image reference or repository prefix ("127.0.0.1:5000/hello" → "127.0.0.1:5000"). */
export function registryHost(repository: string): string {
  const first = repository.split('/')[0] ?? repository;
  return first.includes('.') || first.includes(':') || first === 'localhost' ? first : 'docker.io';
}

/** The repository's path on its registry: "127.0.0.1:5000/hello/app" → "hello/app". */
export function repositoryPath(repository: string): string {
  return repository.split('/').slice(1).join('/');
}

export function parseImageRef(ref: string): ImageRef {
  const at = ref.indexOf('@');
  const digest = at >= 0 ? ref.slice(at + 1) : undefined;
  const named = at >= 0 ? ref.slice(0, at) : ref;
  // A tag is after the last ":" that follows the last "/" (a ":" before it is the registry's port).
  const colon = named.lastIndexOf(':');
  const hasTag = colon > named.lastIndexOf('/');
  const repository = hasTag ? named.slice(0, colon) : named;
  const host = registryHost(repository);
  const path = host === repository.split('/')[0] ? repositoryPath(repository) : repository;
  return { host, path, tag: hasTag ? named.slice(colon + 1) : undefined, digest };
}

import { InfrastructureError } from '../errors.js';

/** No registry answer (manifest, tag list, token, image config) is read past this size. */
export const MAX_REGISTRY_RESPONSE_BYTES = 16 * 1024 * 1024;

/** Every registry request (token requests included) gives up after this long. */
export const REGISTRY_TIMEOUT_MS = 30_000;

/** A response body, refused once it passes `max` bytes: a registry's answers are not trusted to be small. */
export async function readBounded(res: Response, what: string, max = MAX_REGISTRY_RESPONSE_BYTES): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? 0);
  const tooLarge = () => new InfrastructureError(`${what} is larger than ${max} bytes; refusing it`);
  if (declared > max) {
    await res.body?.cancel();
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of (res.body ?? []) as AsyncIterable<Uint8Array>) {
    size += chunk.length;
    if (size > max) {
      await res.body?.cancel().catch(() => {});
      throw tooLarge();
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

export async function readJson(res: Response, what: string): Promise<unknown> {
  const text = (await readBounded(res, what)).toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new InfrastructureError(`${what} is not JSON (${text.slice(0, 80).replace(/\s+/g, ' ')}…)`);
  }
}

/** Whether a registry host is spoken to over plain HTTP: loopback (as the Engine allows) or listed in SKIFF_INSECURE_REGISTRIES. */
export function isInsecureRegistry(host: string, env: NodeJS.ProcessEnv): boolean {
  return /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$/.test(host) || (env.SKIFF_INSECURE_REGISTRIES ?? '').split(',').includes(host);
}

/** Plain HTTP for loopback and insecure registries, HTTPS for everything else. */
export function registryBaseUrl(host: string, env: NodeJS.ProcessEnv): string {
  return `${isInsecureRegistry(host, env) ? 'http' : 'https'}://${host === 'docker.io' ? 'registry-1.docker.io' : host}`;
}

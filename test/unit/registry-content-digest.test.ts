// A manifest read with its body is the content its digest names (issue 22, review): a registry
// that sends other bytes for a digest, or names a digest its answer does not have, is refused, as
// blobs are. The index merged for a multi-platform image, the provenance a release records and the
// digest `--sign` signs are all read this way.
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { InfrastructureError } from '../../src/errors.js';
import { RegistryClient } from '../../src/registry/registry-client.js';

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise<void>((r) => s.close(() => r()));
});

const digestOf = (body: string) => `sha256:${createHash('sha256').update(body).digest('hex')}`;
const INDEX = 'application/vnd.oci.image.index.v1+json';
const signed = JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [] });
const other = JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [{ mediaType: INDEX, digest: `sha256:${'e'.repeat(64)}`, size: 1 }] });

/** A registry on 127.0.0.1 that answers every manifest request with `body` and the header `claimed`. */
async function registry(body: string, claimed: string): Promise<string> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': INDEX, 'docker-content-digest': claimed });
    res.end(body);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('a manifest read with its body is the content its digest names', () => {
  it('by digest: other bytes than the digest names are refused', async () => {
    const host = await registry(other, digestOf(signed));
    const e = await new RegistryClient(host).manifest('app', digestOf(signed), true).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(InfrastructureError);
    expect((e as Error).message).toBe(`registry ${host} sent manifest app@${digestOf(signed)} with content ${digestOf(other)}; refusing it`);
  });

  it('by tag: a Docker-Content-Digest its bytes do not have is refused', async () => {
    const host = await registry(other, digestOf(signed));
    await expect(new RegistryClient(host).manifest('app', 'v1', true)).rejects.toThrow(/sent manifest app@sha256:[0-9a-f]{64} with content sha256:/);
  });

  it('the content the digest names, by digest and by tag, is read', async () => {
    const host = await registry(signed, digestOf(signed));
    for (const ref of [digestOf(signed), 'v1']) {
      const m = await new RegistryClient(host).manifest('app', ref, true);
      expect(m?.digest).toBe(digestOf(signed));
      expect(m?.body?.toString()).toBe(signed);
    }
  });
});

import type { RunContext } from '../context.js';
import type { ReleaseRecord } from '../release/release-record.js';
import { indexProvenance, parseIndex } from '../registry/image-index.js';
import { parseImageRef, registryHost } from '../registry/image-ref.js';
import { RegistryAccess } from '../registry/registry-client.js';

/**
 * The provenance of the release's own images, for its record (commit → image digest →
 * provenance): each image index read from the registry by the digest the release pins, and per
 * platform its manifest and the attestation manifest holding the SLSA provenance. Read at deploy
 * time, so a deploy in a later CI job than the build finds it as well. Only images with
 * attestations appear; a registry that does not answer costs the record its provenance, never the deploy.
 */
export async function releaseProvenance(ctx: RunContext, images: Record<string, string>, registry: string | undefined): Promise<ReleaseRecord['provenance']> {
  if (!registry) return undefined;
  const own = registryHost(registry);
  const registries = new RegistryAccess(ctx.env, ctx.ci);
  const out: NonNullable<ReleaseRecord['provenance']> = {};
  await Promise.all(
    Object.entries(images).map(async ([name, ref]) => {
      const { host, path, digest } = parseImageRef(ref);
      // Only the project's registry is asked: the release's own images are there.
      if (!digest || !/^sha256:[0-9a-f]{64}$/.test(digest) || host !== own) return;
      try {
        const { client } = await registries.for(`${host}/${path}`);
        const m = await client.manifest(path, digest, true);
        const index = parseIndex(m?.body, m?.mediaType);
        const provenance = index ? indexProvenance(index).filter((p) => p.attestation) : [];
        if (provenance.length) out[name] = provenance.map((p) => ({ platform: p.platform, manifest: p.manifest, attestation: p.attestation! }));
      } catch (e) {
        ctx.reporter.debug(`${name}: provenance of ${ref} not read (${(e as Error).message})`);
      }
    }),
  );
  return Object.keys(out).length ? out : undefined;
}

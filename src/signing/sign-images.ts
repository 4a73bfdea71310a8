import { signArgs, verifyArgs, cosignErrorLine, type Cosign } from '../adapters/cosign.js';
import type { RunContext } from '../context.js';
import { mapLimit } from '../core/concurrency.js';
import { ConfigError, InfrastructureError } from '../errors.js';
import type { RegistryAccess } from '../registry/registry-client.js';
import { registryHost, repositoryPath } from '../registry/image-ref.js';
import type { Redactor } from '../secrets/redact.js';
import type { SigningKey } from './signing-key.js';

/** An image's cosign signature, as `skiff build -o json` names it. */
export interface ImageSignature {
  signed: true;
  /** The tag cosign keeps the signature under: `<repository>:sha256-<hex>.sig`. */
  tag: string;
  /** The signature manifest's digest, when the registry says. */
  digest?: string;
  /** Signed by this run; false: the digest carried a signature of this key already. */
  new: boolean;
}

/** The tag cosign stores a digest's signatures under. Pure. */
export function signatureTag(repository: string, digest: string): string {
  return `${repository}:${digest.replace(':', '-')}.sig`;
}

export interface ImageToSign {
  image: string;
  repository: string;
  digest: string;
  /** This run built or pushed it; false: it was in the registry already, under its content tag. */
  ours: boolean;
}

/** At most this many cosign processes at once: each is a short Go program, and the machine may have two cores. */
const SIGN_PARALLEL = 4;

/**
 * Signs each pushed digest with the run's key, unless a signature of this key
 * is there already: checked with `cosign verify` against the key's public half
 * rather than by the .sig tag alone, which any key's signature creates (and
 * signing again would only add a second, identical-purpose signature).
 *
 * Only what this run built or pushed is signed. An image found up to date in the
 * registry is whatever its content tag points at now, and anyone who may push
 * there could have put another image under that tag: signing it would turn a
 * registry write into a signature deploy.verify trusts. Such an image must carry
 * this key's signature already (a pipeline that signs signed it when it built
 * it); otherwise the run stops, exit 2, before anything is signed.
 */
export async function signImages(
  ctx: RunContext,
  cosign: Cosign,
  key: SigningKey,
  registries: RegistryAccess,
  images: ImageToSign[],
  redactor: Redactor,
): Promise<Map<string, ImageSignature>> {
  const auth: Parameters<Cosign['useRegistryAuth']>[0] = {};
  for (const img of images) {
    const { credentials } = await registries.for(img.repository);
    if (credentials) auth[registryHost(img.repository)] = credentials;
  }
  await cosign.useRegistryAuth(auth);
  const present = new Map(
    await mapLimit(images, SIGN_PARALLEL, async (img): Promise<[string, boolean]> => {
      const ref = { host: registryHost(img.repository), name: `${img.repository}@${img.digest}` };
      return [img.image, (await cosign.run(verifyArgs(ref, key.publicKeyFile, cosign.trustedRoot, ctx.env))).code === 0];
    }),
  );
  const foreign = images.find((img) => !img.ours && !present.get(img.image));
  if (foreign)
    throw new ConfigError(
      `image ${foreign.image}: ${foreign.repository}@${foreign.digest} was already in the registry (this run did not build it) and carries no signature of this key; skiff signs only images it built, since whoever can push there could have put another image under its tag. Check it and sign it with cosign, or delete its content tag so the next build makes and signs it`,
    );
  const signed = await mapLimit(images, SIGN_PARALLEL, async (img): Promise<[string, ImageSignature]> => {
    const ref = { host: registryHost(img.repository), name: `${img.repository}@${img.digest}` };
    const tag = signatureTag(img.repository, img.digest);
    let fresh = false;
    if (present.get(img.image)) {
      ctx.reporter.status(img.image, 'signed', `${ref.name} already carries a signature of this key`);
    } else {
      ctx.reporter.status(img.image, 'signing', ref.name);
      const r = await cosign.run(signArgs(ref, key.keyFile, ctx.env), key.password);
      if (r.code !== 0) throw new InfrastructureError(redactor.text(`image ${img.image}: cosign could not sign ${ref.name}: ${cosignErrorLine(r.stderr)}`));
      fresh = true;
      ctx.reporter.status(img.image, 'signed', tag);
    }
    const { client } = await registries.for(img.repository);
    const digest = (await client.manifest(repositoryPath(img.repository), tag.slice(img.repository.length + 1)).catch(() => undefined))?.digest;
    return [img.image, { signed: true, tag, ...(digest && { digest }), new: fresh }];
  });
  return new Map(signed);
}

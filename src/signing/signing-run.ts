import { Cosign } from '../adapters/cosign.js';
import type { BuildResult, ImageBuildResult } from '../build/build-images.js';
import type { RunContext } from '../context.js';
import { InfrastructureError } from '../errors.js';
import { RegistryAccess } from '../registry/registry-client.js';
import { Redactor } from '../secrets/redact.js';
import { signImages, type ImageSignature } from './sign-images.js';
import { openSigningKey, type SigningKey } from './signing-key.js';

/** `skiff build --push --sign` and `ship --sign`: the key opened before anything is built, cosign's private folder, the masks. */
export interface SigningRun {
  cosign: Cosign;
  key: SigningKey;
  /** Masks COSIGN_PASSWORD and the key's text in everything the run prints or throws. */
  redactor: Redactor;
  close(): Promise<void>;
}

/** Finds cosign and opens the key (exit 2 naming SKIFF_COSIGN_KEY or COSIGN_PASSWORD when it cannot). */
export async function openSigning(ctx: RunContext, cwd: string): Promise<SigningRun> {
  const cosign = await Cosign.open(ctx.env, '--sign', ctx.signal);
  try {
    const key = await openSigningKey(cosign, ctx.env, cwd);
    return { cosign, key, redactor: new Redactor(new Map(key.secrets)), close: () => cosign.close() };
  } catch (e) {
    await cosign.close();
    throw e;
  }
}

/** Runs `body` with the signing key's secrets masked in what it reports and throws; cosign's folder removed after. */
export async function withSigning<T>(ctx: RunContext, signing: SigningRun, body: (ctx: RunContext) => Promise<T>): Promise<T> {
  try {
    return await body({ ...ctx, reporter: signing.redactor.reporter(ctx.reporter) });
  } catch (e) {
    throw signing.redactor.error(e);
  } finally {
    await signing.close();
  }
}

export type SignedImageResult = ImageBuildResult & { signature?: ImageSignature };

/** Signs every image of a push build by digest: those built or pushed now; one already in the registry must be signed already. */
export async function signBuildResult(ctx: RunContext, signing: SigningRun, result: BuildResult): Promise<BuildResult & { images: SignedImageResult[] }> {
  const images = result.images.map((img) => {
    if (!img.digest?.startsWith('sha256:'))
      throw new InfrastructureError(`image ${img.image}: the registry gave no digest for ${img.reference}; cannot sign it`);
    return { image: img.image, repository: img.repository, digest: img.digest, ours: img.built || img.pushed };
  });
  const signatures = await signImages(ctx, signing.cosign, signing.key, new RegistryAccess(ctx.env, ctx.ci), images, signing.redactor);
  return { ...result, images: result.images.map((img) => ({ ...img, signature: signatures.get(img.image) })) };
}

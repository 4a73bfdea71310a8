import { readFile, realpath, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Cosign, cosignErrorLine, unsignedVerdict, verifyArgs } from '../adapters/cosign.js';
import { listCommitTree, readCommitFile } from '../adapters/git.js';
import type { RunContext } from '../context.js';
import { mapLimit } from '../core/concurrency.js';
import { ConfigError, InfrastructureError } from '../errors.js';
import type { ApiFields, KubeObject } from '../kube/objects.js';
import { containersOf, objectId, podTemplate } from '../lint/pod-templates.js';
import type { Project } from '../project.js';
import type { RegistryCredentials } from '../registry/credentials.js';
import { parseImageRef } from '../registry/image-ref.js';
import { RegistryAccess } from '../registry/registry-client.js';

/** One image of a release and the objects that run it. */
export interface ImageUse {
  image: string;
  /** `Deployment/web`, … in the order the release renders them. */
  workloads: string[];
}

/**
 * Every container, init container and ephemeral container image of the rendered objects (the
 * release's own and third-party ones), each once. Pure. An object of a kind without a pod template
 * row (a ReplicationController, a chart's custom resource such as an Argo Rollout) is searched for
 * container lists anywhere in it: what it runs is pulled all the same, and an image left out would
 * be deployed unverified.
 */
export function imagesToVerify(objects: readonly KubeObject[], namespace: string): ImageUse[] {
  const uses = new Map<string, ImageUse>();
  for (const object of objects) {
    const t = podTemplate(object, namespace);
    const containers = t ? [...containersOf(t).map((c) => c.container), ...listOf(t.spec.ephemeralContainers)] : containersAnywhere(object);
    for (const container of containers) {
      const image: unknown = container.image;
      if (typeof image !== 'string' || image === '') continue;
      const use = uses.get(image) ?? { image, workloads: [] };
      if (!use.workloads.includes(objectId(object))) use.workloads.push(objectId(object));
      uses.set(image, use);
    }
  }
  return [...uses.values()];
}

const CONTAINER_LISTS = ['initContainers', 'containers', 'ephemeralContainers'];

const listOf = (v: unknown): ApiFields[] => (Array.isArray(v) ? v.filter((c): c is ApiFields => typeof c === 'object' && c !== null) : []);

/** The entries of every container list an object embeds (a pod spec's, wherever it is), each spec's init containers first. Pure. */
function containersAnywhere(value: unknown): ApiFields[] {
  if (Array.isArray(value)) return value.flatMap(containersAnywhere);
  if (typeof value !== 'object' || value === null) return [];
  const fields = value as ApiFields;
  const own = CONTAINER_LISTS.flatMap((key) => listOf(fields[key]));
  return [...own, ...Object.entries(fields).flatMap(([key, v]) => (CONTAINER_LISTS.includes(key) ? [] : containersAnywhere(v)))];
}

/** Where cosign and the registry API find an image: Docker Hub's official images live under library/. Pure. */
export function qualifiedRepository(image: string): { host: string; path: string; repository: string; tag?: string; digest?: string } {
  const ref = parseImageRef(image);
  const path = ref.host === 'docker.io' && !ref.path.includes('/') ? `library/${ref.path}` : ref.path;
  return { host: ref.host, path, repository: `${ref.host}/${path}`, tag: ref.digest ? ref.tag : (ref.tag ?? 'latest'), digest: ref.digest };
}

/** An image as deploy.verify found it. */
export interface VerifiedImage {
  image: string;
  digest: string;
}

type Verdict = VerifiedImage | { use: ImageUse; problem: string };

/** An image reference as Docker's grammar allows its characters; anything else never reaches the registry or cosign. */
const IMAGE_REFERENCE = /^[a-z0-9][a-z0-9._\-/:@]*$/i;

/** Images checked at once: each is one cosign process and a few registry requests. */
const VERIFY_PARALLEL = 4;

/**
 * deploy.verify, before the first write: every image of the release must
 * carry a cosign signature of the configured public key. An image named by
 * tag is resolved to its digest in the registry and that digest verified; the
 * tag can be moved to another image after this check (only a reference by
 * digest pins what the nodes pull). Unsigned, or signed only by other keys:
 * ConfigError (exit 2) naming the image and its workloads, nothing applied.
 * Returns undefined when skiff.yaml asks for no verification.
 */
export async function verifyReleaseImages(
  ctx: RunContext,
  project: Project,
  objects: readonly KubeObject[],
  namespace: string,
): Promise<VerifiedImage[] | undefined> {
  const verify = project.config.deploy.verify;
  if (!verify) return undefined;
  const where = `${project.config.file}:${project.config.positions.of('deploy.verify.key').line}`;
  const publicKey = await readVerifyKey(project, verify.key, where);
  const uses = imagesToVerify(objects, namespace);
  if (uses.length === 0) return [];
  const cosign = await Cosign.open(ctx.env, `deploy.verify (${where})`, ctx.signal);
  try {
    const keyFile = join(cosign.home, 'verify.pub');
    await writeFile(keyFile, publicKey, { mode: 0o600 });
    const registries = new RegistryAccess(ctx.env, ctx.ci);
    const auth: Record<string, RegistryCredentials> = {};
    for (const use of uses) {
      const { host, repository } = qualifiedRepository(use.image);
      const { credentials } = await registries.for(repository);
      if (credentials) auth[host] = credentials;
    }
    await cosign.useRegistryAuth(auth);
    const verdicts = await mapLimit(uses, VERIFY_PARALLEL, (use) => verifyOne(ctx, cosign, registries, keyFile, use, verify.key));
    const refused = verdicts.filter((v): v is { use: ImageUse; problem: string } => 'problem' in v);
    if (refused.length) {
      const shown = refused.slice(0, 3).map((r) => `${r.use.image} (${r.use.workloads.join(', ')}) ${r.problem}`);
      const more = refused.length > 3 ? `; and ${refused.length - 3} more` : '';
      throw new ConfigError(
        `deploy.verify (${where}): ${shown.join('; ')}${more}; nothing applied — sign the images with "skiff build --push --sign" (or cosign sign --key) and the private key of ${verify.key}`,
      );
    }
    const verified = verdicts as VerifiedImage[];
    ctx.reporter.info(`verified ${verified.length} image${verified.length === 1 ? '' : 's'} against ${verify.key}`);
    return verified;
  } finally {
    await cosign.close();
  }
}

async function verifyOne(ctx: RunContext, cosign: Cosign, registries: RegistryAccess, keyFile: string, use: ImageUse, keyName: string): Promise<Verdict> {
  if (!IMAGE_REFERENCE.test(use.image)) return { use, problem: 'is not a valid image reference' };
  const q = qualifiedRepository(use.image);
  // The digest the tag points at now: what is verified. The tag can move afterwards; a digest reference cannot.
  const { client } = await registries.for(q.repository);
  const m = await client.manifest(q.path, q.digest ?? q.tag!);
  if (!m) return { use, problem: 'is not in the registry' };
  const digest = q.digest ?? m.digest;
  if (!digest.startsWith('sha256:')) throw new InfrastructureError(`deploy.verify: registry ${q.host} gave no digest for ${use.image}`);
  const name = `${q.repository}@${digest}`;
  const r = await cosign.run(verifyArgs({ host: q.host, name }, keyFile, cosign.trustedRoot, ctx.env));
  if (r.code === 0) {
    ctx.reporter.debug(`${use.image}: ${digest} signed with ${keyName}`);
    return { image: use.image, digest };
  }
  const verdict = unsignedVerdict(r.code, r.stderr);
  if (verdict === 'unsigned') return { use, problem: `is not signed (${digest.slice(0, 19)}…: no cosign signature)` };
  if (verdict === 'other-key') return { use, problem: `is not signed with ${keyName} (${digest.slice(0, 19)}…: ${cosignErrorLine(r.stderr, 120)})` };
  throw new InfrastructureError(`deploy.verify: cosign could not check ${use.image} (${use.workloads.join(', ')}): ${cosignErrorLine(r.stderr)}`);
}

/**
 * The public key's text from the deployed commit (the working tree with
 * --dev), never through a symlink: a committed link could point anywhere on
 * the machine. ConfigError naming skiff.yaml's line when it is missing or not
 * a public key.
 */
async function readVerifyKey(project: Project, path: string, where: string): Promise<string> {
  let text: string | undefined;
  if (project.mode === 'commit') {
    const entry = (await listCommitTree(project.repo, project.git.commit, path)).find((e) => e.repoPath === path);
    if (entry?.mode === '120000') throw new ConfigError(`${where}: deploy.verify.key ${path} is a symlink; commit the public key itself`);
    text = entry ? (await readCommitFile(project.repo, project.git.commit, path))?.toString('utf8') : undefined;
    if (text === undefined)
      throw new ConfigError(
        `${where}: deploy.verify.key ${path} is not in commit ${project.git.commit.slice(0, 8)}: commit the public key (cosign generate-key-pair writes cosign.pub)`,
      );
  } else {
    const file = join(project.root, path);
    const real = await realpath(file).catch(() => undefined);
    if (real === undefined) throw new ConfigError(`${where}: deploy.verify.key ${path} does not exist`);
    // A symlink at the file or at any folder on the way: the key could come from anywhere on the machine.
    if (real !== join(await realpath(project.root), path))
      throw new ConfigError(`${where}: deploy.verify.key ${path} goes through a symlink; use the public key itself`);
    text = await readFile(real, 'utf8');
  }
  if (!/-----BEGIN PUBLIC KEY-----/.test(text))
    throw new ConfigError(`${where}: deploy.verify.key ${path} is not a public key (PEM "BEGIN PUBLIC KEY"); give cosign.pub`);
  return text;
}

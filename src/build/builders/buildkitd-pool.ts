import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, lutimes, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { childEnv } from '../../adapters/child-env.js';
import type { RunContext } from '../../context.js';
import { ConfigError, InfrastructureError } from '../../errors.js';
import type { Project } from '../../project.js';
import { repositoryPath } from '../../registry/image-ref.js';
import { builderOrder, cacheExportRef, cacheImportTags, cacheRepository, DEFAULT_BRANCHES } from '../builder-pool.js';
import { BuilderDown, BuildkitdClient, CacheExportRefused, findBuildctl, resolveTls, type BuildkitdSecret, type BuildkitdTarget } from '../buildkitd-client.js';
import { contextTar } from '../context-tar.js';
import type { ImagePlan } from '../image-plan.js';
import { BuildKitProgress } from './buildkit-progress.js';
import type { BuilderCandidate, BuildJob, BuiltImage, ImageBuilder } from './image-builder.js';

/**
 * The buildkitd pool: SKIFF_BUILDKIT_HOST (comma-separated addresses, with the certificates of
 * SKIFF_BUILDKIT_CERT_PATH: ca.pem, cert.pem, key.pem) or skiff.yaml's `builder:`; undefined when
 * neither names one (the Docker Engine builds). Certificate files must exist (exit 2 otherwise).
 */
export const buildkitdPool: BuilderCandidate = async (ctx, project) => {
  const targets = poolTargets(ctx, project);
  if (!targets.length) return undefined;
  for (const t of targets) {
    for (const [field, path] of Object.entries(t.tls ?? {})) {
      if (!path) continue;
      const readable = await access(path, constants.R_OK).then(
        () => true,
        () => false,
      );
      if (!readable)
        throw new ConfigError(
          `${t.origin}: ${field} file ${path} of buildkitd ${t.address} does not exist or is not readable; fix the path${t.origin === 'SKIFF_BUILDKIT_HOST' ? ' (SKIFF_BUILDKIT_CERT_PATH)' : ''}`,
        );
    }
  }
  const buildctl = await findBuildctl(ctx.env);
  return new BuildkitdPool(
    targets.map((t) => new BuildkitdClient(buildctl, t, ctx.env)),
    (m) => ctx.reporter.warn(m),
  );
};

function poolTargets(ctx: RunContext, project: Project): BuildkitdTarget[] {
  const { config } = project;
  const where = (path: string) => {
    const p = config.positions.of(path);
    return `${config.file}:${p.line}:${p.col}`;
  };
  const fromEnv = (ctx.env.SKIFF_BUILDKIT_HOST ?? '')
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean);
  if (fromEnv.length) {
    const bad = fromEnv.find((a) => !/^(tcp:\/\/[^\s/]+|unix:\/\/\/\S+)$/.test(a));
    if (bad)
      throw new ConfigError(`SKIFF_BUILDKIT_HOST: "${bad}" is not a buildkitd address; use tcp://host:port or unix:///path/to/buildkitd.sock, comma-separated`);
    const dir = ctx.env.SKIFF_BUILDKIT_CERT_PATH;
    const tls = dir ? { ca: join(dir, 'ca.pem'), cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') } : undefined;
    return fromEnv.map((address) => ({ address, tls: resolveTls(tls, project.root), origin: 'SKIFF_BUILDKIT_HOST' }));
  }
  const several = config.builders.length > 1;
  return config.builders.map((b, i) => ({
    address: b.address,
    tls: resolveTls(b.tls, project.root),
    origin: where(several ? `builder[${i}]` : 'builder'),
  }));
}

/**
 * Several buildkitd: an image goes to the builder its name hashes to (build/builder-pool.ts), so that
 * builder's local cache serves it every time; one that cannot be reached is skipped, with a warning,
 * for the next in the image's order. Each builder is probed once per run. With a registry, buildkitd
 * pushes the image (and the registry cache, mode=max) itself; without one, the Engine loads it.
 */
export class BuildkitdPool implements ImageBuilder {
  readonly takesSecrets = true;
  readonly pushes = true;
  private readonly probes = new Map<string, Promise<string | undefined>>();
  constructor(
    readonly clients: BuildkitdClient[],
    private readonly warn: (message: string) => void,
  ) {}

  /** `image` is what the assignment hashes (the image repository); `label` names it in the warning. */
  async pick(image: string, signal: AbortSignal, label = image): Promise<BuildkitdClient> {
    const byAddress = new Map(this.clients.map((c) => [c.target.address, c]));
    const down: string[] = [];
    for (const address of builderOrder(image, [...byAddress.keys()])) {
      const client = byAddress.get(address)!;
      let probe = this.probes.get(address);
      if (!probe) {
        probe = client.probe(signal).then(
          () => undefined,
          (e: unknown) => {
            if (e instanceof BuilderDown) return e.message;
            throw e;
          },
        );
        this.probes.set(address, probe);
      }
      const why = await probe;
      if (why === undefined) {
        if (down.length) this.warn(`${label}: buildkitd ${down.join(', ')} unreachable; building on ${address} instead`);
        return client;
      }
      down.push(`${address} (${why})`);
    }
    throw new InfrastructureError(
      `no buildkitd builder is reachable: ${down.join('; ')}; start them (scripts/services up) or fix builder: in skiff.yaml or SKIFF_BUILDKIT_HOST`,
    );
  }

  /**
   * Builds on the buildkitd the pool picks: the context (the same filtered files the Engine gets)
   * written to a temporary directory, the registry cache of this branch and the default branch
   * read, this branch's written; pushed from buildkitd, or loaded into the Engine without a registry.
   */
  async build(job: BuildJob): Promise<BuiltImage> {
    const { ctx, project, plan, engine, reporter, signal } = job;
    const client = await this.pick(plan.repository, signal, plan.name);
    const address = client.target.address;
    reporter.status(plan.name, 'building', `${plan.ref} on buildkitd ${address}`);
    const { cacheImports, cacheExport } = job.push ? await registryCache(job) : { cacheImports: [], cacheExport: undefined };
    const progress = new BuildKitProgress(plan, reporter);
    const dir = await mkdtemp(join(tmpdir(), 'skiff-context-'));
    try {
      const source = { kind: project.mode, repo: project.repo } as const;
      const entries = plan.entries.filter((e) => e.path !== '.dockerignore');
      await extractTar(contextTar(source, entries), dir, ctx.env);
      await stampContent(dir, entries);
      const request = {
        contextDir: dir,
        dockerfile: plan.dockerfile,
        target: plan.config.target,
        buildArgs: plan.buildArgs,
        labels: job.labels,
        ref: plan.ref,
        push: job.push,
        load: engine ? (tar: Readable) => engine.loadImage(tar) : undefined,
        cacheImports,
        cacheExport,
        secrets: buildkitdSecrets(project, plan),
        registryAuth: await job.registries.all(),
        env: ctx.env,
        onTrace: progress.onTrace,
        onLog: (line: string) => reporter.debug(`[${plan.name}] ${line}`),
        signal,
      };
      try {
        await client.build(request);
      } catch (e) {
        if (!(e instanceof CacheExportRefused)) throw e;
        reporter.warn(`${plan.name}: buildkitd ${address} could not write the build cache to ${cacheExport} (${e.message}); building again without writing it`);
        await client.build({ ...request, cacheExport: undefined });
      }
    } catch (e) {
      throw progress.failure(e);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    return { builder: 'buildkitd', builtBy: `buildkitd ${address}`, ...progress.finish() };
  }
}

/** The registry cache (mode=max) entries a build reads, those the registry has, and the one it writes. */
async function registryCache({ project, plan, registries, reporter }: BuildJob): Promise<{ cacheImports: string[]; cacheExport?: string }> {
  const cacheRepo = cacheRepository(plan.repository);
  const { client: registry } = await registries.for(cacheRepo);
  const found = await Promise.all(
    cacheImportTags(project.git.branch, DEFAULT_BRANCHES).map((tag) =>
      registry.manifest(repositoryPath(cacheRepo), tag).then(
        (m) => (m ? `${cacheRepo}:${tag}` : undefined),
        () => undefined,
      ),
    ),
  );
  const cacheImports = found.filter((r): r is string => Boolean(r));
  if (cacheImports.length) reporter.debug(`${plan.name}: registry cache from ${cacheImports.join(', ')}`);
  return { cacheImports, cacheExport: cacheExportRef(plan.repository, project.git.branch) };
}

/** The secrets of an image as buildctl takes them (file paths absolute). */
function buildkitdSecrets(project: Project, plan: ImagePlan): BuildkitdSecret[] {
  return plan.config.secrets.map((s) =>
    s.env ? { id: s.id, env: s.env } : { id: s.id, file: isAbsolute(s.file!) ? s.file! : resolve(project.root, s.file!) },
  );
}

/** Writes a tar stream out under dir (GNU tar: owners not kept, nothing outside dir). */
function extractTar(stream: Readable, dir: string, env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const tar = spawn('tar', ['-x', '--no-same-owner', '-C', dir], { stdio: ['pipe', 'ignore', 'pipe'], env: childEnv(env) });
    let stderr = '';
    tar.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    stream.on('error', (e) => {
      tar.kill();
      reject(e);
    });
    tar.on('error', reject);
    tar.on('close', (code) => (code === 0 ? resolvePromise() : reject(new Error(`tar could not write the build context: ${stderr.trim()}`))));
    stream.pipe(tar.stdin);
  });
}

/**
 * buildctl sends a local directory incrementally: a file whose path, size and mtime match what
 * buildkitd kept from an earlier build is not sent again. The context tar carries one fixed mtime
 * (for the Engine's layer cache), so a same-size edit would go unseen; each file's mtime is made
 * a function of its Git blob id instead: unchanged files still skip the transfer, changed ones never
 * do. (BuildKit's COPY cache keys hash content and mode, not mtime.)
 */
async function stampContent(dir: string, entries: ImagePlan['entries']): Promise<void> {
  await Promise.all(
    entries.map((e) => {
      // 2001-09-09 plus up to ~31 years, in microseconds, from 48 bits of the blob id.
      const seconds = 1_000_000_000 + (parseInt(e.oid.slice(0, 12), 16) % 1_000_000_000_000_000) / 1_000_000;
      return lutimes(join(dir, e.path), seconds, seconds);
    }),
  );
}

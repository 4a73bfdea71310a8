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
import {
  BuilderDown,
  BuildkitdClient,
  findBuildctl,
  resolveTls,
  type BuildkitdBuildRequest,
  type BuildkitdSecret,
  type BuildkitdTarget,
} from '../buildkitd-client.js';
import { contextTar } from '../context-tar.js';
import type { ImagePlan } from '../image-plan.js';
import { routePlatforms, type PlatformRoute } from '../platform-routing.js';
import { buildOnce, buildPlatforms } from './buildkitd-platforms.js';
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
 * for the next in the image's order. Each builder is probed once per run (its platforms with it).
 * With a registry, buildkitd pushes the image (with SLSA provenance, and the registry cache,
 * mode=max) itself; without one, the Engine loads it. An image with `platforms:` is built per
 * platform on a builder native for it where the pool has one (buildkitd-platforms.ts).
 */
export class BuildkitdPool implements ImageBuilder {
  readonly takesSecrets = true;
  readonly pushes = true;
  private readonly probes = new Map<string, Promise<{ platforms: string[] } | { down: string }>>();
  private readonly routes = new Map<string, PlatformRoute[]>();
  constructor(
    readonly clients: BuildkitdClient[],
    private readonly warn: (message: string) => void,
  ) {}

  private probe(client: BuildkitdClient, signal: AbortSignal) {
    const address = client.target.address;
    let probe = this.probes.get(address);
    if (!probe) {
      probe = client.probe(signal).then(
        (platforms) => ({ platforms }),
        (e: unknown) => {
          if (e instanceof BuilderDown) return { down: e.message };
          throw e;
        },
      );
      this.probes.set(address, probe);
    }
    return probe;
  }

  /** `image` is what the assignment hashes (the image repository); `label` names it in the warning. */
  async pick(image: string, signal: AbortSignal, label = image): Promise<BuildkitdClient> {
    const byAddress = new Map(this.clients.map((c) => [c.target.address, c]));
    const down: string[] = [];
    for (const address of builderOrder(image, [...byAddress.keys()])) {
      const client = byAddress.get(address)!;
      const probed = await this.probe(client, signal);
      if ('platforms' in probed) {
        if (down.length) this.warn(`${label}: buildkitd ${down.join(', ')} unreachable; building on ${address} instead`);
        return client;
      }
      down.push(`${address} (${probed.down})`);
    }
    throw new InfrastructureError(
      `no buildkitd builder is reachable: ${down.join('; ')}; start them (scripts/services up) or fix builder: in skiff.yaml or SKIFF_BUILDKIT_HOST`,
    );
  }

  /**
   * Before anything is built: every platform of every image with `platforms:` has a builder (the
   * reachable builders asked for their platforms, once), and several platforms go to a registry
   * (the Engine holds one platform per tag).
   */
  async prepare(ctx: RunContext, _project: Project, plans: ImagePlan[], push: boolean): Promise<void> {
    const multi = plans.filter((p) => p.platforms);
    if (!multi.length) return;
    const notPushed = multi.find((p) => !push && p.platforms!.length > 1);
    if (notPushed)
      throw new ConfigError(
        `image ${notPushed.name} is built for ${notPushed.platforms!.join(', ')}: several platforms make an image index, which only a registry holds; add --push, or build one with --platform`,
      );
    const probed = await Promise.all(this.clients.map(async (c) => ({ address: c.target.address, probed: await this.probe(c, ctx.signal) })));
    const up = probed.flatMap(({ address, probed: p }) => ('platforms' in p ? [{ address, platforms: p.platforms }] : []));
    const down = probed.flatMap(({ address, probed: p }) => ('down' in p ? [`${address} (${p.down})`] : []));
    if (!up.length)
      throw new InfrastructureError(`no buildkitd builder is reachable: ${down.join('; ')}; start them or fix builder: in skiff.yaml or SKIFF_BUILDKIT_HOST`);
    if (down.length) this.warn(`buildkitd ${down.join(', ')} unreachable; platforms go to the others`);
    for (const plan of multi) this.routes.set(plan.name, routePlatforms(plan.repository, plan.platforms!, up, plan.name));
  }

  /**
   * Builds on the buildkitd the pool picks: the context (the same filtered files the Engine gets)
   * written to a temporary directory, the registry cache of this branch and the default branch
   * read, this branch's written; pushed from buildkitd, or loaded into the Engine without a registry.
   */
  async build(job: BuildJob): Promise<BuiltImage> {
    const { ctx, project, plan, engine, reporter, signal } = job;
    // Without a registry an image has one platform (prepare): it is loaded from the builder routed for it.
    const routed = this.routes.get(plan.name);
    const routes = job.push ? routed : undefined;
    const byAddress = (address: string) => this.clients.find((c) => c.target.address === address)!;
    const client = routes ? undefined : routed ? byAddress(routed[0]!.address) : await this.pick(plan.repository, signal, plan.name);
    if (client) reporter.status(plan.name, 'building', `${plan.ref} on buildkitd ${client.target.address}`);
    const cache = job.push ? await registryCache(job) : { cacheImports: [], cacheExport: undefined };
    const dir = await mkdtemp(join(tmpdir(), 'skiff-context-'));
    try {
      const source = { kind: project.mode, repo: project.repo } as const;
      const entries = plan.entries.filter((e) => e.path !== '.dockerignore');
      await extractTar(contextTar(source, entries), dir, ctx.env);
      await stampContent(dir, entries);
      const request: BuildkitdBuildRequest = {
        contextDir: dir,
        dockerfile: plan.dockerfile,
        target: plan.config.target,
        buildArgs: plan.buildArgs,
        labels: job.labels,
        ref: plan.ref,
        push: job.push,
        platforms: plan.platforms,
        provenance: job.push,
        load: engine ? (tar: Readable) => engine.loadImage(tar) : undefined,
        ...cache,
        secrets: buildkitdSecrets(project, plan),
        registryAuth: await job.registries.all(),
        env: ctx.env,
        onTrace: () => {},
        onLog: (line: string) => reporter.debug(`[${plan.name}] ${line}`),
        signal,
      };
      if (routes) return await buildPlatforms(job, request, routes, byAddress);
      const counts = await buildOnce(job, client!, request);
      return { builder: 'buildkitd', builtBy: `buildkitd ${client!.target.address}`, ...counts };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
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

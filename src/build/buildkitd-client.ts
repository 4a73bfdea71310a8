import { spawn } from 'node:child_process';
import { access, chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { constants } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import type { StatusResponse } from './buildkit-status.js';
import { ConfigError, InfrastructureError } from '../errors.js';
import { BuildStepFailure } from './build-failure.js';
import { childEnv } from '../adapters/child-env.js';
import type { RegistryCredentials } from '../registry/credentials.js';
import { buildkitDockerConfig } from '../registry/docker-auth.js';
import { formatPlatform, normalizePlatform } from '../config/platform.js';
import { workerPlatforms } from './platform-routing.js';

/** One buildkitd, with its client certificate files resolved to absolute paths. */
export interface BuildkitdTarget {
  address: string;
  tls?: { ca?: string; cert?: string; key?: string };
  /** Where it was configured, for messages: "skiff.yaml:3:3" or "SKIFF_BUILDKIT_HOST". */
  origin: string;
}

/** A build secret as buildctl takes it: from an environment variable of buildctl's process, or a file. */
export interface BuildkitdSecret {
  id: string;
  env?: string;
  file?: string;
}

export interface BuildkitdBuildRequest {
  /** A directory holding the build context (and the Dockerfile). */
  contextDir: string;
  /** The Dockerfile's path inside contextDir. */
  dockerfile: string;
  target?: string;
  buildArgs: Record<string, string>;
  labels: Record<string, string>;
  /** The image reference to push (push) or to hand to `load` as a docker-archive tar; with pushByDigest, the repository alone. */
  ref: string;
  push: boolean;
  /** Push without a tag (`push-by-digest=true`): the stage puts the index under the content tag. */
  pushByDigest?: boolean;
  /** `--opt platform=a,b`: the platforms this build makes; none: the worker's own. */
  platforms?: string[];
  /** Attach SLSA provenance (`attest:provenance=mode=max`): pushed builds only. */
  provenance?: boolean;
  /** Without push: receives the image as `docker save` writes it. */
  load?: (tar: Readable) => Promise<void>;
  /** type=registry cache refs to read, in order. */
  cacheImports: string[];
  /** The type=registry,mode=max cache ref to write. */
  cacheExport?: string;
  secrets: BuildkitdSecret[];
  /** Credentials for every registry the build pulls from or pushes to; handed over in a temporary DOCKER_CONFIG. */
  registryAuth: Record<string, RegistryCredentials>;
  /** buildctl's environment (secrets' env variables come from here). */
  env: NodeJS.ProcessEnv;
  onTrace: (status: StatusResponse) => void;
  /** buildctl's lines that are not progress (warnings, the error). */
  onLog: (line: string) => void;
  signal: AbortSignal;
}

/** buildkitd could not be reached at all: the pool tries the next one. */
export class BuilderDown extends Error {}

/** The build failed while exporting the registry cache (for instance, no push rights to the cache repository). */
export class CacheExportRefused extends Error {}

/** buildctl, from SKIFF_BUILDCTL or PATH; a ConfigError (exit 2) naming both when there is none. */
export async function findBuildctl(env: NodeJS.ProcessEnv): Promise<string> {
  const executable = async (p: string) =>
    access(p, constants.X_OK).then(
      () => true,
      () => false,
    );
  if (env.SKIFF_BUILDCTL) {
    if (await executable(env.SKIFF_BUILDCTL)) return env.SKIFF_BUILDCTL;
    throw new ConfigError(`SKIFF_BUILDCTL=${env.SKIFF_BUILDCTL} is not an executable file; point it at buildctl (github.com/moby/buildkit) or unset it`);
  }
  for (const dir of (env.PATH ?? '').split(delimiter).filter(Boolean)) {
    const candidate = join(dir, 'buildctl');
    if (await executable(candidate)) return candidate;
  }
  throw new ConfigError(
    'a buildkitd builder is configured (builder: in skiff.yaml or SKIFF_BUILDKIT_HOST), but buildctl is not on PATH; install buildctl (github.com/moby/buildkit releases) or set SKIFF_BUILDCTL to its path',
  );
}

/** Absolute certificate paths: relative ones are the repository's. */
export function resolveTls(tls: BuildkitdTarget['tls'], root: string): BuildkitdTarget['tls'] {
  if (!tls) return undefined;
  const abs = (p?: string) => (p ? (isAbsolute(p) ? p : resolve(root, p)) : undefined);
  return { ca: abs(tls.ca), cert: abs(tls.cert), key: abs(tls.key) };
}

interface Run {
  code: number | null;
  stderrLines: string[];
}

/** A buildkitd, driven through buildctl. */
export class BuildkitdClient {
  constructor(
    readonly buildctl: string,
    readonly target: BuildkitdTarget,
    /** The run's environment (RunContext.env): buildctl's, less skiff's secrets. */
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  private connectionArgs(): string[] {
    const args = ['--addr', this.target.address];
    const { ca, cert, key } = this.target.tls ?? {};
    if (ca) args.push('--tlscacert', ca);
    if (cert) args.push('--tlscert', cert);
    if (key) args.push('--tlskey', key);
    return args;
  }

  /**
   * Asks for its workers, with a short connection timeout: its platforms, normalised, the native
   * one first (none when it does not say). Unreachable: BuilderDown. Reached but the TLS
   * handshake fails: InfrastructureError (exit 3), a configuration to fix, not an outage to route around.
   */
  async probe(signal: AbortSignal): Promise<string[]> {
    let stdout = '';
    const run = await this.run(['--timeout', '5', 'debug', 'workers', '--format', '{{json .}}'], {
      env: childEnv(this.env),
      signal,
      onStdout: (text) => (stdout += text),
    });
    if (run.code === 0) {
      try {
        return stdout.trim() ? workerPlatforms(stdout, (p) => formatPlatform(normalizePlatform(p))) : [];
      } catch {
        return [];
      }
    }
    const why = errorText(run.stderrLines) || `buildctl exited with ${run.code}`;
    if (TLS_PROBLEM.test(why)) {
      throw new InfrastructureError(
        `buildkitd at ${this.target.address} (${this.target.origin}): TLS handshake failed (${tlsReason(why)}); check its ca, cert and key (the CA that signed buildkitd's certificate, and a client certificate it trusts)`,
      );
    }
    throw new BuilderDown(
      why
        .replace(/^.*connection error: desc = "?/, '')
        .replace(/^transport: Error while dialing: /, '')
        .replace(/"$/, ''),
    );
  }

  /**
   * Builds with the Dockerfile frontend: progress as rawjson (BuildKit's SolveStatus per line),
   * the image pushed from buildkitd itself. A failed build: BuildStepFailure with buildctl's error;
   * a failed cache export: CacheExportRefused.
   */
  async build(req: BuildkitdBuildRequest): Promise<{ digest?: string }> {
    const args = ['build', '--frontend', 'dockerfile.v0', '--local', `context=${req.contextDir}`, '--local', `dockerfile=${req.contextDir}`];
    args.push('--opt', `filename=${req.dockerfile}`);
    if (req.target) args.push('--opt', `target=${req.target}`);
    for (const [k, v] of Object.entries(req.buildArgs)) args.push('--opt', `build-arg:${k}=${v}`);
    for (const [k, v] of Object.entries(req.labels)) args.push('--opt', `label:${k}=${v}`);
    for (const s of req.secrets) args.push('--secret', s.env ? `id=${s.id},env=${s.env}` : `id=${s.id},src=${s.file}`);
    for (const ref of req.cacheImports) args.push('--import-cache', `type=registry,ref=${ref}`);
    if (req.cacheExport) args.push('--export-cache', `type=registry,ref=${req.cacheExport},mode=max,ignore-error=false`);
    if (req.platforms?.length) args.push('--opt', `platform=${req.platforms.join(',')}`);
    if (req.provenance && req.push) args.push('--opt', 'attest:provenance=mode=max');
    const output = req.push ? `type=image,name=${req.ref}${req.pushByDigest ? ',push-by-digest=true' : ''},push=true` : `type=docker,name=${req.ref}`;
    args.push('--output', output);
    args.push('--progress', 'rawjson');

    // Registry credentials reach buildctl as a Docker config file of its own, never on its command line.
    const configDir = await mkdtemp(join(tmpdir(), 'skiff-buildctl-'));
    const metadataFile = join(configDir, 'metadata.json');
    args.push('--metadata-file', metadataFile);
    try {
      await chmod(configDir, 0o700);
      await writeFile(join(configDir, 'config.json'), JSON.stringify(buildkitDockerConfig(req.registryAuth)), { mode: 0o600 });
      const cacheVertices = new Map<string, string>();
      let cacheFailed: string | undefined;
      const run = await this.run(args, {
        // Without skiff's secrets, but with the variables the build's own secrets are read from.
        env: childEnv(
          { ...req.env, DOCKER_CONFIG: configDir },
          req.secrets.flatMap((s) => (s.env ? [s.env] : [])),
        ),
        signal: req.signal,
        load: req.push ? undefined : req.load,
        onJson: (status) => {
          for (const v of status.vertexes) {
            if (v.name) cacheVertices.set(v.digest, v.name);
            if (v.error && /^exporting cache/i.test(cacheVertices.get(v.digest) ?? '')) cacheFailed = v.error;
          }
          req.onTrace(status);
        },
        onLine: req.onLog,
      });
      if (run.code === 0) return { digest: await pushedDigest(metadataFile) };
      if (req.signal.aborted) throw new BuildStepFailure('build interrupted');
      const why = errorText(run.stderrLines) || `buildctl exited with ${run.code}`;
      if (cacheFailed !== undefined || /failed to export cache|error writing layer blob.*\/cache|exporting cache/i.test(why)) throw new CacheExportRefused(why);
      if (/connection error|connection refused|Unavailable/i.test(why) && !/failed to solve/i.test(why)) {
        throw new InfrastructureError(`buildkitd at ${this.target.address} (${this.target.origin}) went away during the build: ${why}`);
      }
      if (/failed to push|unexpected status[^,]*\b(401|403)\b|insufficient_scope|unauthorized|denied/i.test(why)) {
        throw new InfrastructureError(
          `buildkitd at ${this.target.address} could not push ${req.ref}: ${why}; check the registry credentials (they must allow push)`,
          {
            kind: 'auth',
          },
        );
      }
      throw new BuildStepFailure(why);
    } finally {
      await rm(configDir, { recursive: true, force: true });
    }
  }

  private run(
    args: string[],
    opts: {
      env: NodeJS.ProcessEnv;
      signal: AbortSignal;
      onJson?: (status: StatusResponse) => void;
      onLine?: (line: string) => void;
      onStdout?: (text: string) => void;
      load?: (tar: Readable) => Promise<void>;
    },
  ): Promise<Run> {
    return new Promise((resolvePromise, reject) => {
      const child = spawn(this.buildctl, [...this.connectionArgs(), ...args], {
        env: opts.env,
        stdio: ['ignore', opts.load || opts.onStdout ? 'pipe' : 'ignore', 'pipe'],
        signal: opts.signal,
      });
      if (opts.onStdout && child.stdout) {
        child.stdout.setEncoding('utf8');
        child.stdout.on('data', opts.onStdout);
      }
      const loaded = opts.load && child.stdout ? opts.load(child.stdout) : Promise.resolve();
      loaded.catch(() => {});
      const stderrLines: string[] = [];
      let partial = '';
      const line = (text: string) => {
        if (text.startsWith('{')) {
          try {
            opts.onJson?.(fromRawJson(JSON.parse(text) as RawStatus));
            return;
          } catch {
            // not progress after all: shown as a line
          }
        }
        if (!text.trim()) return;
        stderrLines.push(text);
        if (stderrLines.length > 200) stderrLines.shift();
        opts.onLine?.(text);
      };
      child.stderr!.setEncoding('utf8');
      child.stderr!.on('data', (chunk: string) => {
        const lines = (partial + chunk).split('\n');
        partial = lines.pop()!;
        for (const l of lines) line(l);
      });
      child.on('error', (e) => {
        if ((e as NodeJS.ErrnoException).code === 'ABORT_ERR') return;
        reject(new InfrastructureError(`could not run ${this.buildctl}: ${e.message}`, { cause: e }));
      });
      child.on('close', (code) => {
        if (partial) line(partial);
        loaded.then(
          () => resolvePromise({ code, stderrLines }),
          (e: unknown) => (code === 0 ? reject(e as Error) : resolvePromise({ code, stderrLines })),
        );
      });
    });
  }
}

/** The digest buildctl's --metadata-file names for what it pushed (an index with several platforms or attestations). */
async function pushedDigest(file: string): Promise<string | undefined> {
  const text = await readFile(file, 'utf8').catch(() => '');
  try {
    const digest = (JSON.parse(text) as Record<string, unknown>)['containerimage.digest'];
    return typeof digest === 'string' && /^sha256:[0-9a-f]{64}$/.test(digest) ? digest : undefined;
  } catch {
    return undefined;
  }
}

const TLS_PROBLEM = /tls:|x509|certificate|authentication handshake|server preface: EOF/i;

function tlsReason(text: string): string {
  if (/server preface: EOF/i.test(text)) return 'it closed the connection: it expects TLS, or a client certificate';
  const m = /(tls: [^"]*|x509: [^"]*)/.exec(text);
  return (m?.[1] ?? text).trim();
}

/** buildctl's own error: its last "error: …" line, less the prefix. */
function errorText(lines: string[]): string {
  const last = [...lines].reverse().find((l) => l.startsWith('error: '));
  return (last ?? lines.at(-1) ?? '').replace(/^error: /, '').trim();
}

/** BuildKit's client.SolveStatus as `buildctl --progress rawjson` prints it. */
interface RawStatus {
  vertexes?: Array<{ digest: string; inputs?: string[]; name?: string; cached?: boolean; started?: string; completed?: string; error?: string }>;
  statuses?: Array<{ id: string; vertex: string; name?: string; current?: number; total?: number; timestamp?: string; started?: string; completed?: string }>;
  logs?: Array<{ vertex: string; stream?: number; data?: string; timestamp?: string }>;
}

const ms = (t?: string) => (t ? Date.parse(t) : undefined);

/** The rawjson form in the shape the Engine's trace decodes to, so one BuildTrace follows both. */
export function fromRawJson(raw: RawStatus): StatusResponse {
  return {
    vertexes: (raw.vertexes ?? []).map((v) => ({
      digest: v.digest,
      inputs: v.inputs ?? [],
      name: v.name ?? '',
      cached: Boolean(v.cached),
      started: ms(v.started),
      completed: ms(v.completed),
      error: v.error || undefined,
    })),
    statuses: (raw.statuses ?? []).map((s) => ({
      id: s.id,
      vertex: s.vertex,
      name: s.name ?? '',
      current: s.current ?? 0,
      total: s.total ?? 0,
      timestamp: ms(s.timestamp),
      started: ms(s.started),
      completed: ms(s.completed),
    })),
    logs: (raw.logs ?? []).map((l) => ({
      vertex: l.vertex,
      stream: l.stream ?? 1,
      timestamp: ms(l.timestamp),
      msg: Buffer.from(l.data ?? '', 'base64'),
    })),
  };
}

import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { privateTempBase } from '../core/paths.js';
import { ConfigError, InfrastructureError } from '../errors.js';
import { buildkitDockerConfig } from '../registry/docker-auth.js';
import type { RegistryCredentials } from '../registry/credentials.js';
import { isInsecureRegistry } from '../registry/transport.js';
import { childEnv } from './child-env.js';
import { findExecutable } from './executables.js';

/**
 * cosign (sigstore), run as a child process: `skiff build --sign` signs with
 * it and `deploy.verify` verifies with it, with a key pair and strictly
 * offline. Nothing goes to Rekor (no transparency log upload, none checked),
 * Fulcio (no keyless certificates) or the TUF mirror (verify is given an
 * empty trusted root: without one, cosign fetches Sigstore's public one), so
 * cosign talks to the image registries only. Found through SKIFF_COSIGN,
 * else on PATH.
 */

const HOW_TO_GET_COSIGN =
  'install cosign v2 ("go install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5", or a release binary) and put it on PATH, or set SKIFF_COSIGN to its path';

/** The cosign binary: SKIFF_COSIGN, else `cosign` on PATH; ConfigError (exit 2) naming both when there is none. */
export async function findCosign(env: NodeJS.ProcessEnv, why: string): Promise<string> {
  const found = await findExecutable(env, 'SKIFF_COSIGN', 'cosign');
  if ('path' in found) return found.path;
  if ('bad' in found) throw new ConfigError(`SKIFF_COSIGN=${found.bad} is not an executable file (give its absolute path); ${why} needs cosign`);
  throw new ConfigError(`${why} needs cosign, which is neither in SKIFF_COSIGN nor on PATH: ${HOW_TO_GET_COSIGN}`);
}

/** An empty Sigstore trusted root: trusts no public-good authority, and keeps `cosign verify` from fetching one over TUF. */
export const EMPTY_TRUSTED_ROOT = '{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}\n';

/** `--allow-http-registry` where skiff itself speaks plain HTTP to the image's registry (loopback, SKIFF_INSECURE_REGISTRIES). */
function registryFlags(host: string, env: NodeJS.ProcessEnv): string[] {
  return isInsecureRegistry(host, env) ? ['--allow-http-registry=true'] : [];
}

/** `cosign sign` of one image by digest with a key file, offline: no transparency log upload. */
export function signArgs(ref: { host: string; name: string }, keyFile: string, env: NodeJS.ProcessEnv): string[] {
  // "--" ends the flags: an image reference from a template is never read as one.
  return ['sign', '--key', keyFile, '--tlog-upload=false', '--yes', ...registryFlags(ref.host, env), '--', ref.name];
}

/**
 * `cosign verify` of one image by digest against a public key, offline: no
 * transparency-log entry or certificate timestamp required, the empty
 * trusted root instead of Sigstore's.
 */
export function verifyArgs(ref: { host: string; name: string }, publicKeyFile: string, trustedRoot: string, env: NodeJS.ProcessEnv): string[] {
  return [
    'verify',
    '--key',
    publicKeyFile,
    '--trusted-root',
    trustedRoot,
    '--insecure-ignore-tlog=true',
    '--insecure-ignore-sct=true',
    '--offline=true',
    ...registryFlags(ref.host, env),
    '--',
    ref.name,
  ];
}

/**
 * cosign's error as one short line: its `Error: …` line (it repeats it as
 * "error during command execution"), without the warnings about skipping the
 * transparency log, which skiff means.
 */
export function cosignErrorLine(stderr: string, max = 240): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !/^WARNING\b/i.test(l));
  const error = lines.find((l) => /^Error: /.test(l))?.replace(/^Error: /, '') ?? lines.at(-1)?.replace(/^error during command execution: /, '') ?? '';
  return error.length > max ? `${error.slice(0, max - 1)}…` : error;
}

/** cosign's verdict on an image it could read: not signed at all, or not by this key. */
export function unsignedVerdict(exitCode: number, stderr: string): 'unsigned' | 'other-key' | undefined {
  if (exitCode === 10 || /no signatures found/i.test(stderr)) return 'unsigned';
  if (exitCode === 12 || /no matching signatures/i.test(stderr)) return 'other-key';
  return undefined;
}

export interface CosignResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The most cosign may print: a verify of an image with many signatures prints their payloads. */
const MAX_OUTPUT = 16 << 20;

/**
 * One cosign with a private home: HOME, TUF_ROOT and DOCKER_CONFIG in a 0700
 * folder removed by close(), so nothing of the machine's cosign or Docker
 * state is read or written; registry credentials reach it as a Docker
 * config.json there, never on its command line.
 */
export class Cosign {
  private constructor(
    readonly binary: string,
    /** The private folder: also where a key given as PEM text is written, 0600. */
    readonly home: string,
    private readonly env: NodeJS.ProcessEnv,
    private readonly signal?: AbortSignal,
  ) {}

  static async open(env: NodeJS.ProcessEnv, why: string, signal?: AbortSignal): Promise<Cosign> {
    const binary = await findCosign(env, why);
    const home = await mkdtemp(join(privateTempBase(), 'skiff-cosign-'));
    await chmod(home, 0o700);
    await writeFile(join(home, 'trusted_root.json'), EMPTY_TRUSTED_ROOT, { mode: 0o600 });
    await writeFile(join(home, 'config.json'), '{"auths":{}}\n', { mode: 0o600 });
    return new Cosign(binary, home, env, signal);
  }

  get trustedRoot(): string {
    return join(this.home, 'trusted_root.json');
  }

  /** Hands these registry credentials (by host) to every later cosign run. */
  async useRegistryAuth(auth: Record<string, RegistryCredentials>): Promise<void> {
    await writeFile(join(this.home, 'config.json'), JSON.stringify(buildkitDockerConfig(auth)), { mode: 0o600 });
  }

  /** Runs cosign with `args`; `password` (COSIGN_PASSWORD) only for the runs that open the private key. */
  run(args: string[], password?: string): Promise<CosignResult> {
    const env: NodeJS.ProcessEnv = {
      // None of the user's cosign or Sigstore settings (COSIGN_*, SIGSTORE_*, TUF_*): they could point it at public services.
      ...Object.fromEntries(Object.entries(childEnv(this.env)).filter(([name]) => !/^(COSIGN_|SIGSTORE_|TUF_)/.test(name))),
      HOME: this.home,
      XDG_CONFIG_HOME: join(this.home, 'config'),
      XDG_CACHE_HOME: join(this.home, 'cache'),
      TUF_ROOT: join(this.home, 'tuf'),
      DOCKER_CONFIG: this.home,
      ...(password !== undefined && { COSIGN_PASSWORD: password }),
    };
    return new Promise((resolve, reject) => {
      const child = execFile(this.binary, args, { env, maxBuffer: MAX_OUTPUT, encoding: 'utf8', signal: this.signal }, (error, stdout, stderr) => {
        if (!error) return resolve({ code: 0, stdout, stderr });
        if (this.signal?.aborted) return reject(new InfrastructureError('cosign stopped: interrupted'));
        if (typeof error.code === 'number') return resolve({ code: error.code, stdout, stderr });
        reject(new InfrastructureError(`cannot run ${this.binary}: ${error.message}`, { cause: error }));
      });
      // cosign asks for a missing password on the terminal: it gets none, and fails instead of waiting.
      child.stdin?.end();
    });
  }

  /** Removes the private folder (and a key written there). */
  async close(): Promise<void> {
    await rm(this.home, { recursive: true, force: true });
  }
}

import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';

/**
 * The cosign binary the test bed built from github.com/sigstore/cosign/v2
 * (test/cosign/build.sh): SKIFF_COSIGN as scripts/test exports it, else the
 * cached build of the version test/cosign/go.mod requires.
 */
export function cosignBinary(): string {
  if (process.env.SKIFF_COSIGN) return process.env.SKIFF_COSIGN;
  const mod = readFileSync(new URL('../cosign/go.mod', import.meta.url), 'utf8');
  const version = /github\.com\/sigstore\/cosign\/v2 (v\S+)/.exec(mod)?.[1];
  const path = join(process.env.SKIFF_CLUSTER_CACHE ?? join(homedir(), '.cache', 'skiff'), `cosign-${version}`, 'cosign');
  if (!existsSync(path)) throw new Error(`no cosign at ${path}: run test/cosign/build.sh (scripts/test does)`);
  return path;
}

/**
 * Runs cosign in `dir` with a private home (nothing of the machine's cosign
 * or Docker set-up read or written) and COSIGN_PASSWORD; returns stdout.
 * Only for commands that stay offline or talk to the local registry alone (generate-key-pair,
 * public-key, sign --tlog-upload=false).
 */
export function cosign(args: string[], dir: string, password: string): string {
  return execFileSync(cosignBinary(), args, {
    cwd: dir,
    encoding: 'utf8',
    env: { PATH: process.env.PATH, HOME: join(dir, '.cosign-home'), TUF_ROOT: join(dir, '.cosign-home', 'tuf'), COSIGN_PASSWORD: password },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

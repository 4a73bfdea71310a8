import type { VerifyConfig } from './project-config.js';
import type { ConfigReader } from './config-reader.js';

/**
 * `deploy.verify: { key: cosign.pub }`: the public key every image of a
 * release must be signed with. A path inside the repository (relative, no
 * "..": the key comes from the deployed commit, like the templates); whether
 * the file is there, and not a symlink, is checked when a deploy reads it.
 */
export function validateVerify(r: ConfigReader, raw: unknown): VerifyConfig | undefined {
  if (raw === undefined) return undefined;
  // `verify:` with nothing after it is a verification asked for and not configured, never one switched off.
  const verify = r.mapping(raw ?? {}, 'deploy.verify');
  if (!verify) return undefined;
  r.knownKeys(verify, 'deploy.verify', ['key']);
  if (verify.key === undefined) {
    r.problem('deploy.verify', 'deploy.verify needs key: the path of the cosign public key (cosign.pub) in the repository');
    return undefined;
  }
  const before = r.problems.length;
  const key = r.relativePath(verify.key, 'deploy.verify.key', '');
  // "." or "" names the repository itself: a verify that checks nothing must not pass for one that does.
  if (key === '' && r.problems.length === before)
    r.problem(
      'deploy.verify.key',
      `deploy.verify.key ${JSON.stringify(verify.key)} names no file: give the path of the cosign public key (cosign.pub) in the repository`,
    );
  return key === '' ? undefined : { key };
}

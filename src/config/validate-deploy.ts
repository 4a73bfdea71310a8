import type { DeployConfig } from './project-config.js';
import type { ConfigReader } from './config-reader.js';
import { validateVerify } from './validate-verify.js';

/** `deploy:` historyMax, autoRollback, timeout, checkNodePlatforms, verify. */
export function validateDeploy(r: ConfigReader, raw: unknown): DeployConfig {
  const deployRaw = r.mapping(raw, 'deploy') ?? {};
  r.knownKeys(deployRaw, 'deploy', ['historyMax', 'autoRollback', 'timeout', 'checkNodePlatforms', 'verify']);
  const historyMax = deployRaw.historyMax ?? 10;
  if (typeof historyMax !== 'number' || !Number.isInteger(historyMax) || historyMax < 1)
    r.problem('deploy.historyMax', `deploy.historyMax must be a whole number ≥ 1, got ${JSON.stringify(historyMax)}`);
  if (deployRaw.autoRollback !== undefined && typeof deployRaw.autoRollback !== 'boolean')
    r.problem('deploy.autoRollback', 'deploy.autoRollback must be true or false');
  if (deployRaw.checkNodePlatforms !== undefined && typeof deployRaw.checkNodePlatforms !== 'boolean')
    r.problem('deploy.checkNodePlatforms', 'deploy.checkNodePlatforms must be true or false');
  return {
    historyMax: typeof historyMax === 'number' && historyMax >= 1 ? Math.floor(historyMax) : 10,
    autoRollback: typeof deployRaw.autoRollback === 'boolean' ? deployRaw.autoRollback : undefined,
    timeoutMs: r.duration(deployRaw.timeout, 'deploy.timeout', 5 * 60_000),
    checkNodePlatforms: deployRaw.checkNodePlatforms !== false,
    verify: validateVerify(r, deployRaw.verify),
  };
}

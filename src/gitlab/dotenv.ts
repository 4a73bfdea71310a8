// GitLab's dotenv report (artifacts:reports:dotenv): the variables a deploy job hands to later jobs
// and to environment:url.
import { writeInside } from '../adapters/repo-files.js';

/** The environment a deploy went to, as the dotenv report names it. */
export interface DeployedEnvironment {
  env: string;
  slug: string;
  url?: string;
  release: string;
  namespace: string;
}

/** Where deploy leaves its dotenv report: GitLab's environment:url reads SKIFF_ENVIRONMENT_URL from it. */
export const DOTENV_REPORT = '.skiff/deploy.env';

/** The variables of a finished deploy. */
export function deployDotenv(target: DeployedEnvironment, result: { revision: number; status: string }): Record<string, string | undefined> {
  return {
    SKIFF_ENVIRONMENT: target.env,
    SKIFF_ENVIRONMENT_SLUG: target.slug,
    SKIFF_ENVIRONMENT_URL: target.url,
    SKIFF_RELEASE: target.release,
    SKIFF_NAMESPACE: target.namespace,
    SKIFF_REVISION: String(result.revision),
    SKIFF_STATUS: result.status,
  };
}

/** KEY=value lines (GitLab's dotenv report: one line each, under 5 KiB). */
export function dotenvText(vars: Record<string, string | undefined>): string {
  const lines = Object.entries(vars)
    .filter((e): e is [string, string] => e[1] !== undefined)
    .map(([k, v]) => `${k}=${v.replace(/[\r\n]+/g, ' ')}`);
  return `${lines.join('\n')}\n`;
}

export async function writeDeployDotenv(root: string, target: DeployedEnvironment, result: { revision: number; status: string }): Promise<void> {
  await writeInside(root, DOTENV_REPORT, dotenvText(deployDotenv(target, result)));
}

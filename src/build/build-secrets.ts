import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { ConfigError } from '../errors.js';
import type { Project } from '../project.js';
import { Redactor } from '../secrets/redact.js';
import type { ImagePlan } from './image-plan.js';

/**
 * Build secrets, checked before anything is built: they need a buildkitd (the Engine's BuildKit
 * over its HTTP API has no session to ask for them), and each source must be there. Returns a
 * Redactor of their values.
 */
export async function checkBuildSecrets(project: Project, plans: ImagePlan[], env: NodeJS.ProcessEnv, haveBuildkitd: boolean): Promise<Redactor> {
  const { config } = project;
  const values = new Map<string, string>();
  for (const plan of plans) {
    for (const [i, secret] of plan.config.secrets.entries()) {
      const path = `images.${plan.name}.secrets[${i}]`;
      const p = config.positions.of(path);
      const at = `${config.file}:${p.line}:${p.col}`;
      if (!haveBuildkitd)
        throw new ConfigError(
          `${at}: image ${plan.name} uses build secret "${secret.id}", and build secrets need a buildkitd builder (the Docker Engine's BuildKit takes none through its API); set builder: in ${config.file} or SKIFF_BUILDKIT_HOST, or remove ${path}`,
        );
      let value: string | undefined;
      if (secret.env) {
        value = env[secret.env];
        if (value === undefined)
          throw new ConfigError(
            `${at}: build secret "${secret.id}" of image ${plan.name} comes from the environment variable ${secret.env}, which is not set; set it (in GitLab: a masked CI/CD variable) or fix ${path}.env`,
          );
      } else if (secret.file) {
        const file = isAbsolute(secret.file) ? secret.file : resolve(project.root, secret.file);
        value = await readFile(file, 'utf8').catch(() => undefined);
        if (value === undefined)
          throw new ConfigError(`${at}: build secret "${secret.id}" of image ${plan.name} comes from the file ${file}, which cannot be read; fix ${path}.file`);
      }
      for (const v of [value, value?.trim(), ...(value?.split('\n').map((l) => l.trim()) ?? [])]) {
        if (v && v.length >= 4) values.set(v, `build secret ${secret.id}`);
      }
    }
  }
  return new Redactor(values);
}

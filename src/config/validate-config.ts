import { ConfigError } from '../errors.js';
import type { PositionIndex, ProjectConfig } from './project-config.js';
import { ConfigReader, DNS_LABEL, isPlain, typeName } from './config-reader.js';
import { validateBuilder } from './validate-builder.js';
import { validateCharts } from './validate-charts.js';
import { validateDeploy } from './validate-deploy.js';
import { validateEnvironments } from './validate-environments.js';
import { validateImages, validatePlatforms } from './validate-images.js';
import { validateTests } from './validate-tests.js';

/** The top-level keys of skiff.yaml; each section has its validator in validate-<section>.ts. */
const SECTIONS = ['project', 'registry', 'builder', 'platforms', 'images', 'tests', 'environments', 'deploy', 'charts'];

/**
 * Checks skiff.yaml as plain data and fills in defaults. Pure: no file or
 * network access. Throws a ConfigError naming file:line:col of the first
 * problem; all problems are in the error's detail.
 */
export function validateConfig(raw: unknown, positions: PositionIndex, file: string): ProjectConfig {
  const r = new ConfigReader(positions);
  // The top level has no key path to name, so it gets messages of its own.
  if (raw === undefined || raw === null) r.problem('', 'the file is empty: define at least "project" and "images"');
  else if (!isPlain(raw)) r.problem('', `the top level must be a mapping of keys (project, images, ...), got ${typeName(raw)}`);
  const top = isPlain(raw) ? raw : {};
  r.knownKeys(top, '', SECTIONS);
  const project =
    r.string(top.project, 'project', { required: true, pattern: DNS_LABEL, hint: 'use lower-case letters, digits and "-" (it names releases)' }) ?? 'invalid';
  const registry = r.string(top.registry, 'registry', {
    pattern: /^[a-z0-9.-]+(:\d+)?(\/[a-z0-9._/-]+)?$/i,
    hint: 'use host[:port]/path, e.g. 127.0.0.1:5000/hello',
  });
  const builders = validateBuilder(r, top.builder);
  const platforms = validatePlatforms(r, top.platforms, 'platforms');
  const images = validateImages(r, top.images, platforms);
  const tests = validateTests(r, top.tests, images);
  const environments = validateEnvironments(r, top.environments, project);
  const deploy = validateDeploy(r, top.deploy);
  const charts = validateCharts(r, top.charts, environments);

  const { problems } = r;
  if (problems.length > 0) {
    problems.sort((a, b) => a.line - b.line || a.col - b.col);
    const p = problems[0]!;
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more problem${problems.length > 2 ? 's' : ''})` : '';
    throw new ConfigError(`${file}:${p.line}:${p.col}: ${p.message}${more}`, { detail: problems });
  }
  return { project, registry, builders, images, tests, environments, deploy, charts, positions, file };
}

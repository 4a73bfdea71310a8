import type { Manifest } from '../kube/objects.js';
import { parseManifests } from './parse.js';
import { renderTemplate, templateScope, type RenderedFile } from './template.js';
import { checkReleaseName, validateAndComplete } from './validate.js';
import { isValuesFile, resolveValues, type ValueSource } from './values.js';

export interface TemplateFile {
  /** Repository-relative, e.g. ".kube/app/deployment.yaml.ejs". */
  path: string;
  content: string;
}

export interface RenderInput {
  /** Every template under .kube/ (see isTemplateFile); values files are not templates. */
  templates: TemplateFile[];
  /** Parsed values in merge order; origin (a file name or config key) is for messages. */
  valueSources: ValueSource[];
  /** --set expressions, applied after every values source. */
  sets: string[];
  /** Image name → "registry/app:tag@sha256:...". */
  images: Record<string, string>;
  env: string;
  /** The environment's slug (GitLab's CI_ENVIRONMENT_SLUG) and URL, for review apps' hosts. */
  slug: string;
  url?: string;
  release: string;
  namespace: string;
  project: string;
  git: { commit: string; branch?: string; tag?: string };
  /** Added to every object's annotations: where it was deployed from (commit, pipeline, job). */
  annotations?: Record<string, string>;
  /** The decrypted files under .kube/secret/, by their path below it: what secretFile(path) returns. */
  secretFiles?: Record<string, string>;
}

export interface RenderOutput {
  manifests: Manifest[];
  /** The merged values, --set applied. */
  values: Record<string, unknown>;
  /** Things that render but are likely not what was meant, with file:line. */
  warnings: string[];
}

const TEMPLATE_FILE = /^\.kube\/.+\.ya?ml(\.ejs)?$/;
const SECRET_FILE = /^\.kube\/(secret-values(\.[^/]+)?\.ya?ml|secret\/.+)$/;

/** An encrypted file: .kube/secret-values[.<env>].yaml or a file under .kube/secret/; decrypted for a render, never a template. */
export function isSecretFile(path: string): boolean {
  return SECRET_FILE.test(path);
}

/** A file under .kube/ that renders to manifests: *.yaml, *.yml, *.yaml.ejs, *.yml.ejs, values and secret files excepted. */
export function isTemplateFile(path: string): boolean {
  return TEMPLATE_FILE.test(path) && !isValuesFile(path) && !isSecretFile(path);
}

/**
 * Renders .kube/ for one environment: merges values, runs every template
 * through EJS, parses the YAML documents, validates them, and adds namespace
 * and skiff labels. Throws ConfigError (exit 2) naming template:line.
 */
export function renderRelease(input: RenderInput): RenderOutput {
  checkReleaseName(input.release, input.env);
  const values = resolveValues(input.valueSources, input.sets);
  const scope = templateScope(values, input);

  const templates = [...input.templates].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const manifests: Manifest[] = [];
  const warnings: string[] = [];
  const fileOf = new Map<Manifest, RenderedFile>();
  for (const t of templates) {
    const r = renderTemplate(t, scope);
    for (const m of parseManifests(r, warnings)) {
      manifests.push(m);
      fileOf.set(m, r);
    }
  }
  validateAndComplete(manifests, fileOf, input);
  return { manifests, values, warnings };
}

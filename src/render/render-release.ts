import type { ChartRecord } from '../release/release-record.js';
import type { Manifest } from '../kube/objects.js';
import { parseManifests } from './parse.js';
import { renderTemplate, templateScope, type RenderedFile } from './template.js';
export type { RenderedFile } from './template.js';
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
  /** Chart values files under .kube/charts/: rendered with the same scope, never objects of their own. */
  chartValues?: TemplateFile[];
}

export interface RenderOutput {
  manifests: Manifest[];
  /** The merged values, --set applied. */
  values: Record<string, unknown>;
  /** Things that render but are likely not what was meant, with file:line. */
  warnings: string[];
  /** The charts rendered into the release (none for .kube/ alone). */
  charts?: ChartRecord[];
}

const TEMPLATE_FILE = /^\.kube\/.+\.ya?ml(\.ejs)?$/;
const SECRET_FILE = /^\.kube\/(secret-values(\.[^/]+)?\.ya?ml|secret\/.+)$/;
const CHART_VALUES_FILE = /^\.kube\/charts\//;

/** A file under .kube/charts/: a chart's values (rendered with EJS first), never objects of its own. */
export function isChartValuesFile(path: string): boolean {
  return CHART_VALUES_FILE.test(path);
}

/** An encrypted file: .kube/secret-values[.<env>].yaml or a file under .kube/secret/; decrypted for a render, never a template. */
export function isSecretFile(path: string): boolean {
  return SECRET_FILE.test(path);
}

/** A file under .kube/ that renders to manifests: *.yaml, *.yml, *.yaml.ejs, *.yml.ejs, values and secret files excepted. */
export function isTemplateFile(path: string): boolean {
  return TEMPLATE_FILE.test(path) && !isValuesFile(path) && !isSecretFile(path) && !isChartValuesFile(path);
}

/** .kube/ rendered but not yet parsed: the merged values, each template's output, and each chart values file's. */
export interface RenderedTemplates {
  values: Record<string, unknown>;
  files: RenderedFile[];
  /** Chart values files (.kube/charts/…) rendered with the same scope, by path. */
  chartValues: Map<string, RenderedFile>;
}

/** Merges values and runs every template (and chart values file) through EJS. Throws ConfigError naming template:line. */
export function renderTemplates(input: RenderInput): RenderedTemplates {
  checkReleaseName(input.release, input.env);
  const values = resolveValues(input.valueSources, input.sets);
  const scope = templateScope(values, input);
  const templates = [...input.templates].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const files = templates.map((t) => renderTemplate(t, scope));
  const chartValues = new Map((input.chartValues ?? []).map((t) => [t.path, renderTemplate(t, scope)] as const));
  return { values, files, chartValues };
}

/** A parsed object and the rendered file it came from (for messages at its line). */
export interface ParsedManifest {
  manifest: Manifest;
  file: RenderedFile;
}

/** The objects of rendered files, in order; empty documents skipped, oddities in warnings. */
export function parseRendered(files: RenderedFile[], warnings: string[]): ParsedManifest[] {
  return files.flatMap((file) => parseManifests(file, warnings).map((manifest) => ({ manifest, file })));
}

/** Validates every object of the release as the API server would, and adds namespace and skiff's labels. */
export function completeRelease(parsed: ParsedManifest[], input: Pick<RenderInput, 'namespace' | 'release' | 'annotations'>): Manifest[] {
  const manifests = parsed.map((p) => p.manifest);
  validateAndComplete(manifests, new Map(parsed.map((p) => [p.manifest, p.file])), input);
  return manifests;
}

/**
 * Renders .kube/ for one environment: merges values, runs every template
 * through EJS, parses the YAML documents, validates them, and adds namespace
 * and skiff labels. Throws ConfigError (exit 2) naming template:line.
 */
export function renderRelease(input: RenderInput): RenderOutput {
  const { values, files } = renderTemplates(input);
  const warnings: string[] = [];
  const manifests = completeRelease(parseRendered(files, warnings), input);
  return { manifests, values, warnings };
}

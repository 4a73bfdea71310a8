import { ADOPT_ANNOTATION, HELM_HOOK_ANNOTATIONS, HOOK_ANNOTATION, KEEP_ANNOTATION, type KubeObject } from '../kube/objects.js';
import { parseRendered, type ParsedManifest, type RenderedFile } from '../render/render-release.js';
import { chartFile } from './helm.js';

/**
 * What `helm template` printed, as skiff's objects: split by Helm's
 * `# Source:` comments so that every object names its chart file, Helm's
 * hooks mapped onto skiff's, CRDs from crds/ kept forever. Pure.
 */

const HELM_HOOK = HELM_HOOK_ANNOTATIONS.hook;
const HELM_HOOK_WEIGHT = HELM_HOOK_ANNOTATIONS.weight;
export const HELM_RESOURCE_POLICY = 'helm.sh/resource-policy';

/** Helm's hooks skiff runs, and as what. */
const HOOK_MAP: Record<string, 'pre-deploy' | 'post-deploy'> = {
  'pre-install': 'pre-deploy',
  'pre-upgrade': 'pre-deploy',
  'post-install': 'post-deploy',
  'post-upgrade': 'post-deploy',
};

/**
 * The rendered files of helm's output, one per `# Source:` path, documents in order.
 * Helm prints each document of a template after its own `# Source:`, but a file of
 * crds/ as it is, under one `# Source:` for all its documents: a document without a
 * `# Source:` belongs to the file before it. A file's text is its documents joined by
 * `---` lines, so a line is the chart file's own where Helm keeps the file's lines (a
 * crds/ file; a template whose documents are separated by `---` only).
 */
export function splitHelmOutput(stdout: string, label: string): RenderedFile[] {
  const bySource = new Map<string, string[]>();
  let source: string | undefined;
  for (const doc of stdout.split(/^---[ \t\r]*$/m)) {
    const header = /^\r?\n# Source: ([^\r\n]+)\r?\n?/.exec(doc);
    if (header) source = header[1]!.trim();
    if (source === undefined) continue; // nothing before the first document
    let body = header ? doc.slice(header[0].length) : doc.replace(/^\r?\n/, '');
    // Helm trims a template's documents, and ends each with a newline of its own.
    if (header && !inCrdsFolder(source.slice(source.indexOf('/') + 1))) body = body.trimEnd() ? `${body.trimEnd()}\n` : '';
    if (!bySource.has(source)) bySource.set(source, []);
    bySource.get(source)!.push(body.endsWith('\n') || !body ? body : `${body}\n`);
  }
  const out: RenderedFile[] = [];
  for (const [path, docs] of bySource) {
    const text = docs.join('---\n');
    // A template that printed only comments has no object: no file.
    if (text.replace(/^(#.*|---)$/gm, '').trim()) out.push({ file: chartFile(label, path), template: '', text });
  }
  return out;
}

/** Whether a file, named by its path in the chart, is in the chart's (or a subchart's) crds/ folder. */
function inCrdsFolder(pathInChart: string): boolean {
  return /^(?:charts\/[^/]+\/)*crds\//.test(pathInChart);
}

/**
 * Whether a chart file, as skiff names it (`chart web: crds/x.yaml`, `.helm/charts/dep/crds/x.yaml`),
 * is from a crds/ folder: the chart's or a subchart's, not a folder of templates/ named crds.
 */
function fromCrdsFolder(file: string): boolean {
  return /^(?:[^/:]+: |[^/:]+\/)(?:charts\/[^/]+\/)*crds\//.test(file);
}

/**
 * Whether a chart file, as skiff names it (`chart web: charts/dep/templates/x.yaml`,
 * `.helm/charts/dep/…`), is a subchart's: a chart someone else wrote, even when vendored.
 */
function fromSubchart(file: string): boolean {
  return /^(?:[^/:]+: |[^/:]+\/)charts\//.test(file);
}

/**
 * The objects of a chart's output, ready to join the release: Helm's hooks
 * annotated as skiff's (those skiff cannot run are left out, with a warning),
 * hooks ordered by weight, CRDs from crds/ and objects Helm would keep
 * (`helm.sh/resource-policy: keep`) marked skiff.io/keep so they are never
 * pruned. Objects first, then hooks, in Helm's order. A chart from a registry
 * (`fromRegistry`), or any chart's subchart, is someone else's: its
 * skiff.io/adopt annotation is dropped (with a warning), so that it cannot take
 * over another release's object, which the release would later prune; only
 * --adopt, or the repository's own templates, adopt.
 */
export function chartObjects(files: RenderedFile[], warnings: string[], fromRegistry = false): ParsedManifest[] {
  const parsed = parseRendered(files, warnings);
  const out: ParsedManifest[] = [];
  const hooks: Array<{ p: ParsedManifest; weight: number; i: number }> = [];
  parsed.forEach((p, i) => {
    const o = p.manifest.object;
    const where = `${p.manifest.source.file}: ${o.kind}/${o.metadata?.name}`;
    const annotations = isMap(o.metadata) && isMap(o.metadata.annotations) ? (o.metadata.annotations as Record<string, unknown>) : undefined;
    if (annotations?.[ADOPT_ANNOTATION] !== undefined && (fromRegistry || fromSubchart(p.manifest.source.file))) {
      delete annotations[ADOPT_ANNOTATION];
      warnings.push(`${where}: annotation ${ADOPT_ANNOTATION} is ignored in a chart from a registry or a subchart; take an object over with --adopt`);
    }
    if (fromCrdsFolder(p.manifest.source.file) || annotations?.[HELM_RESOURCE_POLICY] === 'keep') setAnnotation(o, KEEP_ANNOTATION, 'true');
    const hook = annotations?.[HELM_HOOK];
    if (typeof hook !== 'string' || annotations?.[HOOK_ANNOTATION] !== undefined) return void out.push(p);
    const kinds = hook
      .split(',')
      .map((h) => h.trim())
      .filter(Boolean);
    const mapped = [...new Set(kinds.map((h) => HOOK_MAP[h]).filter((h) => h !== undefined))];
    const ignored = kinds.filter((h) => !HOOK_MAP[h]);
    if (mapped.length === 0) {
      warnings.push(
        `${where}: Helm hook "${hook}" is not run by skiff (it runs pre/post-install and pre/post-upgrade hooks as its pre-/post-deploy hooks); not deployed`,
      );
      return;
    }
    if (ignored.length) warnings.push(`${where}: Helm hook${ignored.length > 1 ? 's' : ''} ${ignored.join(', ')} not run by skiff; it runs as ${mapped[0]}`);
    if (mapped.length > 1) warnings.push(`${where}: a Helm hook both before and after the deploy runs once, as ${mapped[0]}, in skiff`);
    setAnnotation(o, HOOK_ANNOTATION, mapped[0]!);
    const raw = annotations?.[HELM_HOOK_WEIGHT];
    const weight = typeof raw === 'string' || typeof raw === 'number' ? Number.parseInt(String(raw), 10) : 0;
    hooks.push({ p, weight: Number.isFinite(weight) ? weight : 0, i });
  });
  // Helm runs hooks by weight, then by name.
  hooks.sort((a, b) => a.weight - b.weight || byName(a.p, b.p) || a.i - b.i);
  return [...out, ...hooks.map((h) => h.p)];
}

function byName(a: ParsedManifest, b: ParsedManifest): number {
  const x = String(a.manifest.object.metadata?.name ?? '');
  const y = String(b.manifest.object.metadata?.name ?? '');
  return x < y ? -1 : x > y ? 1 : 0;
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function setAnnotation(o: KubeObject, key: string, value: string): void {
  if (!isMap(o.metadata)) return; // validation names the missing metadata
  const annotations = isMap(o.metadata.annotations) ? o.metadata.annotations : {};
  o.metadata.annotations = { ...annotations, [key]: value };
}

import { isMap, isScalar, isSeq, LineCounter, parseAllDocuments, visit, type Tags } from 'yaml';
import type { KubeObject, Manifest } from '../kube/objects.js';
import { note, problemAt, type RenderedFile } from './template.js';

/** kubectl reads YAML 1.1 without timestamps (dates stay strings); so do we. */
const K8S_YAML = {
  version: '1.1' as const,
  customTags: (tags: Tags) => tags.filter((t) => typeof t === 'string' || t.tag !== 'tag:yaml.org,2002:timestamp'),
};

/** The YAML documents of a rendered template as manifests; empty documents are skipped, oddities go to warnings. */
export function parseManifests(r: RenderedFile, warnings: string[]): Manifest[] {
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(r.text, { ...K8S_YAML, lineCounter, prettyErrors: false, uniqueKeys: true });
  const out: Manifest[] = [];
  for (const doc of docs) {
    const error = doc.errors[0];
    if (error) {
      const line = lineCounter.linePos(error.pos[0]).line;
      const what = error.message.split('\n')[0]!.replace(/ at line \d+, column \d+.*$/, '');
      throw problemAt(r, line, `invalid YAML: ${what}`);
    }
    // YAML 1.1 (kubectl's reading) turns plain keys like y, n, on, off into booleans.
    visit(doc, {
      Pair(_, pair) {
        const key = pair.key;
        if (isScalar(key) && typeof key.value === 'boolean' && key.type === 'PLAIN' && key.range) {
          const line = lineCounter.linePos(key.range[0]).line;
          warnings.push(
            `${r.file}:${line}: the key ${key.source} is read as ${key.value} (YAML 1.1, as kubectl reads it)${note(r, line)}; quote it ("${key.source}") if you meant the text`,
          );
        }
      },
    });
    const contents = doc.contents;
    if (contents === null) continue;
    const line = lineCounter.linePos(contents.range?.[0] ?? 0).line;
    if (!isMap(contents)) {
      const value: unknown = doc.toJS();
      if (value === null) continue;
      const found = isSeq(contents) ? 'a list' : `the scalar ${JSON.stringify(value)}`;
      throw problemAt(r, line, `a YAML document must be a Kubernetes object (a mapping), found ${found}`);
    }
    let object: Record<string, unknown>;
    try {
      object = doc.toJS({ maxAliasCount: 100 }) as Record<string, unknown>;
    } catch (e) {
      // The yaml library refuses alias expansion that grows without bound ("billion laughs").
      throw problemAt(r, line, `invalid YAML: ${(e as Error).message}; use fewer aliases (*name)`);
    }
    out.push({ object: object as KubeObject, source: { file: r.file, line } });
  }
  return out;
}

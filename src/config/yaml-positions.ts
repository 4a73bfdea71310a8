import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Node } from 'yaml';
import { ConfigError } from '../errors.js';
import { PositionIndex } from './project-config.js';

export interface ParsedYaml {
  value: unknown;
  positions: PositionIndex;
}

/**
 * Parses one YAML document and records where every key path stands, so that
 * validation over plain data can still point at file:line:col.
 * Paths look like `images.app.args.X` and `tests.unit.command[0]`.
 */
export function parseYamlWithPositions(text: string, file: string): ParsedYaml {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const first = doc.errors[0];
  if (first) {
    const pos = lineCounter.linePos(first.pos[0]);
    const what = first.message.split('\n')[0]!.replace(/ at line \d+, column \d+.*$/, '');
    throw new ConfigError(`${file}:${pos.line}:${pos.col}: invalid YAML: ${what}`);
  }
  const positions = new PositionIndex();
  positions.set('', { line: 1, col: 1 });
  const at = (node: Node | null | undefined) => {
    const offset = node?.range?.[0];
    return offset === undefined ? undefined : lineCounter.linePos(offset);
  };
  const walk = (node: unknown, path: string) => {
    if (isMap(node)) {
      for (const pair of node.items) {
        if (!isPair(pair)) continue;
        const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
        const child = path === '' ? key : `${path}.${key}`;
        const pos = at(pair.key as Node) ?? at(pair.value as Node);
        if (pos) positions.set(child, pos);
        walk(pair.value, child);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => {
        const child = `${path}[${i}]`;
        const pos = at(item as Node);
        if (pos) positions.set(child, pos);
        walk(item, child);
      });
    }
  };
  walk(doc.contents, '');
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    // The yaml library refuses alias expansion that grows without bound ("billion laughs").
    throw new ConfigError(`${file}:1:1: invalid YAML: ${(e as Error).message}; use fewer aliases (*name)`);
  }
  return { value, positions };
}

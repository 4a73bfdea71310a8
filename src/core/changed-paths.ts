/**
 * The field paths where two JSON values differ, as a reviewer reads them:
 * `spec.replicas`, `spec.template.spec.containers[0].image`, `data.greeting`.
 * A field added or removed is its own path (not every leaf below it); an
 * array whose items are added or removed shows the indexes that differ.
 * Keys with dots or other characters outside [A-Za-z0-9_-] are quoted, as
 * `metadata.annotations["skiff.io/keep"]`.
 */
export function changedPaths(before: unknown, after: unknown): string[] {
  const out: string[] = [];
  walk(before, after, '', out);
  return out;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function walk(a: unknown, b: unknown, path: string, out: string[]): void {
  if (isRecord(a) && isRecord(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    for (const k of keys) walk(Object.hasOwn(a, k) ? a[k] : undefined, Object.hasOwn(b, k) ? b[k] : undefined, join(path, k), out);
    return;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    for (let i = 0; i < Math.max(a.length, b.length); i++) walk(a[i], b[i], `${path}[${i}]`, out);
    return;
  }
  if (!sameJson(a, b)) out.push(path || '(whole object)');
}

function join(path: string, key: string): string {
  const k = /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key) ? key : JSON.stringify(key);
  return !path ? (k.startsWith('"') ? `[${k}]` : k) : k.startsWith('"') ? `${path}[${k}]` : `${path}.${k}`;
}

function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  return a !== undefined && b !== undefined && JSON.stringify(a) === JSON.stringify(b);
}

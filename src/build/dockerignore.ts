import { posix } from 'node:path';

interface Rule {
  negated: boolean;
  regex: RegExp;
}

/**
 * .dockerignore semantics as the Docker CLI applies them: patterns are
 * relative to the context root, `*` and `?` stay within one path segment,
 * `**` spans any number of segments, `!` re-includes, the last matching rule
 * wins, and excluding a directory excludes everything under it.
 */
export class DockerIgnore {
  private readonly rules: Rule[];

  constructor(text: string) {
    this.rules = [];
    for (const rawLine of text.split(/\r?\n/)) {
      let line = rawLine.trim();
      if (line === '' || line.startsWith('#')) continue;
      let negated = false;
      if (line.startsWith('!')) {
        negated = true;
        line = line.slice(1).trim();
      }
      let pattern = posix.normalize(line.replace(/^\/+/, ''));
      if (pattern === '.' || pattern === '') continue;
      pattern = pattern.replace(/\/+$/, '');
      this.rules.push({ negated, regex: patternToRegExp(pattern) });
    }
  }

  get empty(): boolean {
    return this.rules.length === 0;
  }

  /** True when the file at this context-relative path is left out of the context. */
  excludes(path: string): boolean {
    if (this.rules.length === 0) return false;
    const candidates = selfAndParents(path);
    let excluded = false;
    for (const rule of this.rules) {
      if (candidates.some((c) => rule.regex.test(c))) excluded = !rule.negated;
    }
    return excluded;
  }
}

function selfAndParents(path: string): string[] {
  const parts = path.split('/');
  const out: string[] = [];
  for (let i = parts.length; i > 0; i--) out.push(parts.slice(0, i).join('/'));
  return out;
}

export function patternToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === '*') {
      if (pattern[i + 1] === '*') {
        i++;
        if (pattern[i + 1] === '/') {
          i++;
          re += '(?:.*/)?';
        } else {
          re += '.*';
        }
      } else {
        re += '[^/]*';
      }
    } else if (ch === '?') {
      re += '[^/]';
    } else if (ch === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end === -1) {
        re += '\\[';
      } else {
        let body = pattern.slice(i + 1, end);
        if (body.startsWith('!') || body.startsWith('^')) body = `^${body.slice(1)}`;
        re += `[${body.replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else if (ch === '\\' && i + 1 < pattern.length) {
      i++;
      re += escapeRegExp(pattern[i]!);
    } else {
      re += escapeRegExp(ch);
    }
  }
  return new RegExp(`^${re}$`);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

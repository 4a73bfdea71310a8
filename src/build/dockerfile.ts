/** One instruction of a Dockerfile and the line it starts on (1-based). */
export interface DockerfileInstruction {
  line: number;
  keyword: string;
  text: string;
}

/** Splits a Dockerfile into instructions, joining continuation lines. */
export function parseDockerfile(content: string): DockerfileInstruction[] {
  const lines = content.split(/\r?\n/);
  const out: DockerfileInstruction[] = [];
  let escape = '\\';
  let current: { line: number; parts: string[] } | undefined;
  let seenInstruction = false;
  lines.forEach((raw, i) => {
    const trimmed = raw.trim();
    if (!seenInstruction) {
      const directive = /^#\s*escape\s*=\s*(\S)/i.exec(trimmed);
      if (directive) escape = directive[1]!;
    }
    // Inside a continuation too: the Engine skips comments and empty lines there.
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const continues = trimmed.endsWith(escape);
    const part = continues ? trimmed.slice(0, -1).trim() : trimmed;
    if (!current) current = { line: i + 1, parts: [] };
    if (part) current.parts.push(part);
    if (!continues) {
      const text = current.parts.join(' ');
      const keyword = (text.split(/\s+/)[0] ?? '').toUpperCase();
      out.push({ line: current.line, keyword, text });
      seenInstruction = true;
      current = undefined;
    }
  });
  if (current) {
    const text = current.parts.join(' ');
    out.push({ line: current.line, keyword: (text.split(/\s+/)[0] ?? '').toUpperCase(), text });
  }
  return out;
}

/**
 * The Dockerfile line of a build step as the Engine reports it
 * ("Step 3/5 : RUN make"): matched by text, else by position.
 */
export function lineOfStep(instructions: DockerfileInstruction[], stepNumber: number, stepText: string): number | undefined {
  const norm = (s: string) => s.replace(/\s+/g, ' ').trim().toLowerCase();
  const wanted = norm(stepText);
  const byPosition = instructions[stepNumber - 1];
  if (byPosition && norm(byPosition.text) === wanted) return byPosition.line;
  const byText = instructions.filter((ins) => norm(ins.text) === wanted);
  if (byText.length === 1) return byText[0]!.line;
  return byPosition?.line ?? byText[0]?.line;
}

/** The escape character of a Dockerfile (`# escape=` parser directive, default backslash). */
function escapeCharacter(content: string): string {
  for (const raw of content.split(/\r?\n/)) {
    const line = raw.trim();
    const directive = /^#\s*escape\s*=\s*(\S)\s*$/i.exec(line);
    if (directive) return directive[1]!;
    if (!/^#\s*\w+\s*=/.test(line)) break; // directives only stand at the very top
  }
  return '\\';
}

/**
 * The Dockerfile with one LABEL instruction carrying all labels, at the end
 * of the stage that is built (the target, else the last). One instruction is
 * one build step; the Engine API's `labels` parameter costs a step per label.
 */
export function withLabels(content: string, target: string | undefined, labels: Record<string, string>): string {
  const esc = escapeCharacter(content);
  const quote = (s: string) => `"${s.replace(new RegExp(`[${esc === '\\' ? '\\\\' : esc}"$]`, 'g'), (c) => `${esc}${c}`)}"`;
  const instruction = `LABEL ${Object.entries(labels)
    .map(([k, v]) => `${quote(k)}=${quote(v)}`)
    .join(' ')}`;
  const lines = content.replace(/\s+$/, '').split(/\r?\n/);
  if (target) {
    const instructions = parseDockerfile(content);
    const stageStart = instructions.findIndex(
      (ins) => ins.keyword === 'FROM' && new RegExp(`\\s+as\\s+${target.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*$`, 'i').test(ins.text),
    );
    const next = stageStart === -1 ? undefined : instructions.slice(stageStart + 1).find((ins) => ins.keyword === 'FROM');
    if (next) {
      lines.splice(next.line - 1, 0, instruction);
      return `${lines.join('\n')}\n`;
    }
  }
  return `${lines.join('\n')}\n${instruction}\n`;
}

import { describe, expect, it } from 'vitest';
import { lineOfStep, parseDockerfile, withLabels } from '../../src/build/dockerfile.js';

const lines = (...l: string[]) => l.join('\n');

describe('parseDockerfile', () => {
  it('gives each instruction its keyword, text and 1-based line, skipping comments and blank lines', () => {
    const df = lines(
      /* 1 */ '# syntax=docker/dockerfile:1',
      /* 2 */ '',
      /* 3 */ 'ARG BASE_IMAGE',
      /* 4 */ 'from ${BASE_IMAGE}',
      /* 5 */ '   # an indented comment',
      /* 6 */ '',
      /* 7 */ '  WORKDIR /app',
      /* 8 */ 'CMD ["/app/start"]',
    );
    expect(parseDockerfile(df)).toEqual([
      { line: 3, keyword: 'ARG', text: 'ARG BASE_IMAGE' },
      { line: 4, keyword: 'FROM', text: 'from ${BASE_IMAGE}' },
      { line: 7, keyword: 'WORKDIR', text: 'WORKDIR /app' },
      { line: 8, keyword: 'CMD', text: 'CMD ["/app/start"]' },
    ]);
  });

  it('joins continuation lines and keeps the line the instruction starts on', () => {
    const df = lines(
      /* 1 */ 'FROM busybox',
      /* 2 */ 'RUN apk add \\',
      /* 3 */ '      curl \\',
      /* 4 */ '      git',
      /* 5 */ 'ENV A=1 \\   ',
      /* 6 */ '    B=2',
      /* 7 */ 'COPY . /app',
    );
    expect(parseDockerfile(df)).toEqual([
      { line: 1, keyword: 'FROM', text: 'FROM busybox' },
      { line: 2, keyword: 'RUN', text: 'RUN apk add curl git' },
      { line: 5, keyword: 'ENV', text: 'ENV A=1 B=2' },
      { line: 7, keyword: 'COPY', text: 'COPY . /app' },
    ]);
  });

  it('skips comments inside a continuation', () => {
    const df = lines(
      /* 1 */ 'FROM busybox',
      /* 2 */ 'RUN set -e; \\',
      /* 3 */ '# install the tools',
      /* 4 */ '    apk add curl; \\',
      /* 5 */ '    # then clean up',
      /* 6 */ '    rm -rf /var/cache/apk',
      /* 7 */ 'EXPOSE 80',
    );
    expect(parseDockerfile(df)).toEqual([
      { line: 1, keyword: 'FROM', text: 'FROM busybox' },
      { line: 2, keyword: 'RUN', text: 'RUN set -e; apk add curl; rm -rf /var/cache/apk' },
      { line: 7, keyword: 'EXPOSE', text: 'EXPOSE 80' },
    ]);
  });

  it('skips empty lines inside a continuation, as the Engine does', () => {
    // BuildKit's NoEmptyContinuation example: deprecated, still one instruction.
    const df = lines(
      /* 1 */ 'FROM alpine',
      /* 2 */ 'RUN apk add \\',
      /* 3 */ '',
      /* 4 */ '    gnupg \\',
      /* 5 */ '   ',
      /* 6 */ '    curl',
      /* 7 */ 'CMD ["sh"]',
    );
    expect(parseDockerfile(df)).toEqual([
      { line: 1, keyword: 'FROM', text: 'FROM alpine' },
      { line: 2, keyword: 'RUN', text: 'RUN apk add gnupg curl' },
      { line: 7, keyword: 'CMD', text: 'CMD ["sh"]' },
    ]);
  });

  it('honours the escape directive: backtick continues lines, backslash is literal', () => {
    const df = lines(
      /* 1 */ '# escape=`',
      /* 2 */ '',
      /* 3 */ 'FROM mcr.microsoft.com/windows/nanoserver',
      /* 4 */ 'COPY testfile.txt c:\\',
      /* 5 */ 'RUN dir c:\\ `',
      /* 6 */ '    && echo done',
    );
    expect(parseDockerfile(df)).toEqual([
      { line: 3, keyword: 'FROM', text: 'FROM mcr.microsoft.com/windows/nanoserver' },
      { line: 4, keyword: 'COPY', text: 'COPY testfile.txt c:\\' },
      { line: 5, keyword: 'RUN', text: 'RUN dir c:\\ && echo done' },
    ]);
  });

  it('ignores an escape "directive" after the first instruction', () => {
    const df = lines('FROM busybox', '# escape=`', 'RUN echo a `', 'RUN echo b \\', '  c');
    expect(parseDockerfile(df)).toEqual([
      { line: 1, keyword: 'FROM', text: 'FROM busybox' },
      { line: 3, keyword: 'RUN', text: 'RUN echo a `' },
      { line: 4, keyword: 'RUN', text: 'RUN echo b c' },
    ]);
  });

  it('handles CRLF line endings and a continuation left open at the end', () => {
    expect(parseDockerfile('FROM busybox\r\nRUN a \\\r\n  b\r\nRUN c \\')).toEqual([
      { line: 1, keyword: 'FROM', text: 'FROM busybox' },
      { line: 2, keyword: 'RUN', text: 'RUN a b' },
      { line: 4, keyword: 'RUN', text: 'RUN c' },
    ]);
  });

  it('returns nothing for an empty file or only comments', () => {
    expect(parseDockerfile('')).toEqual([]);
    expect(parseDockerfile('# nothing\n\n   \n')).toEqual([]);
  });
});

describe('lineOfStep', () => {
  const instructions = parseDockerfile(
    lines(
      /* 1 */ 'FROM busybox AS build',
      /* 2 */ 'RUN make',
      /* 3 */ 'RUN   apk add \\',
      /* 4 */ '    curl',
      /* 5 */ '',
      /* 6 */ 'FROM busybox',
      /* 7 */ 'RUN make',
      /* 8 */ 'COPY --from=build /out /out',
    ),
  );

  it('uses the step number when the text there matches', () => {
    expect(lineOfStep(instructions, 2, 'RUN make')).toBe(2);
    expect(lineOfStep(instructions, 4, 'FROM busybox')).toBe(6);
    expect(lineOfStep(instructions, 5, 'RUN make')).toBe(7);
    expect(lineOfStep(instructions, 6, 'COPY --from=build /out /out')).toBe(8);
  });

  it('matches text ignoring case and runs of whitespace', () => {
    expect(lineOfStep(instructions, 3, 'run apk add curl')).toBe(3);
  });

  it('finds a step by its text when the numbering differs', () => {
    // E.g. a builder that counts steps differently: the text is unique, so it wins.
    expect(lineOfStep(instructions, 1, 'COPY --from=build /out /out')).toBe(8);
    expect(lineOfStep(instructions, 9, 'RUN apk add curl')).toBe(3);
  });

  it('falls back to the position when the text is ambiguous or unknown', () => {
    expect(lineOfStep(instructions, 1, 'RUN make')).toBe(1);
    expect(lineOfStep(instructions, 3, 'RUN something else')).toBe(3);
  });

  it('uses the first text match past the end, and gives up when nothing matches', () => {
    expect(lineOfStep(instructions, 42, 'RUN make')).toBe(2);
    expect(lineOfStep(instructions, 42, 'RUN nothing')).toBeUndefined();
    expect(lineOfStep([], 1, 'FROM busybox')).toBeUndefined();
  });
});

describe('withLabels', () => {
  it('appends one LABEL instruction with every label, quoted', () => {
    const out = withLabels('FROM base\nRUN make\n', undefined, { 'a.b': 'x "y" $z', c: '1' });
    expect(out).toBe('FROM base\nRUN make\nLABEL "a.b"="x \\"y\\" \\$z" "c"="1"\n');
  });

  it('puts the LABEL at the end of the target stage, before the next FROM', () => {
    const text = 'FROM base AS build\nRUN make \\\n  all\nFROM build AS runtime\nCMD ["app"]\nFROM runtime AS debug\nRUN apk add gdb\n';
    const out = withLabels(text, 'runtime', { k: 'v' });
    expect(out).toBe('FROM base AS build\nRUN make \\\n  all\nFROM build AS runtime\nCMD ["app"]\nLABEL "k"="v"\nFROM runtime AS debug\nRUN apk add gdb\n');
    expect(parseDockerfile(out).map((i) => i.keyword)).toEqual(['FROM', 'RUN', 'FROM', 'CMD', 'LABEL', 'FROM', 'RUN']);
  });

  it('uses the escape character of the # escape directive', () => {
    const out = withLabels('# escape=`\nFROM base\n', undefined, { k: 'a"b' });
    expect(out).toBe('# escape=`\nFROM base\nLABEL "k"="a`"b"\n');
  });
});

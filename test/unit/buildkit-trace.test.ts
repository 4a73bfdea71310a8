import { describe, expect, it } from 'vitest';
import { BuildTrace, cleanBuildError, locateStep, originalLine, parseErrorLine, parseStepName, type BuildEvent } from '../../src/build/buildkit-trace.js';
import { decodeStatusResponse, decodeTraceAux, type StatusResponse } from '../../src/build/buildkit-status.js';
import { parseDockerfile, withLabels } from '../../src/build/dockerfile.js';

// A protobuf writer just big enough to build StatusResponse bytes by hand (field numbers of
// moby/buildkit api/services/control/control.proto).
const varint = (n: number): number[] => {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return out;
};
const key = (field: number, wire: number) => varint(field * 8 + wire);
const bytesField = (field: number, body: Uint8Array | number[] | string): number[] => {
  const b = typeof body === 'string' ? [...Buffer.from(body)] : [...body];
  return [...key(field, 2), ...varint(b.length), ...b];
};
const varintField = (field: number, n: number) => [...key(field, 0), ...varint(n)];
const timestamp = (ms: number) => [...varintField(1, Math.floor(ms / 1000)), ...varintField(2, (ms % 1000) * 1e6)];
const message = (...fields: number[][]) => Uint8Array.from(fields.flat());

interface VertexInput {
  digest: string;
  name: string;
  inputs?: string[];
  cached?: boolean;
  started?: number;
  completed?: number;
  error?: string;
}
const vertex = (v: VertexInput) =>
  bytesField(
    1,
    message(
      bytesField(1, v.digest),
      ...(v.inputs ?? []).map((i) => bytesField(2, i)),
      bytesField(3, v.name),
      v.cached ? varintField(4, 1) : [],
      v.started !== undefined ? bytesField(5, timestamp(v.started)) : [],
      v.completed !== undefined ? bytesField(6, timestamp(v.completed)) : [],
      v.error ? bytesField(7, v.error) : [],
    ),
  );
const log = (digest: string, stream: number, msg: string | number[]) =>
  bytesField(3, message(bytesField(1, digest), bytesField(2, timestamp(1_700_000_000_000)), varintField(3, stream), bytesField(4, msg)));
const status = (...fields: number[][]): StatusResponse => decodeStatusResponse(message(...fields));

const T0 = 1_764_260_000_123; // a millisecond timestamp, exactly representable as seconds + nanos

describe('decodeStatusResponse', () => {
  it('reads vertexes, statuses and logs with every field skiff uses', () => {
    const bytes = message(
      vertex({ digest: 'sha256:aa', inputs: ['sha256:i1', 'sha256:i2'], name: '[app 2/3] RUN make', cached: true, started: T0, completed: T0 + 1500 }),
      vertex({ digest: 'sha256:bb', name: '[app 3/3] RUN false', started: T0, error: 'exit code: 1' }),
      bytesField(
        2,
        message(
          bytesField(1, 'extracting sha256:cc'),
          bytesField(2, 'sha256:bb'),
          bytesField(3, 'extracting'),
          varintField(4, 5_000_000_000),
          varintField(5, 6_000_000_000),
          bytesField(6, timestamp(T0)),
          bytesField(7, timestamp(T0)),
          bytesField(8, timestamp(T0 + 1)),
        ),
      ),
      log('sha256:aa', 2, 'warning: x\n'),
    );
    expect(decodeStatusResponse(bytes)).toEqual({
      vertexes: [
        {
          digest: 'sha256:aa',
          inputs: ['sha256:i1', 'sha256:i2'],
          name: '[app 2/3] RUN make',
          cached: true,
          started: T0,
          completed: T0 + 1500,
        },
        { digest: 'sha256:bb', inputs: [], name: '[app 3/3] RUN false', cached: false, started: T0, error: 'exit code: 1' },
      ],
      statuses: [
        {
          id: 'extracting sha256:cc',
          vertex: 'sha256:bb',
          name: 'extracting',
          current: 5_000_000_000,
          total: 6_000_000_000,
          timestamp: T0,
          started: T0,
          completed: T0 + 1,
        },
      ],
      logs: [{ vertex: 'sha256:aa', timestamp: 1_700_000_000_000, stream: 2, msg: Uint8Array.from(Buffer.from('warning: x\n')) }],
    });
  });

  it('skips fields it does not know, of every wire type (a newer BuildKit adds some)', () => {
    const unknownMessage = bytesField(8, message(bytesField(1, 'group'), varintField(3, 1)));
    const fixed64 = [...key(9, 1), 1, 2, 3, 4, 5, 6, 7, 8];
    const fixed32 = [...key(10, 5), 1, 2, 3, 4];
    const bytes = message(
      bytesField(1, message(bytesField(1, 'sha256:aa'), bytesField(3, 'exporting to image'), unknownMessage, fixed64, fixed32, varintField(11, 300))),
      bytesField(4, message(bytesField(1, 'sha256:aa'), varintField(2, 1), bytesField(3, 'a warning'))), // VertexWarning: not read
      varintField(12, 7),
    );
    expect(decodeStatusResponse(bytes)).toEqual({
      vertexes: [{ digest: 'sha256:aa', inputs: [], name: 'exporting to image', cached: false }],
      statuses: [],
      logs: [],
    });
  });

  it('throws on truncated bytes rather than inventing fields', () => {
    const whole = message(vertex({ digest: 'sha256:aa', name: '[1/2] FROM busybox' }));
    expect(() => decodeStatusResponse(whole.subarray(0, whole.length - 3))).toThrow(/past the end/);
    expect(() => decodeStatusResponse(Uint8Array.from([0x0a, 0x80]))).toThrow(/truncated varint/);
    expect(() => decodeStatusResponse(Uint8Array.from([0x0b]))).toThrow(/wire type 3/);
  });

  it('decodes what dockerd 20.10 sent for a failed RUN (a moby.buildkit.trace aux, base64)', () => {
    const aux =
      'CqcCCkdzaGEyNTY6MWRkNjdhNzBmOGRjNWM4ZDhlODVhZDliM2QyNjYzZGNlZmM4MzIwZTljNDdiYmUzYjljNzFkNTg3MDk2OGVmNRJHc2hhMjU2OjI4Zjc1NzZiOTg2MGMzMzVkYzA4OTI2Y2JkYWI5NzQ5ZDNlZTA2NDM4ZGEyYTM5Y2Q5ODE3NDY1NDY1MzY4YWUaJls0LzRdIFJVTiBlY2hvIGFib3V0IHRvIGZhaWwgJiYgZXhpdCA3KgwI4t+m2AYQ8vra8gIyDAji36bYBhDtwqKWAzpPZXhlY3V0b3IgZmFpbGVkIHJ1bm5pbmcgWy9iaW4vc2ggLWMgZWNobyBhYm91dCB0byBmYWlsICYmIGV4aXQgN106IGV4aXQgY29kZTogNw==';
    const [v] = decodeTraceAux(aux).vertexes;
    expect(v).toMatchObject({
      digest: 'sha256:1dd67a70f8dc5c8d8e85ad9b3d2663dcefc8320e9c47bbe3b9c71d5870968ef5',
      inputs: ['sha256:28f7576b9860c335dc08926cbdab9749d3ee06438da2a39cd9817465465368ae'],
      name: '[4/4] RUN echo about to fail && exit 7',
      cached: false,
      error: 'executor failed running [/bin/sh -c echo about to fail && exit 7]: exit code: 7',
    });
    expect(v!.completed! - v!.started!).toBeGreaterThanOrEqual(0);
    expect(new Date(v!.started!).getUTCFullYear()).toBe(2026);
  });
});

describe('parseStepName', () => {
  it('reads stage, position and instruction; internal vertices are no steps', () => {
    expect(parseStepName('[2/4] RUN echo hello')).toEqual({ stage: undefined, index: 2, total: 4, text: 'RUN echo hello' });
    expect(parseStepName('[runtime 3/3] COPY --from=0 /one /one')).toEqual({ stage: 'runtime', index: 3, total: 3, text: 'COPY --from=0 /one /one' });
    expect(parseStepName('[stage-0  2/12] WORKDIR /w')).toEqual({ stage: 'stage-0', index: 2, total: 12, text: 'WORKDIR /w' });
    expect(parseStepName('[linux/amd64 app 1/2] FROM docker.io/library/busybox')).toMatchObject({ stage: 'app', index: 1 });
    expect(parseStepName('[ 3/12] RUN x\ny')).toEqual({ stage: undefined, index: 3, total: 12, text: 'RUN x\ny' });
    expect(parseStepName('[internal] load metadata for docker.io/library/busybox:1')).toBeUndefined();
    expect(parseStepName('importing cache manifest from 127.0.0.1:5000/x/app:main')).toBeUndefined();
    expect(parseStepName('exporting to image')).toBeUndefined();
  });
});

describe('locateStep', () => {
  const multi = parseDockerfile(
    [
      /* 1 */ 'ARG X=1',
      /* 2 */ 'FROM busybox',
      /* 3 */ 'WORKDIR /w',
      /* 4 */ 'RUN echo one > /one',
      /* 5 */ 'ENV A=b',
      /* 6 */ 'FROM busybox AS runtime',
      /* 7 */ 'ENV FOO=bar',
      /* 8 */ 'RUN echo $FOO > /foo',
      /* 9 */ 'COPY --from=0 /one /one',
      /* 10 */ 'EXPOSE 80',
      /* 11 */ 'RUN echo $FOO > /foo',
    ].join('\n'),
  );
  const at = (name: string) => locateStep(multi, parseStepName(name)!);

  it('finds a stage by alias or number and a step by its position among the vertex-making instructions', () => {
    expect(at('[stage-0 3/3] RUN echo one > /one')).toEqual({ line: 4, number: 4, text: 'RUN echo one > /one' });
    expect(at('[stage-0 2/3] WORKDIR /w')).toEqual({ line: 3, number: 3, text: 'WORKDIR /w' });
    // BuildKit shows RUN with its variables expanded, and the same text twice: the position decides.
    expect(at('[runtime 2/4] RUN echo bar > /foo')).toEqual({ line: 8, number: 8, text: 'RUN echo $FOO > /foo' });
    expect(at('[runtime 4/4] RUN echo bar > /foo')).toEqual({ line: 11, number: 11, text: 'RUN echo $FOO > /foo' });
    expect(at('[RUNTIME 3/4] COPY --from=0 /one /one')).toMatchObject({ line: 9 });
  });

  it('falls back to the text when the count of steps differs (another BuildKit version)', () => {
    expect(at('[stage-0 2/2] RUN echo one > /one')).toEqual({ line: 4, number: 4, text: 'RUN echo one > /one' });
    expect(at('[runtime 9/9] COPY --from=0 /one /one')).toMatchObject({ line: 9 });
    expect(at('[runtime 9/9] ADD x /x')).toBeUndefined();
  });

  it('a single-stage Dockerfile has no stage in the name', () => {
    const single = parseDockerfile('FROM skiff-base/busybox:1\nCOPY worker.sh /worker.sh\nCMD ["/bin/sh", "/worker.sh"]\nRUN exit 7\n');
    expect(locateStep(single, parseStepName('[3/3] RUN exit 7')!)).toEqual({ line: 4, number: 4, text: 'RUN exit 7' });
    expect(locateStep(single, parseStepName('[1/3] FROM docker.io/skiff-base/busybox:1')!)).toEqual({
      line: 1,
      number: 1,
      text: 'FROM skiff-base/busybox:1',
    });
  });
});

describe('BuildTrace', () => {
  const instructions = parseDockerfile('FROM busybox\nRUN make\nCOPY app.txt /app.txt\n');
  const describeEvent = (e: BuildEvent) =>
    e.type === 'step'
      ? `${e.state} ${e.step.name.index}/${e.step.name.total} line ${e.step.location?.line}`
      : e.type === 'internal'
        ? `internal ${e.name}`
        : `output ${e.line}`;

  it('gives one event per step change, lines of output, counts, and the failure with its whole output', () => {
    const trace = new BuildTrace((s) => locateStep(instructions, s));
    const events: BuildEvent[] = [];
    const feed = (...fields: number[][]) => events.push(...trace.update(status(...fields)));
    feed(vertex({ digest: 'ctx', name: '[internal] load remote build context' }));
    feed(vertex({ digest: 'ctx', name: '[internal] load remote build context', started: T0 }));
    feed(vertex({ digest: 'ctx', name: '[internal] load remote build context', started: T0, completed: T0 }));
    feed(vertex({ digest: 'from', name: '[1/3] FROM docker.io/library/busybox', started: T0 }));
    feed(vertex({ digest: 'from', name: '[1/3] FROM docker.io/library/busybox', started: T0, completed: T0, cached: true }));
    feed(vertex({ digest: 'run', name: '[2/3] RUN make', started: T0, completed: T0, cached: true }));
    feed(vertex({ digest: 'copy', name: '[3/3] COPY app.txt /app.txt', started: T0 }));
    // Output arrives in pieces that split lines and even a UTF-8 character.
    const euro = [...Buffer.from('€')];
    feed(log('copy', 1, 'first li'), log('copy', 1, [...Buffer.from('ne\nsecond '), euro[0]!]));
    feed(log('copy', 2, [...euro.slice(1), ...Buffer.from('\r\nprogress 10%\rprogress 100%\nno newline')]));
    feed(vertex({ digest: 'copy', name: '[3/3] COPY app.txt /app.txt', started: T0, completed: T0, error: 'failed to copy: boom' }));
    feed(vertex({ digest: 'other', name: '[internal] load metadata for x', started: T0, completed: T0, error: 'context canceled' }));
    expect(events.map(describeEvent)).toEqual([
      'internal [internal] load remote build context',
      'running 1/3 line 1',
      'cached 1/3 line 1',
      'cached 2/3 line 2',
      'running 3/3 line 3',
      'output first line',
      'output second €',
      'output progress 100%',
      'output no newline',
      'internal [internal] load metadata for x',
    ]);
    expect(trace.counts).toEqual({ steps: 3, cachedSteps: 2 });
    expect(trace.failure).toEqual({
      vertex: '[3/3] COPY app.txt /app.txt',
      step: {
        digest: 'copy',
        name: { stage: undefined, index: 3, total: 3, text: 'COPY app.txt /app.txt' },
        location: { line: 3, number: 3, text: 'COPY app.txt /app.txt' },
      },
      error: 'failed to copy: boom',
      output: ['first line', 'second €', 'progress 100%', 'no newline'],
    });
  });

  it('finish() hands out the last partial line; no failure when nothing failed', () => {
    const trace = new BuildTrace();
    trace.update(status(vertex({ digest: 'run', name: '[2/2] RUN echo -n hi', started: T0 }), log('run', 1, 'hi')));
    expect(trace.finish().map(describeEvent)).toEqual(['output hi']);
    expect(trace.failure).toBeUndefined();
    expect(trace.counts).toEqual({ steps: 1, cachedSteps: 0 });
  });

  it('a cancelled vertex is the failure only when nothing else failed', () => {
    const trace = new BuildTrace();
    trace.update(status(vertex({ digest: 'a', name: '[2/3] RUN sleep 9', started: T0, error: 'context canceled' })));
    expect(trace.failure).toMatchObject({ vertex: '[2/3] RUN sleep 9', error: 'context canceled' });
  });
});

describe('error text', () => {
  it('reads a failed step the way the classic builder words it', () => {
    expect(cleanBuildError('executor failed running [/bin/sh -c echo about to fail && exit 7]: exit code: 7')).toBe(
      "The command '/bin/sh -c echo about to fail && exit 7' returned a non-zero code: 7",
    );
    expect(cleanBuildError('failed to solve: process "/bin/sh -c make" did not complete successfully: exit code: 2')).toBe(
      "The command '/bin/sh -c make' returned a non-zero code: 2",
    );
    expect(
      cleanBuildError('failed to solve with frontend dockerfile.v0: failed to create LLB definition: dockerfile parse error line 3: unknown instruction: FOO'),
    ).toBe('dockerfile parse error line 3: unknown instruction: FOO');
    expect(cleanBuildError('(HTTP code 400) unexpected - dockerfile parse error line 4: unknown instruction: FOO')).toBe(
      'dockerfile parse error line 4: unknown instruction: FOO',
    );
    expect(cleanBuildError('failed to compute cache key: "/missing.txt" not found: not found')).toBe(
      'failed to compute cache key: "/missing.txt" not found: not found',
    );
  });

  it('finds the line of a parse error', () => {
    expect(parseErrorLine('dockerfile parse error line 3: unknown instruction: FOO')).toBe(3);
    expect(parseErrorLine('Dockerfile parse error on line 12: unknown instruction: BAR')).toBe(12);
    expect(parseErrorLine('exit code: 1')).toBeUndefined();
  });

  it("maps a line of the generated Dockerfile back to the project's, around skiff's LABEL", () => {
    const original = 'FROM a AS build\nRUN make\nFROM b\nCOPY --from=build /x /x\n';
    const inserted = withLabels(original, 'build', { k: 'v' });
    expect(inserted).toBe('FROM a AS build\nRUN make\nLABEL "k"="v"\nFROM b\nCOPY --from=build /x /x\n');
    expect([1, 2, 3, 4, 5].map((l) => originalLine(original, inserted, l))).toEqual([1, 2, undefined, 3, 4]);
    const crlf = 'FROM a\r\nRUN make\r\n\r\n';
    const appended = withLabels(crlf, undefined, { k: 'v' });
    expect([1, 2, 3].map((l) => originalLine(crlf, appended, l))).toEqual([1, 2, undefined]);
  });
});

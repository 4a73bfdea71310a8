import { StringDecoder } from 'node:string_decoder';
import type { DockerfileInstruction } from './dockerfile.js';

/**
 * BuildKit's progress, as the Docker Engine streams it for `POST /build?version=2`:
 * `{"id":"moby.buildkit.trace","aux":"<base64>"}` lines, each a `StatusResponse` of
 * BuildKit's control API (moby/buildkit api/services/control/control.proto). Only the
 * fields skiff shows are decoded; everything else is skipped by its wire type, so a
 * newer BuildKit that adds fields decodes the same.
 */
export interface StatusResponse {
  vertexes: Vertex[];
  statuses: VertexStatus[];
  logs: VertexLog[];
}

/** One node of the build graph: a Dockerfile step (`[app 3/5] RUN make`) or an internal one (`[internal] load …`). */
export interface Vertex {
  digest: string;
  inputs: string[];
  name: string;
  cached: boolean;
  /** Milliseconds since the epoch. */
  started?: number;
  completed?: number;
  error?: string;
}

/** Progress inside a vertex (bytes pulled, layers exported). */
export interface VertexStatus {
  id: string;
  vertex: string;
  name: string;
  current: number;
  total: number;
  timestamp?: number;
  started?: number;
  completed?: number;
}

/** Output of a vertex's process: stream 1 is stdout, 2 stderr. */
export interface VertexLog {
  vertex: string;
  timestamp?: number;
  stream: number;
  msg: Uint8Array;
}

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_BYTES = 2;
const WIRE_FIXED32 = 5;

/** A reader of protobuf's wire format (https://protobuf.dev/programming-guides/encoding/). */
class WireReader {
  private pos = 0;
  constructor(private readonly buf: Uint8Array) {}

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  /** Field number and wire type of the next field. */
  key(): { field: number; wire: number } {
    const key = this.varint();
    return { field: Math.floor(key / 8), wire: key % 8 };
  }

  /** An unsigned varint; exact up to 2^53, which every timestamp and count here stays below. */
  varint(): number {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      if (this.pos >= this.buf.length) throw new Error('truncated varint');
      if (shift > 63) throw new Error('varint longer than 10 bytes');
      const byte = this.buf[this.pos++]!;
      value += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return value;
    }
  }

  bytes(): Uint8Array {
    const length = this.varint();
    if (this.pos + length > this.buf.length) throw new Error('length-delimited field runs past the end');
    const out = this.buf.subarray(this.pos, this.pos + length);
    this.pos += length;
    return out;
  }

  string(): string {
    return Buffer.from(this.bytes()).toString('utf8');
  }

  skip(wire: number) {
    if (wire === WIRE_VARINT) this.varint();
    else if (wire === WIRE_BYTES) this.bytes();
    else if (wire === WIRE_FIXED64) this.advance(8);
    else if (wire === WIRE_FIXED32) this.advance(4);
    else throw new Error(`unsupported wire type ${wire}`);
  }

  private advance(n: number) {
    if (this.pos + n > this.buf.length) throw new Error('fixed-width field runs past the end');
    this.pos += n;
  }
}

/** Reads every field of a message, handing (field, wire type, reader) to `onField`; returns true when it consumed the field. */
function readMessage(buf: Uint8Array, onField: (field: number, wire: number, r: WireReader) => boolean) {
  const r = new WireReader(buf);
  while (!r.done) {
    const { field, wire } = r.key();
    if (!onField(field, wire, r)) r.skip(wire);
  }
}

/** google.protobuf.Timestamp { int64 seconds = 1; int32 nanos = 2; } as epoch milliseconds. */
function timestamp(buf: Uint8Array): number {
  let seconds = 0;
  let nanos = 0;
  readMessage(buf, (field, wire, r) => {
    if (wire !== WIRE_VARINT) return false;
    if (field === 1) seconds = r.varint();
    else if (field === 2) nanos = r.varint();
    else return false;
    return true;
  });
  return seconds * 1000 + Math.floor(nanos / 1e6);
}

function vertex(buf: Uint8Array): Vertex {
  const v: Vertex = { digest: '', inputs: [], name: '', cached: false };
  readMessage(buf, (field, wire, r) => {
    if (field === 4 && wire === WIRE_VARINT) v.cached = r.varint() !== 0;
    else if (wire !== WIRE_BYTES) return false;
    else if (field === 1) v.digest = r.string();
    else if (field === 2) v.inputs.push(r.string());
    else if (field === 3) v.name = r.string();
    else if (field === 5) v.started = timestamp(r.bytes());
    else if (field === 6) v.completed = timestamp(r.bytes());
    else if (field === 7) v.error = r.string() || undefined;
    else return false;
    return true;
  });
  return v;
}

function vertexStatus(buf: Uint8Array): VertexStatus {
  const s: VertexStatus = { id: '', vertex: '', name: '', current: 0, total: 0 };
  readMessage(buf, (field, wire, r) => {
    if (wire === WIRE_VARINT && field === 4) s.current = r.varint();
    else if (wire === WIRE_VARINT && field === 5) s.total = r.varint();
    else if (wire !== WIRE_BYTES) return false;
    else if (field === 1) s.id = r.string();
    else if (field === 2) s.vertex = r.string();
    else if (field === 3) s.name = r.string();
    else if (field === 6) s.timestamp = timestamp(r.bytes());
    else if (field === 7) s.started = timestamp(r.bytes());
    else if (field === 8) s.completed = timestamp(r.bytes());
    else return false;
    return true;
  });
  return s;
}

function vertexLog(buf: Uint8Array): VertexLog {
  const l: VertexLog = { vertex: '', stream: 0, msg: new Uint8Array() };
  readMessage(buf, (field, wire, r) => {
    if (field === 3 && wire === WIRE_VARINT) l.stream = r.varint();
    else if (wire !== WIRE_BYTES) return false;
    else if (field === 1) l.vertex = r.string();
    else if (field === 2) l.timestamp = timestamp(r.bytes());
    else if (field === 4) l.msg = r.bytes();
    else return false;
    return true;
  });
  return l;
}

/** Decodes one `StatusResponse`; throws on bytes that are not one. */
export function decodeStatusResponse(buf: Uint8Array): StatusResponse {
  const out: StatusResponse = { vertexes: [], statuses: [], logs: [] };
  readMessage(buf, (field, wire, r) => {
    if (wire !== WIRE_BYTES) return false;
    if (field === 1) out.vertexes.push(vertex(r.bytes()));
    else if (field === 2) out.statuses.push(vertexStatus(r.bytes()));
    else if (field === 3) out.logs.push(vertexLog(r.bytes()));
    else return false;
    return true;
  });
  return out;
}

/** The `aux` of a `moby.buildkit.trace` message (base64), decoded. */
export function decodeTraceAux(aux: string): StatusResponse {
  return decodeStatusResponse(Buffer.from(aux, 'base64'));
}

/** A Dockerfile step as BuildKit names its vertex: `[app 3/5] RUN make` → stage app, 3 of 5. */
export interface StepName {
  /** The stage's name (its `AS` alias, or `stage-N`); absent when the Dockerfile has one stage. */
  stage?: string;
  /** 1-based, among the stage's steps that make a vertex (FROM, RUN, COPY, ADD, WORKDIR). */
  index: number;
  total: number;
  /** The instruction as BuildKit shows it (variables expanded). */
  text: string;
}

export function parseStepName(name: string): StepName | undefined {
  const m = /^\[(?:([^\]]*?) )?\s*(\d+)\/(\d+)\] ([\s\S]*)$/.exec(name);
  if (!m) return undefined;
  // A multi-platform build puts the platform first: "[linux/amd64 app 2/3]".
  const stage = m[1]?.trim().split(/\s+/).pop();
  return { stage: stage || undefined, index: Number(m[2]), total: Number(m[3]), text: m[4]! };
}

/** Where a step is in the project's Dockerfile. */
export interface DockerfileStep {
  line: number;
  /** 1-based position among all instructions: the step number the classic builder reports. */
  number: number;
  /** The instruction as written (continuation lines joined). */
  text: string;
}

/** The instructions BuildKit's Dockerfile frontend turns into vertices; the others (ENV, LABEL, CMD…) only change the image config. */
const VERTEX_KEYWORDS = new Set(['FROM', 'RUN', 'COPY', 'ADD', 'WORKDIR']);

const normalize = (s: string) => s.replace(/\s+/g, ' ').trim().toLowerCase();
const keywordOf = (text: string) => (text.trim().split(/\s+/)[0] ?? '').toUpperCase();

/**
 * Finds the Dockerfile instruction of a BuildKit step: the stage by its alias
 * or `stage-N`, then the step by its position among the stage's vertex-making
 * instructions, checked against its keyword; else by text within the stage.
 * (Positions, not text, first: BuildKit shows RUN with variables expanded.)
 */
export function locateStep(instructions: DockerfileInstruction[], step: StepName): DockerfileStep | undefined {
  const stages: DockerfileInstruction[][] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') stages.push([ins]);
    else stages.at(-1)?.push(ins);
  }
  let stage: DockerfileInstruction[] | undefined;
  if (!step.stage) stage = stages.length === 1 ? stages[0] : undefined;
  else {
    const numbered = /^stage-(\d+)$/.exec(step.stage);
    stage = numbered ? stages[Number(numbered[1])] : stages.find((s) => normalize(/\sas\s+(\S+)\s*$/i.exec(s[0]!.text)?.[1] ?? '') === normalize(step.stage!));
  }
  const pool = stage ?? instructions;
  const keyword = keywordOf(step.text);
  let found: DockerfileInstruction | undefined;
  if (stage) {
    const steps = stage.filter((ins) => VERTEX_KEYWORDS.has(ins.keyword));
    const byPosition = steps.length === step.total ? steps[step.index - 1] : undefined;
    if (byPosition?.keyword === keyword) found = byPosition;
  }
  if (!found) {
    const byText = pool.filter((ins) => normalize(ins.text) === normalize(step.text));
    if (byText.length === 1) found = byText[0];
  }
  if (!found) {
    const sameKeyword = pool.filter((ins) => ins.keyword === keyword);
    if (sameKeyword.length === 1) found = sameKeyword[0];
  }
  if (!found) return undefined;
  return { line: found.line, number: instructions.indexOf(found) + 1, text: found.text };
}

/** A Dockerfile step of the build, as followed from its vertex. */
export interface TracedStep {
  digest: string;
  name: StepName;
  location?: DockerfileStep;
}

export type BuildEvent =
  /** A Dockerfile step started running, or was found in the cache (then it does not run). */
  | { type: 'step'; step: TracedStep; state: 'running' | 'cached' }
  /** An internal vertex (loading the context, importing a cache manifest, exporting the image) started. */
  | { type: 'internal'; name: string }
  /** A whole line of a vertex's output. */
  | { type: 'output'; vertex: string; step?: TracedStep; line: string };

export interface BuildFailure {
  /** The vertex that failed, as BuildKit names it. */
  vertex: string;
  step?: TracedStep;
  error: string;
  /** Everything the failed vertex printed. */
  output: string[];
}

interface VertexState {
  name: string;
  step?: TracedStep;
  cached: boolean;
  started: boolean;
  completed: boolean;
  error?: string;
  reportedRunning: boolean;
  reportedCached: boolean;
  partial: string;
  output: string[];
  dropped: number;
}

/** How many output lines of one vertex are kept for its failure report (a guard, not a tail: builds print far less). */
export const MAX_KEPT_LINES = 50_000;

/**
 * Follows a BuildKit build from its StatusResponses: turns vertex updates into
 * one event per step change, splits logs into lines, keeps each vertex's
 * output for the failure report, and counts steps and cache hits.
 */
export class BuildTrace {
  private readonly vertexes = new Map<string, VertexState>();
  private readonly decoder = new Map<string, StringDecoder>();

  /** `locate` maps a step to the project's Dockerfile (see locateStep). */
  constructor(private readonly locate: (step: StepName) => DockerfileStep | undefined = () => undefined) {}

  update(status: StatusResponse): BuildEvent[] {
    const events: BuildEvent[] = [];
    for (const v of status.vertexes) {
      const state = this.state(v.digest, v.name);
      state.cached ||= v.cached;
      state.started ||= v.started !== undefined;
      state.completed ||= v.completed !== undefined;
      if (v.error) state.error = v.error;
      if (state.cached && !state.reportedCached) {
        state.reportedCached = true;
        if (state.step) events.push({ type: 'step', step: state.step, state: 'cached' });
      } else if (state.started && !state.cached && !state.reportedRunning) {
        state.reportedRunning = true;
        events.push(state.step ? { type: 'step', step: state.step, state: 'running' } : { type: 'internal', name: state.name });
      }
      if (state.completed && state.partial) events.push(...this.flush(v.digest, state));
    }
    for (const log of status.logs) {
      const state = this.state(log.vertex, '');
      let decoder = this.decoder.get(log.vertex);
      if (!decoder) this.decoder.set(log.vertex, (decoder = new StringDecoder('utf8')));
      const text = state.partial + decoder.write(Buffer.from(log.msg));
      const lines = text.split('\n');
      state.partial = lines.pop()!;
      for (const raw of lines) events.push(this.line(log.vertex, state, raw));
    }
    return events;
  }

  /** Ends the trace: the last partial lines of every vertex. */
  finish(): BuildEvent[] {
    const events: BuildEvent[] = [];
    for (const [digest, state] of this.vertexes) if (state.partial) events.push(...this.flush(digest, state));
    return events;
  }

  /** Dockerfile steps seen, and how many of them came from the cache (BuildKit's own report). */
  get counts(): { steps: number; cachedSteps: number } {
    let steps = 0;
    let cachedSteps = 0;
    for (const state of this.vertexes.values()) {
      if (!state.step) continue;
      steps++;
      if (state.cached) cachedSteps++;
    }
    return { steps, cachedSteps };
  }

  /**
   * The vertex that failed: the first one with an error that is not a
   * cancellation (when one step fails, BuildKit cancels those running beside it).
   */
  get failure(): BuildFailure | undefined {
    const failed = [...this.vertexes.values()].filter((s) => s.error);
    const root = failed.find((s) => !/context canceled/i.test(s.error!)) ?? failed[0];
    if (!root) return undefined;
    const output = root.dropped ? [`(${root.dropped} earlier lines not kept)`, ...root.output] : [...root.output];
    if (root.partial) output.push(root.partial);
    return { vertex: root.name, step: root.step, error: root.error!, output };
  }

  private state(digest: string, name: string): VertexState {
    const stepOf = (n: string) => {
      const step = parseStepName(n);
      return step ? { digest, name: step, location: this.locate(step) } : undefined;
    };
    let state = this.vertexes.get(digest);
    if (state && !state.name && name) {
      // Output that came before its vertex (not seen so far, but cheap to allow).
      state.name = name;
      state.step = stepOf(name);
    }
    if (!state) {
      state = {
        name,
        step: stepOf(name),
        cached: false,
        started: false,
        completed: false,
        reportedRunning: false,
        reportedCached: false,
        partial: '',
        output: [],
        dropped: 0,
      };
      this.vertexes.set(digest, state);
    }
    return state;
  }

  private flush(digest: string, state: VertexState): BuildEvent[] {
    const rest = state.partial + (this.decoder.get(digest)?.end() ?? '');
    state.partial = '';
    return rest ? [this.line(digest, state, rest)] : [];
  }

  private line(digest: string, state: VertexState, raw: string): BuildEvent {
    // A progress bar redraws its line with \r: keep what it last showed.
    const line = raw.replace(/\r+$/, '').split('\r').pop()!;
    state.output.push(line);
    if (state.output.length > MAX_KEPT_LINES) {
      state.output.shift();
      state.dropped++;
    }
    return { type: 'output', vertex: digest, step: state.step, line };
  }
}

/**
 * BuildKit's error text in the classic builder's words where they differ, so a
 * failed step reads the same with either builder: the frontend's prefixes go,
 * and a non-zero exit reads "The command '…' returned a non-zero code: N".
 */
export function cleanBuildError(message: string): string {
  let text = message.replace(/\s+/g, ' ').trim();
  const prefix =
    /^(?:\(HTTP code \d+\) [^-]*-|failed to solve(?: with frontend [\w.-]+)?|failed to create LLB definition|rpc error: code = \w+ desc =|ERROR):?\s*/i;
  for (let m = prefix.exec(text); m && m[0]; m = prefix.exec(text)) text = text.slice(m[0].length);
  const exit =
    /^executor failed running \[([\s\S]*)\]: exit code: (\d+)$/.exec(text) ??
    /^process "([\s\S]*)" did not complete successfully: exit code: (\d+)$/.exec(text);
  if (exit) return `The command '${exit[1]}' returned a non-zero code: ${exit[2]}`;
  return text;
}

/** The line a Dockerfile parse error names ("dockerfile parse error line 3: unknown instruction: FOO"). */
export function parseErrorLine(message: string): number | undefined {
  const m = /dockerfile parse error (?:on )?line (\d+)/i.exec(message);
  return m ? Number(m[1]) : undefined;
}

/**
 * A line of the generated Dockerfile (the project's with skiff's LABEL
 * inserted, build/dockerfile.ts withLabels) as a line of the project's own:
 * lines after the inserted one move up by one; the inserted line itself is
 * skiff's, so it has none (undefined).
 */
export function originalLine(original: string, generated: string, line: number): number | undefined {
  const before = original.replace(/\s+$/, '').split(/\r?\n/);
  const after = generated.split(/\r?\n/);
  let inserted = 0;
  while (inserted < before.length && before[inserted] === after[inserted]) inserted++;
  if (inserted >= before.length) return line <= before.length ? line : undefined;
  if (line <= inserted) return line;
  if (line === inserted + 1) return undefined;
  return line - 1;
}

import { StringDecoder } from 'node:string_decoder';
import type { StatusResponse } from './buildkit-status.js';
import type { DockerfileInstruction } from './dockerfile.js';

/*
 * Following a BuildKit build from its decoded progress (buildkit-status.ts): Dockerfile steps,
 * their output and cache hits, and the failed step's error in the words the classic builder uses.
 */

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

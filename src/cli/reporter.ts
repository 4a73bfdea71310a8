import type { Reporter, SectionOptions } from '../context.js';
import { statusLine } from './format.js';

const useColor = (stream: NodeJS.WriteStream) => stream.isTTY && !process.env.NO_COLOR;

const STATE_COLORS: Record<string, string> = {
  built: '32',
  pushed: '32',
  passed: '32',
  ready: '32',
  deployed: '32',
  'up to date': '36',
  applied: '36',
  failed: '31',
  error: '31',
  'timed out': '31',
  building: '33',
  pushing: '33',
  running: '33',
  waiting: '33',
  progressing: '33',
  applying: '33',
};

function paint(stream: NodeJS.WriteStream, code: string | undefined, text: string): string {
  return code && useColor(stream) ? `\x1b[${code}m${text}\x1b[0m` : text;
}

/** statusLine() with the subject in bold and the state in its colour, on a terminal. */
function paintedStatus(stream: NodeJS.WriteStream, subject: string, state: string, detail?: string): string {
  return statusLine(paint(stream, '1', subject), paint(stream, STATE_COLORS[state], state), detail);
}

export interface LineReporterOptions {
  /** Under GitLab CI: sections are GitLab's collapsible sections. */
  gitlab?: boolean;
  /** The clock of the sections' timestamps, in milliseconds (tests fix it). */
  now?: () => number;
}

/**
 * One line per event: what a CI log wants (no spinners, no cursor moves),
 * and what JSON mode writes to stderr. Sections show only under GitLab CI:
 * elsewhere every unit of work already announces itself with a status line,
 * and a header over interleaved parallel output would say it belongs to one.
 */
export class LineReporter implements Reporter {
  private readonly sections: GitlabSections | undefined;
  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly verbose = false,
    private readonly showLogs = true,
    options: LineReporterOptions = {},
  ) {
    this.sections = options.gitlab ? new GitlabSections((line) => this.write(line), options.now ?? Date.now) : undefined;
  }
  protected write(line: string) {
    this.stream.write(`${line}\n`);
  }
  /** A line of `source`'s unit of work (undefined: of none), printed now or when its section is on the log. */
  private emit(source: string | undefined, line: string) {
    if (this.sections) this.sections.route(source, () => this.write(line));
    else this.write(line);
  }
  info(message: string) {
    this.emit(undefined, message);
  }
  warn(message: string) {
    this.emit(undefined, paint(this.stream, '33', `warning: ${message}`));
  }
  log(source: string, line: string) {
    if (this.showLogs || this.verbose) this.emit(source, `${paint(this.stream, '2', `[${source}]`)} ${line}`);
  }
  status(subject: string, state: string, detail?: string) {
    this.emit(subject, paintedStatus(this.stream, subject, state, detail));
  }
  debug(message: string) {
    if (this.verbose) this.emit(undefined, paint(this.stream, '2', message));
  }
  section(name: string, header: string, opts: SectionOptions = {}): () => void {
    return this.sections?.start(name, header, opts) ?? (() => {});
  }
}

interface OpenSection {
  name: string;
  header: string;
  collapsed: boolean;
  source?: string;
  startedAt: number;
  /** What it printed while waiting for the log, its end included. */
  queue: Array<() => void>;
}

/**
 * GitLab's collapsible sections
 * (https://docs.gitlab.com/ci/jobs/job_logs/#custom-collapsible-sections).
 * GitLab nests a section started inside another, so sections of parallel
 * work must not interleave: one is on the log at a time, a section started
 * meanwhile waits with its lines (kept by their source) and is printed whole
 * when the log is free. Lines of no open section are held until the open one
 * ends, so no warning or verdict is folded into another unit's section.
 */
class GitlabSections {
  private open: OpenSection | undefined;
  private readonly waiting: OpenSection[] = [];
  private held: Array<() => void> = [];
  private readonly names = new Set<string>();
  private promoting = false;

  constructor(
    private readonly write: (line: string) => void,
    private readonly now: () => number,
  ) {}

  start(name: string, header: string, opts: SectionOptions): () => void {
    const section: OpenSection = {
      name: this.unique(name),
      header: header.replace(/[\r\n]+/g, ' '),
      collapsed: Boolean(opts.collapsed),
      source: opts.source,
      startedAt: this.now(),
      queue: [],
    };
    if (this.open || this.waiting.length) this.waiting.push(section);
    else this.begin(section);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      const at = this.now();
      if (this.open === section) this.end(section, at);
      else section.queue.push(() => this.end(section, at));
    };
  }

  route(source: string | undefined, print: () => void) {
    const open = this.open?.source;
    if (open !== undefined && open === source) return print();
    const waiting = source === undefined ? undefined : this.waiting.find((s) => s.source === source);
    if (waiting) waiting.queue.push(print);
    else if (open !== undefined) this.held.push(print);
    else print();
  }

  private begin(section: OpenSection) {
    this.open = section;
    const collapsed = section.collapsed ? '[collapsed=true]' : '';
    this.write(`\x1b[0Ksection_start:${unixSeconds(section.startedAt)}:${section.name}${collapsed}\r\x1b[0K${section.header}`);
  }

  private end(section: OpenSection, at: number) {
    this.write(`\x1b[0Ksection_end:${unixSeconds(at)}:${section.name}\r\x1b[0K`);
    this.open = undefined;
    const held = this.held;
    this.held = [];
    for (const print of held) print();
    if (this.waiting.length && !this.promoting) {
      this.promoting = true;
      // Next turn: the verdict the ended unit prints right after its end comes first.
      queueMicrotask(() => {
        this.promoting = false;
        this.promote();
      });
    }
  }

  /** The waiting sections, in the order they started, each printed up to where it is now. */
  private promote() {
    while (!this.open && this.waiting.length) {
      const next = this.waiting.shift()!;
      this.begin(next);
      for (const print of next.queue.splice(0)) print();
    }
  }

  /** GitLab's section names: [a-z0-9_.-], one per section of the job. */
  private unique(name: string): string {
    const base =
      name
        .toLowerCase()
        .replace(/[^a-z0-9_.-]+/g, '_')
        .replace(/^_+|_+$/g, '') || 'section';
    let candidate = base;
    for (let n = 2; this.names.has(candidate); n++) candidate = `${base}_${n}`;
    this.names.add(candidate);
    return candidate;
  }
}

const unixSeconds = (ms: number) => Math.floor(ms / 1000);

/**
 * On a terminal: log lines scroll as usual, and a block at the bottom shows
 * the current state of every image, test or object, updated in place.
 */
export class LiveReporter extends LineReporter {
  private readonly states = new Map<string, string>();
  private drawn = 0;
  private readonly started = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly tty: NodeJS.WriteStream,
    verbose = false,
  ) {
    super(tty, verbose, true);
    this.timer = setInterval(() => this.redraw(), 500);
    this.timer.unref();
  }
  private clear() {
    if (this.drawn > 0) this.tty.write(`\x1b[${this.drawn}A\x1b[0J`);
    this.drawn = 0;
  }
  private redraw() {
    this.clear();
    const width = this.tty.columns || 100;
    const lines = [...this.states.entries()].map(([subject, text]) => {
      const since = this.started.get(subject);
      const secs = since ? ` ${Math.round((Date.now() - since) / 1000)}s` : '';
      return `  ${text}${secs}`.slice(0, width - 1);
    });
    for (const l of lines) this.tty.write(`${l}\n`);
    this.drawn = lines.length;
  }
  protected override write(line: string) {
    this.clear();
    this.tty.write(`${line}\n`);
    this.redraw();
  }
  override status(subject: string, state: string, detail?: string) {
    const finished = /^(built|pushed|passed|failed|ready|deployed|up to date|error|applied|timed out|interrupted|pruned|deleted)$/.test(state);
    if (!finished && !this.started.has(subject)) this.started.set(subject, Date.now());
    if (finished) {
      this.states.delete(subject);
      this.started.delete(subject);
      super.status(subject, state, detail);
      return;
    }
    this.states.set(subject, paintedStatus(this.tty, subject, state, detail));
    this.redraw();
  }
  close() {
    if (this.timer) clearInterval(this.timer);
    this.clear();
    for (const text of this.states.values()) this.tty.write(`  ${text}\n`);
    this.states.clear();
  }
}

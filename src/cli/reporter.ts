import type { Reporter, SectionOptions } from '../context.js';
import { GitlabSections } from '../gitlab/sections.js';
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

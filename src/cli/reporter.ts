import type { Reporter, RolloutProgress, SectionOptions } from '../context.js';
import { GitlabSections } from '../gitlab/sections.js';
import { statusLine } from './format.js';
import { finalRolloutLines, layoutRolloutView } from './rollout-view.js';

/**
 * Whether a stream is a terminal that takes escape codes: not with NO_COLOR
 * set, nor on TERM=dumb (an editor's shell buffer). Elsewhere skiff writes
 * plain lines only, as to a log.
 */
export function takesEscapes(stream: Pick<NodeJS.WriteStream, 'isTTY'>, env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(stream.isTTY) && !env.NO_COLOR && env.TERM !== 'dumb';
}

const useColor = (stream: NodeJS.WriteStream) => takesEscapes(stream);

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

/** Redraws of the terminal's live view: at most one per this interval, about ten a second. */
export const REDRAW_INTERVAL_MS = 100;

const SHOW_CURSOR = '\x1b[?25h';
const HIDE_CURSOR = '\x1b[?25l';

/**
 * On a terminal: log lines scroll as usual, and a block at the bottom shows
 * the current state of every image, test or object, updated in place. A
 * large rollout (Reporter.rollout) is a table there, with a progress bar,
 * in place of its status lines; when it ends the table is printed once more
 * as plain lines, so the scrollback keeps it.
 */
export class LiveReporter extends LineReporter {
  private readonly states = new Map<string, string>();
  private drawn = 0;
  private readonly started = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private rolloutNow: { progress: RolloutProgress; objects: Set<string> } | undefined;
  private lastDraw = Number.NEGATIVE_INFINITY;
  private drawLater: NodeJS.Timeout | undefined;
  /** The block on the screen now (when `drawn` > 0). */
  private shown = '';
  private cursorHidden = false;
  // A second Ctrl-C exits at once: the cursor must not stay hidden.
  private readonly restoreCursor = () => this.showCursor();

  constructor(
    private readonly tty: NodeJS.WriteStream,
    verbose = false,
    private readonly now: () => number = Date.now,
  ) {
    super(tty, verbose, true);
    this.timer = setInterval(() => this.requestRedraw(), 500);
    this.timer.unref();
  }
  private clear() {
    if (this.drawn > 0) this.tty.write(`\x1b[${this.drawn}A\x1b[0J`);
    this.drawn = 0;
  }
  /** Redraws now, or once REDRAW_INTERVAL_MS has passed since the last redraw. */
  private requestRedraw() {
    const wait = this.lastDraw + REDRAW_INTERVAL_MS - this.now();
    if (wait <= 0) return this.redraw();
    this.drawLater ??= setTimeout(() => {
      this.drawLater = undefined;
      this.redraw();
    }, wait);
    this.drawLater.unref();
  }
  private redraw() {
    if (this.drawLater) clearTimeout(this.drawLater);
    this.drawLater = undefined;
    this.lastDraw = this.now();
    const width = this.tty.columns || 100;
    const lines = [...this.states.entries()].map(([subject, text]) => {
      const since = this.started.get(subject);
      const secs = since ? ` ${Math.round((Date.now() - since) / 1000)}s` : '';
      return `  ${text}${secs}`.slice(0, width - 1);
    });
    if (this.rolloutNow) {
      // The block must fit the screen: the cursor cannot move back above its top to clear it.
      const rows = (this.tty.rows || 24) - 1 - lines.length;
      const paintState = (state: string, text: string) => paint(this.tty, STATE_COLORS[state], text);
      lines.push(...layoutRolloutView(this.rolloutNow.progress, { columns: width, rows }, paintState));
    }
    const block = lines.map((l) => `${l}\n`).join('');
    if (this.drawn > 0 && block === this.shown) return; // the same again: nothing to write
    // One write: the old block cleared and the new one drawn, without a flicker between.
    const up = this.drawn > 0 ? `\x1b[${this.drawn}A\x1b[0J` : '';
    if (up || block) this.tty.write(up + block);
    this.drawn = lines.length;
    this.shown = block;
  }
  protected override write(line: string) {
    this.clear();
    this.tty.write(`${line}\n`);
    this.requestRedraw();
  }
  override status(subject: string, state: string, detail?: string) {
    // The table shows a large rollout's objects and its summary.
    if (this.rolloutNow && (subject === 'release' || this.rolloutNow.objects.has(subject))) return;
    const finished = /^(built|pushed|passed|failed|ready|deployed|up to date|error|applied|timed out|interrupted|pruned|deleted)$/.test(state);
    if (!finished && !this.started.has(subject)) this.started.set(subject, Date.now());
    if (finished) {
      this.states.delete(subject);
      this.started.delete(subject);
      super.status(subject, state, detail);
      return;
    }
    this.states.set(subject, paintedStatus(this.tty, subject, state, detail));
    this.requestRedraw();
  }
  rollout(progress: RolloutProgress) {
    if (progress.outcome) return this.endRollout(progress);
    this.rolloutNow = { progress, objects: new Set(progress.objects.map((o) => o.object)) };
    this.hideCursor();
    this.requestRedraw();
  }
  /** The table's last state, printed once as plain lines above the block. */
  private endRollout(progress: RolloutProgress) {
    if (!this.rolloutNow) return;
    this.rolloutNow = undefined;
    this.clear();
    for (const line of finalRolloutLines(progress)) this.tty.write(`${line}\n`);
    this.showCursor();
    this.redraw();
  }
  private hideCursor() {
    if (this.cursorHidden) return;
    this.cursorHidden = true;
    this.tty.write(HIDE_CURSOR);
    process.once('exit', this.restoreCursor);
  }
  private showCursor() {
    if (!this.cursorHidden) return;
    this.cursorHidden = false;
    this.tty.write(SHOW_CURSOR);
    process.off('exit', this.restoreCursor);
  }
  close() {
    if (this.timer) clearInterval(this.timer);
    if (this.drawLater) clearTimeout(this.drawLater);
    this.drawLater = undefined;
    this.clear();
    // A command that failed while the table was up (an error, Ctrl-C): its last state stays in the scrollback.
    if (this.rolloutNow) for (const line of finalRolloutLines(this.rolloutNow.progress)) this.tty.write(`${line}\n`);
    this.rolloutNow = undefined;
    for (const text of this.states.values()) this.tty.write(`  ${text}\n`);
    this.states.clear();
    this.showCursor();
  }
}

import type { ObjectProgress, RolloutProgress } from '../context.js';
import { table } from './format.js';

/**
 * The live table of a large rollout on a terminal, as text: pure functions of
 * a RolloutProgress and the terminal's size. reporter.ts draws what they return.
 */

/** What the table has room for: the terminal's columns, and the rows left for the table. */
export interface ViewSize {
  columns: number;
  rows: number;
}

/** Paints a state's word (a colour on a terminal); widths are counted on the plain text. */
export type PaintState = (state: ObjectProgress['state'], text: string) => string;

const HEADER = ['OBJECT', 'READY', 'STATE', 'CAUSE'] as const;
const STATE_RANK: Record<ObjectProgress['state'], number> = { failed: 0, waiting: 1, ready: 2 };

/** Failed first, then waiting, then ready; by name within each: what holds the release back is on top. */
export function orderObjects(objects: readonly ObjectProgress[]): ObjectProgress[] {
  return [...objects].sort((a, b) => STATE_RANK[a.state] - STATE_RANK[b.state] || (a.object < b.object ? -1 : a.object > b.object ? 1 : 0));
}

/**
 * How far the release is, 0 to 1: each object counts one, a ready one fully,
 * another by its share of ready pods (never fully: it is not ready yet).
 */
export function releaseFraction(objects: readonly ObjectProgress[]): number {
  if (objects.length === 0) return 1;
  const share = (o: ObjectProgress) => (o.state === 'ready' ? 1 : o.pods && o.pods.want > 0 ? Math.min(o.pods.ready / o.pods.want, 0.99) : 0);
  return objects.reduce((sum, o) => sum + share(o), 0) / objects.length;
}

/** `[#####-----]`, `width` characters in all (at least 3). */
export function progressBar(fraction: number, width: number): string {
  const inner = Math.max(1, width - 2);
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * inner);
  return `[${'#'.repeat(filled)}${'-'.repeat(inner - filled)}]`;
}

/** Control characters (a newline, an escape sequence in a pod's message) would break the table and the cursor's count. */
function clean(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f-\x9f]+/g, ' ');
}

/** The text cut to `width` characters, ending in … when cut. */
function fit(text: string, width: number): string {
  if (width <= 0) return '';
  if (text.length <= width) return text;
  return width === 1 ? text.slice(0, 1) : `${text.slice(0, width - 1)}…`;
}

function readyCell(o: ObjectProgress): string {
  return o.pods ? `${o.pods.ready}/${o.pods.want}` : '-';
}

/** `+12 ready`, or `+15 more: 3 not ready, 12 ready` when unready ones do not fit either. */
function hiddenLine(hidden: readonly ObjectProgress[]): string {
  const ready = hidden.filter((o) => o.state === 'ready').length;
  return ready === hidden.length ? `+${ready} ready` : `+${hidden.length} more: ${hidden.length - ready} not ready, ${ready} ready`;
}

/**
 * The view at the bottom of the terminal: a progress bar with the release's
 * summary, then one row per object (object, ready/desired pods, state,
 * cause), unready ones first. Every line is shorter than the terminal is
 * wide (a wrapped line would throw off the redraw's count), and there are at
 * most `size.rows` lines: objects that do not fit are one `+N ready` line.
 */
export function layoutRolloutView(progress: RolloutProgress, size: ViewSize, paint: PaintState = (_s, text) => text): string[] {
  const width = Math.max(10, size.columns - 1);
  const rows = Math.max(1, size.rows);
  const fraction = releaseFraction(progress.objects);
  const percent = `${Math.floor(fraction * 100)}%`;
  const barWidth = Math.min(40, Math.max(3, Math.floor(width / 3)));
  const lines = [fit(`${progressBar(fraction, barWidth)} ${percent}  ${clean(progress.summary)}`, width)];
  if (rows < 3 || progress.objects.length === 0) return lines;

  const ordered = orderObjects(progress.objects);
  const room = rows - 2;
  const shown = ordered.length <= room ? ordered : ordered.slice(0, room - 1);
  const hidden = ordered.slice(shown.length);
  const cells = shown.map((o) => ({ object: clean(o.object), ready: readyCell(o), state: o.state, cause: clean(o.cause ?? '') }));

  const readyWidth = Math.max(HEADER[1].length, ...cells.map((c) => c.ready.length));
  const stateWidth = Math.max(HEADER[2].length, ...cells.map((c) => c.state.length));
  const longest = Math.max(HEADER[0].length, ...cells.map((c) => c.object.length));
  const fixed = readyWidth + stateWidth + 4;
  // The object's name gets what it needs up to 45% of the width (less on a narrow terminal); the cause what is left.
  const objectWidth = Math.min(longest, Math.max(HEADER[0].length, Math.floor(width * 0.45)), width - fixed);
  if (objectWidth < HEADER[0].length) {
    // Too narrow for columns: each object on one line, cut.
    for (const c of cells) lines.push(fit(`${c.object} ${c.ready} ${c.state}`, width));
  } else {
    const causeWidth = width - objectWidth - fixed - 2;
    const row = (object: string, ready: string, state: string, cause: string, painted = state) =>
      `${fit(object, objectWidth).padEnd(objectWidth)}  ${ready.padStart(readyWidth)}  ${painted}${' '.repeat(stateWidth - state.length)}${
        causeWidth >= 4 && cause ? `  ${fit(cause, causeWidth)}` : ''
      }`.trimEnd();
    lines.push(row(HEADER[0], HEADER[1], HEADER[2], HEADER[3]));
    for (const c of cells) lines.push(row(c.object, c.ready, c.state, c.cause, paint(c.state, c.state)));
  }
  if (hidden.length) lines.push(fit(hiddenLine(hidden), width));
  return lines;
}

/** The table once more when the rollout ends, every object and its whole cause, for the scrollback: plain lines, no escape codes. */
export function finalRolloutLines(progress: RolloutProgress): string[] {
  if (progress.objects.length === 0) return [];
  const rows = orderObjects(progress.objects).map((o) => [clean(o.object), readyCell(o), o.state, clean(o.cause ?? '')]);
  return table([[...HEADER], ...rows])
    .split('\n')
    .map((line) => line.trimEnd());
}

// The live terminal view's table of a large rollout (LiveReporter.rollout),
// against a fake terminal and a fake clock. The real terminal is
// test/integration/live-rollout.test.ts.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LineReporter, LiveReporter, REDRAW_INTERVAL_MS, takesEscapes } from '../../src/cli/reporter.js';
import type { ObjectProgress, RolloutProgress } from '../../src/context.js';
import { Redactor } from '../../src/secrets/redact.js';

/** A terminal of 80×24 that keeps what is written. */
function terminal(isTTY = true) {
  const out = { text: '', isTTY, columns: 80, rows: 24, write: (chunk: string) => ((out.text += chunk), true) };
  return { stream: out as unknown as NodeJS.WriteStream, out };
}

const REDRAW = /\x1b\[(\d+)A\x1b\[0J/g; // eslint-disable-line no-control-regex
const redraws = (text: string) => [...text.matchAll(REDRAW)].length;
// eslint-disable-next-line no-control-regex
const plain = (text: string) => text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');

function release(readyCount: number, total = 12, outcome?: RolloutProgress['outcome']): RolloutProgress {
  const objects: ObjectProgress[] = Array.from({ length: total }, (_, i) =>
    i < readyCount
      ? { object: `Deployment/web-${i}`, state: 'ready', pods: { ready: 1, want: 1 } }
      : { object: `Deployment/web-${i}`, state: 'waiting', pods: { ready: 0, want: 1 }, cause: '0/1 updated, 0/1 available' },
  );
  return { objects, summary: `${readyCount}/${total} objects ready`, ...(outcome ? { outcome } : {}) };
}

describe('LiveReporter: the table of a large rollout', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('redraws in place at most once per interval however often the rollout changes, the last state included', () => {
    const t = terminal();
    const r = new LiveReporter(t.stream);
    r.rollout(release(0));
    expect(t.out.text.startsWith('\x1b[?25l')).toBe(true); // the cursor hidden while the table is up
    const first = t.out.text.length;
    for (let i = 1; i <= 10; i++) r.rollout(release(i));
    expect(t.out.text.length).toBe(first); // throttled: nothing drawn yet
    vi.advanceTimersByTime(REDRAW_INTERVAL_MS);
    expect(redraws(t.out.text)).toBe(1);
    expect(plain(t.out.text)).toContain('10/12 objects ready');
    // 100 changes over one second: about ten redraws, not a hundred.
    for (let i = 0; i < 100; i++) {
      r.rollout(release(i % 12));
      vi.advanceTimersByTime(10);
    }
    vi.advanceTimersByTime(REDRAW_INTERVAL_MS);
    expect(redraws(t.out.text)).toBeGreaterThanOrEqual(9);
    expect(redraws(t.out.text)).toBeLessThanOrEqual(12);
    r.close();
  });

  it('writes nothing when the table would look the same', () => {
    const t = terminal();
    const r = new LiveReporter(t.stream);
    r.rollout(release(3));
    const drawn = t.out.text.length;
    for (let i = 0; i < 5; i++) {
      r.rollout(release(3));
      vi.advanceTimersByTime(600);
    }
    expect(t.out.text.length).toBe(drawn);
    r.rollout(release(4));
    vi.advanceTimersByTime(REDRAW_INTERVAL_MS);
    expect(redraws(t.out.text)).toBe(1);
    r.close();
  });

  it('each redraw moves up over exactly the lines it drew, and fits the terminal', () => {
    const t = terminal();
    t.out.rows = 10;
    t.out.columns = 50;
    const r = new LiveReporter(t.stream);
    r.rollout(release(25, 30));
    vi.advanceTimersByTime(REDRAW_INTERVAL_MS);
    r.rollout(release(26, 30));
    vi.advanceTimersByTime(REDRAW_INTERVAL_MS);
    const [, drawnFirst] = t.out.text.split(REDRAW);
    expect(Number(drawnFirst)).toBe(9); // a bar, a header, 6 rows and "+N ready": rows - 1
    const block = plain(t.out.text.slice(t.out.text.lastIndexOf('\x1b[0J') + 4))
      .split('\n')
      .slice(0, -1);
    expect(block).toHaveLength(9);
    for (const line of block) expect(line.length).toBeLessThan(50);
    expect(block.slice(2, 6).map((l) => l.split(' ')[0])).toEqual(['Deployment/web-26', 'Deployment/web-27', 'Deployment/web-28', 'Deployment/web-29']);
    expect(block.at(-1)).toBe('+24 ready');
    r.close();
  });

  it('leaves out the status lines the table shows, keeps others, and prints the final table once as plain lines', () => {
    const t = terminal();
    const r = new LiveReporter(t.stream);
    r.rollout(release(0));
    r.status('Deployment/web-0', 'ready', '1/1 updated, 1/1 available');
    r.status('release', 'waiting', '1/12 objects ready');
    r.status('Job/migrate', 'running', 'post-deploy hook');
    vi.advanceTimersByTime(REDRAW_INTERVAL_MS);
    r.rollout(release(12, 12, 'done'));
    r.status('release', 'ready', '12/12 objects ready');
    r.close();
    const text = plain(t.out.text);
    expect(text).not.toContain('Deployment/web-0: ready');
    expect(text).not.toContain('release: waiting');
    expect(text).toContain('Job/migrate: running');
    const finalAt = t.out.text.lastIndexOf('OBJECT');
    const after = t.out.text.slice(finalAt).split('\n');
    expect(after[0]).toMatch(/^OBJECT +READY +STATE +CAUSE$/);
    expect(after.slice(1, 13).every((l) => /^Deployment\/web-\d+ +1\/1 +ready$/.test(l))).toBe(true);
    expect(plain(after.slice(13).join('\n'))).toMatch(/^release: ready \(12\/12 objects ready\)$/m);
    expect(t.out.text.split('OBJECT').length - 1).toBeGreaterThanOrEqual(2); // drawn live, then once for the scrollback
    // The cursor shown again, once, after it was hidden.
    expect(t.out.text.indexOf('\x1b[?25h')).toBeGreaterThan(t.out.text.indexOf('\x1b[?25l'));
    expect(t.out.text.split('\x1b[?25h')).toHaveLength(2);
  });

  it('a command that ends while the table is up (an error, Ctrl-C) still leaves its last state and the cursor', () => {
    const t = terminal();
    const exitListeners = process.listenerCount('exit');
    const r = new LiveReporter(t.stream);
    r.rollout(release(5));
    expect(process.listenerCount('exit')).toBe(exitListeners + 1); // a second Ctrl-C exits at once: the cursor is shown then too
    r.close();
    const tail = t.out.text.slice(t.out.text.lastIndexOf('\x1b[0J') + 4);
    expect(tail).toMatch(/^OBJECT +READY +STATE +CAUSE\nDeployment\/web-10 +0\/1 +waiting +0\/1 updated, 0\/1 available\n/);
    expect(tail.endsWith('\x1b[?25h')).toBe(true);
    expect(process.listenerCount('exit')).toBe(exitListeners);
  });

  it('masks secrets in causes, as in a status line', () => {
    const t = terminal();
    const live = new LiveReporter(t.stream);
    const r = new Redactor(new Map([['hunter22', 'values password']])).reporter(live);
    const p = release(11);
    p.objects[11] = { ...p.objects[11]!, cause: 'probe failed: curl -u admin:hunter22 http://db' };
    r.rollout!(p);
    r.rollout!({ ...p, outcome: 'timeout' });
    live.close();
    expect(t.out.text).not.toContain('hunter22');
    expect(plain(t.out.text)).toMatch(/curl -u admin:\(masked sha256:[0-9a-f]{12}\) http:\/\/db/);
  });
});

describe('where the live view is used', () => {
  it('only on a terminal without NO_COLOR or TERM=dumb', () => {
    expect(takesEscapes({ isTTY: true }, { TERM: 'xterm-256color' })).toBe(true);
    expect(takesEscapes({ isTTY: false }, { TERM: 'xterm-256color' })).toBe(false);
    expect(takesEscapes({ isTTY: true }, { TERM: 'dumb' })).toBe(false);
    expect(takesEscapes({ isTTY: true }, { NO_COLOR: '1' })).toBe(false);
    expect(takesEscapes({ isTTY: true }, { NO_COLOR: '' })).toBe(true);
  });

  it('a log has no table: the line reporter takes no rollout, so its lines stay as they were', () => {
    const t = terminal(false);
    const r = new LineReporter(t.stream);
    expect('rollout' in r).toBe(false);
    r.status('Deployment/web-0', 'ready', '1/1 updated, 1/1 available');
    expect(t.out.text).toBe('Deployment/web-0: ready (1/1 updated, 1/1 available)\n');
  });
});

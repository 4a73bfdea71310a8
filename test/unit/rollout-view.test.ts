import { describe, expect, it } from 'vitest';
import { finalRolloutLines, layoutRolloutView, orderObjects, progressBar, releaseFraction } from '../../src/cli/rollout-view.js';
import type { ObjectProgress, RolloutProgress } from '../../src/context.js';

const ready = (name: string, want = 2): ObjectProgress => ({ object: `Deployment/${name}`, state: 'ready', pods: { ready: want, want } });
const waiting = (name: string, readyPods: number, want: number, cause = `${readyPods}/${want} available`): ObjectProgress => ({
  object: `Deployment/${name}`,
  state: 'waiting',
  pods: { ready: readyPods, want },
  cause,
});
const failed = (name: string, cause: string): ObjectProgress => ({ object: `Deployment/${name}`, state: 'failed', pods: { ready: 0, want: 1 }, cause });
const progress = (objects: ObjectProgress[]): RolloutProgress => ({
  objects,
  summary: `${objects.filter((o) => o.state === 'ready').length}/${objects.length} objects ready`,
});
// eslint-disable-next-line no-control-regex
const ESCAPE = /\x1b/;

describe('orderObjects', () => {
  it('puts what holds the release back first: failed, then waiting, then ready, each by name', () => {
    const ordered = orderObjects([ready('a'), waiting('d', 0, 1), failed('z', 'x'), ready('0'), waiting('b', 0, 1), failed('c', 'x')]);
    expect(ordered.map((o) => `${o.state} ${o.object}`)).toEqual([
      'failed Deployment/c',
      'failed Deployment/z',
      'waiting Deployment/b',
      'waiting Deployment/d',
      'ready Deployment/0',
      'ready Deployment/a',
    ]);
  });
});

describe('releaseFraction', () => {
  it('counts a ready object fully and another by its share of ready pods, never fully', () => {
    expect(releaseFraction([ready('a'), waiting('b', 1, 2)])).toBeCloseTo(0.75);
    expect(releaseFraction([waiting('b', 3, 3)])).toBeCloseTo(0.99);
    expect(releaseFraction([{ object: 'PersistentVolumeClaim/data', state: 'waiting' }, ready('a')])).toBeCloseTo(0.5);
    expect(releaseFraction([waiting('b', 0, 0)])).toBe(0);
    expect(releaseFraction([])).toBe(1);
  });
});

describe('progressBar', () => {
  it('fills its width in proportion, clamped to 0..1', () => {
    expect(progressBar(0, 12)).toBe('[----------]');
    expect(progressBar(0.5, 12)).toBe('[#####-----]');
    expect(progressBar(1, 12)).toBe('[##########]');
    expect(progressBar(7, 6)).toBe('[####]');
    expect(progressBar(-1, 6)).toBe('[----]');
    expect(progressBar(0.99, 3)).toBe('[#]');
  });
});

describe('layoutRolloutView', () => {
  it('draws a bar, a header and one row per object, unready first', () => {
    const lines = layoutRolloutView(
      progress([ready('api'), waiting('web', 1, 3, '1/3 available; pod web-1: readiness probe failing'), failed('worker', 'pod worker-x: CrashLoopBackOff')]),
      { columns: 100, rows: 20 },
    );
    expect(lines).toMatchInlineSnapshot(`
      [
        "[##############-----------------] 44%  1/3 objects ready",
        "OBJECT             READY  STATE    CAUSE",
        "Deployment/worker    0/1  failed   pod worker-x: CrashLoopBackOff",
        "Deployment/web       1/3  waiting  1/3 available; pod web-1: readiness probe failing",
        "Deployment/api       2/2  ready",
      ]
    `);
  });

  it('keeps every line shorter than the terminal is wide, cutting the cause and long names with …', () => {
    const long = 'x'.repeat(200);
    const objects = [waiting(`very-long-workload-name-${'n'.repeat(60)}`, 0, 12, long), waiting('b', 0, 1, long), ready('c')];
    for (const columns of [20, 40, 60, 80, 200]) {
      const lines = layoutRolloutView(progress(objects), { columns, rows: 10 });
      for (const line of lines) expect(line.length, `${columns}: ${line}`).toBeLessThan(columns);
      // A bar, a header and three rows; too narrow for columns: no header.
      expect(lines.length).toBe(columns < 30 ? 4 : 5);
    }
    const at60 = layoutRolloutView(progress(objects), { columns: 60, rows: 10 });
    expect(at60[3]).toMatch(/^Deployment\/very-long-work… {3}0\/12 {2}waiting {2}x+…$/);
    expect(at60[3]).toHaveLength(59);
  });

  it('shows the unready objects that fit and the rest as "+N ready" when there are more than rows', () => {
    const objects = [...Array.from({ length: 40 }, (_, i) => ready(`r-${String(i).padStart(2, '0')}`)), waiting('slow', 1, 2), failed('bad', 'OOMKilled')];
    const lines = layoutRolloutView(progress(objects), { columns: 80, rows: 8 });
    expect(lines).toHaveLength(8);
    expect(lines.slice(2, 4).map((l) => l.split(/\s+/)[0])).toEqual(['Deployment/bad', 'Deployment/slow']);
    expect(lines.slice(4, 7).map((l) => l.split(/\s+/)[0])).toEqual(['Deployment/r-00', 'Deployment/r-01', 'Deployment/r-02']);
    expect(lines[7]).toBe('+37 ready');
  });

  it('says how many of the hidden ones are not ready when even those do not fit', () => {
    const objects = [...Array.from({ length: 10 }, (_, i) => waiting(`w-${i}`, 0, 1)), ready('a'), ready('b')];
    const lines = layoutRolloutView(progress(objects), { columns: 80, rows: 6 });
    expect(lines).toHaveLength(6);
    expect(lines[5]).toBe('+9 more: 7 not ready, 2 ready');
  });

  it('shows only the bar when fewer than three rows are left', () => {
    expect(layoutRolloutView(progress([ready('a'), waiting('b', 0, 1)]), { columns: 80, rows: 2 })).toEqual([
      '[############------------] 50%  1/2 objects ready',
    ]);
  });

  it('lists objects without columns on a terminal too narrow for them', () => {
    const lines = layoutRolloutView(progress([waiting('web', 0, 3)]), { columns: 16, rows: 5 });
    expect(lines.slice(1)).toEqual(['Deployment/web…']);
  });

  it('paints only the state, so the columns line up as without colour', () => {
    const p = progress([ready('api'), failed('worker', 'boom')]);
    const plain = layoutRolloutView(p, { columns: 80, rows: 10 });
    const painted = layoutRolloutView(p, { columns: 80, rows: 10 }, (state, text) => `\x1b[3${state === 'ready' ? 2 : 1}m${text}\x1b[0m`);
    // eslint-disable-next-line no-control-regex
    expect(painted.map((l) => l.replace(/\x1b\[\d+m/g, ''))).toEqual(plain);
    expect(painted[2]).toContain('\x1b[31mfailed\x1b[0m');
  });

  it('turns control characters of a message into spaces: a newline or an escape sequence cannot break the redraw', () => {
    const lines = layoutRolloutView(progress([failed('x', 'line one\nline two \x1b[2J\x1b]0;title\x07')]), { columns: 120, rows: 10 });
    expect(lines).toHaveLength(3);
    for (const line of lines) expect(line).not.toMatch(ESCAPE);
    expect(lines[2]).toContain('line one line two  [2J ]0;title');
  });
});

describe('finalRolloutLines', () => {
  it('prints every object with its whole cause, unready first, as plain lines', () => {
    const long = `readiness probe failing: ${'y'.repeat(300)}`;
    const objects = [...Array.from({ length: 30 }, (_, i) => ready(`r-${i}`)), waiting('slow', 1, 2, long)];
    const lines = finalRolloutLines(progress(objects));
    expect(lines).toHaveLength(32);
    expect(lines[0]).toMatch(/^OBJECT +READY +STATE +CAUSE$/);
    expect(lines[1]).toMatch(/^Deployment\/slow +1\/2 +waiting +readiness probe failing: y{300}$/);
    expect(lines[2]).toMatch(/^Deployment\/r-0 +2\/2 +ready$/);
    for (const line of lines) expect(line).not.toMatch(ESCAPE);
  });

  it('prints nothing for a rollout without objects', () => {
    expect(finalRolloutLines(progress([]))).toEqual([]);
  });
});

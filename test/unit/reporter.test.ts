import { afterAll, describe, expect, it } from 'vitest';
import { runDeploy } from '../../src/actions/deploy.js';
import { LineReporter, LiveReporter } from '../../src/cli/reporter.js';
import { Redactor } from '../../src/secrets/redact.js';
import { failedJobStatus, MemoryKube, readyStatus } from '../helpers/memory-kube.js';
import { commitFiles, fakeRegistry, projectRepo, recordingReporter, removeProjectRepos, runContext } from '../helpers/orchestration.js';

/** A non-TTY stream that keeps what is written, one entry a line. */
function stream() {
  const out = { text: '', isTTY: false, columns: 80, write: (chunk: string) => ((out.text += chunk), true) };
  return { stream: out as unknown as NodeJS.WriteStream, text: () => out.text, lines: () => out.text.split('\n').slice(0, -1) };
}

/** A clock that reads 1700000000.5s and moves on a second at each read. */
function clock() {
  let ms = 1_700_000_000_500;
  return () => (ms += 1000) - 1000;
}

const start = (seconds: number, name: string, header: string, collapsed = false) =>
  `\x1b[0Ksection_start:${seconds}:${name}${collapsed ? '[collapsed=true]' : ''}\r\x1b[0K${header}`;
const end = (seconds: number, name: string) => `\x1b[0Ksection_end:${seconds}:${name}\r\x1b[0K`;
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('LineReporter sections under GitLab CI', () => {
  it('prints GitLab markers exactly, with unix seconds, the end after the start and what came between', () => {
    const s = stream();
    const r = new LineReporter(s.stream, false, true, { gitlab: true, now: clock() });
    const done = r.section('skiff_build_app', 'build app (registry/app:1)', { collapsed: true, source: 'app' });
    r.status('app', 'building', 'registry/app:1');
    r.log('app', 'Step 1/2 : FROM base');
    done();
    r.status('app', 'built', 'registry/app:1');
    expect(s.lines()).toEqual([
      start(1700000000, 'skiff_build_app', 'build app (registry/app:1)', true),
      'app: building (registry/app:1)',
      '[app] Step 1/2 : FROM base',
      end(1700000001, 'skiff_build_app'),
      'app: built (registry/app:1)',
    ]);
  });

  it('folds only the sections asked to be collapsed', () => {
    const s = stream();
    const r = new LineReporter(s.stream, false, true, { gitlab: true, now: clock() });
    r.section('skiff_deploy_apply', 'apply 2 objects')();
    r.section('skiff_test_unit', 'test unit', { collapsed: true })();
    r.section('skiff_deploy_track', 'wait', { collapsed: false })();
    expect(s.lines().filter((l) => l.includes('section_start'))).toEqual([
      start(1700000000, 'skiff_deploy_apply', 'apply 2 objects'),
      start(1700000002, 'skiff_test_unit', 'test unit', true),
      start(1700000004, 'skiff_deploy_track', 'wait'),
    ]);
  });

  it('sanitizes names to [a-z0-9_.-], keeps them unique in the job, and keeps the header on one line', () => {
    const s = stream();
    const r = new LineReporter(s.stream, false, true, { gitlab: true, now: () => 0 });
    r.section('skiff_test_Unit Tests/API:v2', 'first\nsecond\r\nthird')();
    r.section('skiff_test_unit tests/api:v2', 'again')();
    r.section('skiff_test_unit_tests_api_v2', 'and again')();
    r.section('¡¿', 'nothing left')();
    const names = s.lines().map((l) => /section_(?:start|end):0:([^[\r]*)/.exec(l)![1]);
    expect(names).toEqual([
      'skiff_test_unit_tests_api_v2',
      'skiff_test_unit_tests_api_v2',
      'skiff_test_unit_tests_api_v2_2',
      'skiff_test_unit_tests_api_v2_2',
      'skiff_test_unit_tests_api_v2_3',
      'skiff_test_unit_tests_api_v2_3',
      'section',
      'section',
    ]);
    for (const n of names) expect(n).toMatch(/^[a-z0-9_.-]+$/);
    expect(s.lines()[0]).toBe(start(0, 'skiff_test_unit_tests_api_v2', 'first second third'));
  });

  it('ends a section once, however often its end is called', () => {
    const s = stream();
    const r = new LineReporter(s.stream, false, true, { gitlab: true, now: () => 5000 });
    const done = r.section('a', 'A');
    done();
    done();
    expect(s.lines()).toEqual([start(5, 'a', 'A'), end(5, 'a')]);
  });

  it('never interleaves sections: one started while another is open waits, and is printed whole when the log is free', async () => {
    const s = stream();
    const r = new LineReporter(s.stream, false, true, { gitlab: true, now: clock() });
    const endA = r.section('skiff_test_a', 'test a', { collapsed: true, source: 'a' }); // 1700000000
    r.status('a', 'running');
    const endB = r.section('skiff_test_b', 'test b', { collapsed: true, source: 'b' }); // 1700000001
    r.status('b', 'running');
    r.log('a', 'a1');
    r.log('b', 'b1');
    r.warn('something for everyone'); // held until a's section ends, never folded into it
    r.log('a', 'a2');
    endB(); // 1700000002: b finished first, while a still has the log
    r.status('b', 'failed', 'exit 1');
    endA(); // 1700000003
    r.status('a', 'passed');
    expect(s.lines()).toEqual([
      start(1700000000, 'skiff_test_a', 'test a', true),
      'a: running',
      '[a] a1',
      '[a] a2',
      end(1700000003, 'skiff_test_a'),
      'warning: something for everyone',
      'a: passed',
    ]);
    await tick();
    expect(s.lines().slice(7)).toEqual([
      start(1700000001, 'skiff_test_b', 'test b', true),
      'b: running',
      '[b] b1',
      end(1700000002, 'skiff_test_b'),
      'b: failed (exit 1)',
    ]);
  });

  it('a waiting section still running when the log frees goes on live, and later ones wait for it', async () => {
    const s = stream();
    const r = new LineReporter(s.stream, false, true, { gitlab: true, now: () => 0 });
    const endA = r.section('a', 'A', { source: 'a' });
    const endB = r.section('b', 'B', { source: 'b' });
    r.log('b', 'b1');
    endA();
    r.status('a', 'passed');
    await tick();
    const endC = r.section('c', 'C', { source: 'c' });
    r.log('c', 'c1');
    r.log('b', 'b2');
    r.info('unrelated'); // not b's: after b's section
    endB();
    r.status('b', 'passed');
    endC();
    await tick();
    expect(s.lines()).toEqual([
      start(0, 'a', 'A'),
      end(0, 'a'),
      'a: passed',
      start(0, 'b', 'B'),
      '[b] b1',
      '[b] b2',
      end(0, 'b'),
      'unrelated',
      'b: passed',
      start(0, 'c', 'C'),
      '[c] c1',
      end(0, 'c'),
    ]);
  });

  it('a section without a source owns every line while it is open', () => {
    const s = stream();
    const r = new LineReporter(s.stream, false, true, { gitlab: true, now: () => 0 });
    const done = r.section('skiff_deploy_track', 'wait for 2 objects');
    r.status('Deployment/web', 'waiting', '1/2 ready');
    r.warn('slow');
    done();
    expect(s.lines()).toEqual([
      start(0, 'skiff_deploy_track', 'wait for 2 objects'),
      'Deployment/web: waiting (1/2 ready)',
      'warning: slow',
      end(0, 'skiff_deploy_track'),
    ]);
  });
});

describe('LineReporter sections elsewhere', () => {
  it('prints nothing of a section without GitLab: the lines read as before', () => {
    const s = stream();
    const r = new LineReporter(s.stream);
    const endA = r.section('skiff_test_a', 'test a', { collapsed: true, source: 'a' });
    const endB = r.section('skiff_test_b', 'test b', { collapsed: true, source: 'b' });
    r.log('a', 'a1');
    r.log('b', 'b1');
    endA();
    r.status('a', 'passed');
    endB();
    expect(s.lines()).toEqual(['[a] a1', '[b] b1', 'a: passed']);
    expect(s.text()).not.toContain('section_');
    expect(s.text()).not.toContain('\x1b');
  });

  it('the live terminal view shows no sections either', () => {
    const s = stream();
    const r = new LiveReporter(s.stream);
    r.section('skiff_build_app', 'build app', { collapsed: true, source: 'app' })();
    r.status('app', 'built', 'ref');
    r.close();
    expect(s.text()).not.toMatch(/section_|build app/);
    expect(s.text()).toContain('app: built (ref)');
  });
});

describe('Redactor.reporter', () => {
  it('passes sections on, with secret strings masked in the header', () => {
    const inner = recordingReporter();
    const r = new Redactor(new Map([['hunter22', 'values password']])).reporter(inner);
    r.section('skiff_test_unit', 'test unit: login --password hunter22', { collapsed: true })();
    expect(inner.lines).toEqual([
      expect.stringMatching(/^section: start skiff_test_unit: test unit: login --password \(masked sha256:[0-9a-f]{12}\) \(collapsed\)$/),
      'section: end skiff_test_unit',
    ]);
  });
});

describe('a deploy in sections', () => {
  afterAll(removeProjectRepos);
  const SKIFF_YAML =
    'project: orch\nregistry: 127.0.0.1:5000/orch\nimages:\n  app:\n    context: app\nenvironments:\n  staging:\n    namespace: orch-staging\ndeploy:\n  timeout: 5s\n';
  const configMap = (name: string) => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\ndata:\n  a: b\n`;
  const hook = `apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations: { skiff.io/hook: pre-deploy }
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers: [{ name: migrate, image: busybox:1, command: [sh, -c, echo migrating] }]
`;
  const sections = (lines: string[]) => lines.filter((l) => l.startsWith('section: '));

  it('each phase is a section, ended before the next starts and before the verdict', async () => {
    const registry = await fakeRegistry();
    try {
      const dir = await projectRepo({
        'skiff.yaml': SKIFF_YAML,
        'app/Dockerfile': 'FROM busybox:1\n',
        '.kube/a.yaml': `${configMap('a')}---\n${configMap('b')}`,
        '.kube/hook.yaml': hook,
      });
      const kube = new MemoryKube();
      kube.onApply((o) => {
        o.status = readyStatus(o);
      });
      const reporter = recordingReporter();
      const ctx = runContext({ cwd: dir, kube, reporter, registry: `${registry.host}/orch` });
      expect(await runDeploy(ctx, { env: 'staging' })).toMatchObject({ status: 'deployed' });
      const of = (rev: number) => `(release orch-staging revision ${rev})`;
      expect(sections(reporter.lines)).toEqual([
        `section: start skiff_deploy_pre_hooks: pre-deploy hooks: 1 ${of(1)}`,
        'section: end skiff_deploy_pre_hooks',
        `section: start skiff_deploy_apply: apply 2 objects ${of(1)}`,
        'section: end skiff_deploy_apply',
        `section: start skiff_deploy_track: wait for 2 objects to be ready ${of(1)}`,
        'section: end skiff_deploy_track',
      ]);
      const at = (line: string) => reporter.lines.indexOf(line);
      expect(at('status: ConfigMap/a: applied')).toBeGreaterThan(at(`section: start skiff_deploy_apply: apply 2 objects ${of(1)}`));
      expect(at('status: ConfigMap/a: applied')).toBeLessThan(at('section: end skiff_deploy_apply'));

      // A failing hook: its section ends, and nothing else is applied.
      await commitFiles(dir, { '.kube/a.yaml': configMap('a') });
      kube.onApply((o) => {
        o.status = o.kind === 'Job' ? failedJobStatus() : readyStatus(o);
      });
      reporter.lines.length = 0;
      expect(await runDeploy(ctx, { env: 'staging' })).toMatchObject({ status: 'failed' });
      expect(sections(reporter.lines)).toEqual([`section: start skiff_deploy_pre_hooks: pre-deploy hooks: 1 ${of(2)}`, 'section: end skiff_deploy_pre_hooks']);

      // The next good deploy prunes what the last deployed revision had.
      kube.onApply((o) => {
        o.status = readyStatus(o);
      });
      reporter.lines.length = 0;
      expect(await runDeploy(ctx, { env: 'staging' })).toMatchObject({ status: 'deployed', pruned: ['ConfigMap/b'] });
      expect(sections(reporter.lines).at(-2)).toBe(`section: start skiff_deploy_prune: prune what revision 1 had and this one does not ${of(3)}`);
      expect(reporter.lines.indexOf('status: ConfigMap/b: pruned (no longer rendered)')).toBeLessThan(
        reporter.lines.indexOf('section: end skiff_deploy_prune'),
      );
    } finally {
      await registry.close();
    }
  });
});

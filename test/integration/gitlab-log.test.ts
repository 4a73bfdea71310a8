import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseXml, type XmlElement } from '../../src/gitlab/xml-reader.js';
import { commitAll, editFile, fixtureRepo, removeTempDirs, skiff, uniqueRegistry } from '../helpers/skiff.js';

afterAll(removeTempDirs);

const GITLAB = { GITLAB_CI: 'true' };
/* eslint-disable no-control-regex -- GitLab's markers are made of escape codes */
const START = /\x1b\[0Ksection_start:(\d+):([a-z0-9_.-]+)(\[collapsed=true\])?\r\x1b\[0K(.*)/;
const END = /\x1b\[0Ksection_end:(\d+):([a-z0-9_.-]+)\r\x1b\[0K/;
/* eslint-enable no-control-regex */

interface Marker {
  kind: 'start' | 'end';
  name: string;
  line: number;
  collapsed?: boolean;
  header?: string;
}

function markers(stderr: string): Marker[] {
  const out: Marker[] = [];
  stderr.split('\n').forEach((text, line) => {
    const s = START.exec(text);
    if (s) out.push({ kind: 'start', name: s[2]!, line, collapsed: Boolean(s[3]), header: s[4] });
    const e = END.exec(text);
    if (e) out.push({ kind: 'end', name: e[2]!, line });
  });
  return out;
}

/** Every section ends, and none starts inside another: GitLab would nest them. */
function expectSerialSections(all: Marker[]) {
  let open: string | undefined;
  for (const m of all) {
    if (m.kind === 'start') {
      expect(open, `section ${m.name} starts inside ${open}`).toBeUndefined();
      open = m.name;
    } else {
      expect(m.name).toBe(open);
      open = undefined;
    }
  }
  expect(open).toBeUndefined();
}

const lineOf = (stderr: string, re: RegExp) => stderr.split('\n').findIndex((l) => re.test(l));
const testcases = (root: XmlElement) => root.children.flatMap((suite) => suite.children.filter((c) => c.name === 'testcase'));

describe('skiff test under GitLab CI', () => {
  let dir: string;
  let registry: string;

  beforeAll(async () => {
    dir = await fixtureRepo('hello');
    registry = uniqueRegistry();
  });

  it('folds image builds and the test into sections, prints verdicts after them, and writes the JUnit report', async () => {
    const r = await skiff(['test', '--registry', registry], { cwd: dir, env: GITLAB });
    expect(r.exitCode, r.all).toBe(0);
    const all = markers(r.stderr);
    expectSerialSections(all);
    // The images are built first (no local image for this commit), each in its own folded section.
    expect(all.filter((m) => m.kind === 'start' && m.name.startsWith('skiff_build_')).map((m) => [m.name, m.collapsed])).toEqual(
      expect.arrayContaining([
        ['skiff_build_base', true],
        ['skiff_build_app', true],
      ]),
    );
    const start = all.find((m) => m.kind === 'start' && m.name === 'skiff_test_unit')!;
    const end = all.find((m) => m.kind === 'end' && m.name === 'skiff_test_unit')!;
    expect(start).toMatchObject({ collapsed: true, header: 'test unit: sh -c /app/run-tests in app' });
    const output = lineOf(r.stderr, /\[unit\] tests finished with status 0/);
    expect(start.line).toBeLessThan(output);
    expect(output).toBeLessThan(end.line);
    expect(lineOf(r.stderr, /^unit: passed/)).toBeGreaterThan(end.line);

    const junit = parseXml(await readFile(join(dir, '.skiff/reports/junit.xml'), 'utf8'));
    expect(junit.attributes).toMatchObject({ tests: '1', failures: '0', errors: '0', skipped: '0' });
    const cases = testcases(junit);
    expect(cases.map((c) => c.attributes)).toEqual([{ name: 'unit', classname: 'skiff.app', time: expect.stringMatching(/^\d+\.\d{3}$/) }]);
    expect(cases[0]!.children.map((c) => c.name)).toEqual(['system-out']);
    expect(cases[0]!.children[0]!.text).toContain('tests finished with status 0');
    // The test's own report is still copied out beside it.
    expect(existsSync(join(dir, '.skiff/reports/unit/report.xml'))).toBe(true);

    const json = await skiff(['test', '--registry', registry, '-o', 'json'], { cwd: dir, env: GITLAB });
    expect(json.exitCode, json.all).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ passed: true, junit: '.skiff/reports/junit.xml' });
  });

  it('a failing test: <failure> with the tail of its output, no escape codes or secrets, and the failure after the section', async () => {
    const secret = 'tok-s3cret-value';
    await editFile(dir, 'skiff.yaml', (t) =>
      t
        .replace(
          '    command: ["sh", "-c", "/app/run-tests"]',
          [
            '    command:',
            '      - sh',
            '      - -c',
            '      - |',
            '        /app/run-tests',
            '        i=0; while [ $i -lt 150 ]; do i=$((i+1)); echo "filler line $i"; done',
            `        printf '\\033[31mred <&> "quoted"\\033[0m\\n'`,
            '        echo "token is $API_TOKEN"',
            "        echo '<broken' > /tmp/bad.xml",
            '        exit 3',
          ].join('\n'),
        )
        .replace('env: { CI: "true" }', `env: { CI: "true", API_TOKEN: "${secret}" }`)
        .replace('reports: ["/tmp/report.xml"]', 'reports: ["/tmp/report.xml", "/tmp/bad.xml"]'),
    );
    await commitAll(dir, 'a failing, noisy test');
    const r = await skiff(['test', '--registry', registry], { cwd: dir, env: GITLAB });
    expect(r.exitCode, r.all).toBe(1);
    expect(r.all).not.toContain(secret);
    expect(r.stderr).toMatch(/\[unit\] token is \(masked sha256:[0-9a-f]{12}\)/);

    const all = markers(r.stderr);
    expectSerialSections(all);
    const end = all.find((m) => m.kind === 'end' && m.name === 'skiff_test_unit')!;
    expect(lineOf(r.stderr, /\[unit\] filler line 150/)).toBeLessThan(end.line);
    // What a reader must see without a click: after the (folded) section's end.
    const failed = lineOf(r.stderr, /^unit: failed \(exit 3 after/);
    const warning = lineOf(r.stderr, /^warning: unit: report \.skiff\/reports\/unit\/bad\.xml is not well-formed XML \(line \d+: .+\)/);
    expect(failed, r.stderr).toBeGreaterThan(end.line);
    expect(warning, r.stderr).toBeGreaterThan(end.line);
    expect(lineOf(r.stderr, /^error: 1 of 1 tests failed: unit \(exit 3\)/)).toBeGreaterThan(failed);

    const raw = await readFile(join(dir, '.skiff/reports/junit.xml'), 'utf8');
    expect(raw).not.toContain('\x1b');
    expect(raw).not.toContain(secret);
    expect(raw).toContain('red &lt;&amp;&gt; &quot;quoted&quot;');
    const junit = parseXml(raw);
    expect(junit.attributes).toMatchObject({ tests: '1', failures: '1' });
    const [unit] = testcases(junit);
    expect(unit!.attributes).toMatchObject({ name: 'unit', classname: 'skiff.app' });
    const failure = unit!.children.find((c) => c.name === 'failure')!;
    expect(failure.attributes).toEqual({ message: 'exit 3', type: 'failed' });
    const tail = failure.text.split('\n');
    expect(tail).toHaveLength(100);
    expect(tail[0]).toBe('filler line 53'); // the last 100 lines: 53…150, red, token
    expect(tail.slice(-3)).toEqual(['filler line 150', 'red <&> "quoted"', expect.stringMatching(/^token is \(masked sha256:[0-9a-f]{12}\)$/)]);
    // The per-test reports are copied as before, the broken one included.
    expect(existsSync(join(dir, '.skiff/reports/unit/report.xml'))).toBe(true);
    expect(existsSync(join(dir, '.skiff/reports/unit/bad.xml'))).toBe(true);
  });

  it('without GitLab CI the log has no section markers', async () => {
    const r = await skiff(['test', '--registry', registry], { cwd: dir, env: { CI: 'true' } });
    expect(r.exitCode, r.all).toBe(1);
    expect(r.stderr).not.toMatch(/section_(start|end)/);
    expect(r.stderr).toMatch(/unit: failed \(exit 3/);
    expect(existsSync(join(dir, '.skiff/reports/junit.xml'))).toBe(true);
  });
});

import { describe, expect, it } from 'vitest';
import { junitXml, OutputTail, stripAnsi, xmlText, type JunitCase } from '../../src/gitlab/junit.js';
import { parseXml, XmlSyntaxError, type XmlElement } from '../../src/gitlab/xml-reader.js';

const passing = (over: Partial<JunitCase> = {}): JunitCase => ({ name: 'unit', classname: 'skiff.app', durationMs: 1500, output: ['ok'], ...over });
const failing = (over: Partial<JunitCase> = {}): JunitCase => passing({ failure: { message: 'exit 1', type: 'failed' }, ...over });

const child = (el: XmlElement, name: string) => el.children.filter((c) => c.name === name);

describe('junitXml', () => {
  it('writes one suite with one testcase per test, and the totals on testsuites and testsuite', () => {
    const xml = junitXml({
      name: 'skiff',
      timestamp: new Date('2025-03-04T05:06:07.890Z'),
      cases: [passing({ durationMs: 1500 }), failing({ name: 'e2e', classname: 'skiff.web', durationMs: 250 })],
    });
    expect(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n')).toBe(true);
    const root = parseXml(xml);
    expect(root.name).toBe('testsuites');
    const totals = { tests: '2', failures: '1', errors: '0', skipped: '0', time: '1.750' };
    expect(root.attributes).toEqual({ name: 'skiff', ...totals });
    const suites = child(root, 'testsuite');
    expect(suites).toHaveLength(1);
    expect(suites[0]!.attributes).toEqual({ name: 'skiff', ...totals, timestamp: '2025-03-04T05:06:07' });
    const cases = child(suites[0]!, 'testcase');
    expect(cases.map((c) => c.attributes)).toEqual([
      { name: 'unit', classname: 'skiff.app', time: '1.500' },
      { name: 'e2e', classname: 'skiff.web', time: '0.250' },
    ]);
  });

  it('a failed test has a failure with its exit code, what happened and its output; a passing one its system-out', () => {
    const root = parseXml(
      junitXml({
        name: 'skiff',
        cases: [
          passing({ output: ['all good', 'done'] }),
          failing({ name: 'slow', failure: { message: 'exit 137', type: 'timed out' }, output: ['started', 'waiting'] }),
        ],
      }),
    );
    const [pass, fail] = child(child(root, 'testsuite')[0]!, 'testcase');
    expect(pass!.children.map((c) => c.name)).toEqual(['system-out']);
    expect(pass!.children[0]!.text).toBe('all good\ndone');
    expect(fail!.children.map((c) => c.name)).toEqual(['failure']);
    expect(fail!.children[0]!.attributes).toEqual({ message: 'exit 137', type: 'timed out' });
    expect(fail!.children[0]!.text).toBe('started\nwaiting');
  });

  it('a passing test with no output has no system-out; no tests is an empty, valid suite', () => {
    const one = parseXml(junitXml({ name: 'skiff', cases: [passing({ output: [] })] }));
    expect(child(child(one, 'testsuite')[0]!, 'testcase')[0]!.children).toEqual([]);
    const none = parseXml(junitXml({ name: 'skiff', cases: [] }));
    expect(none.attributes).toMatchObject({ tests: '0', failures: '0', time: '0.000' });
  });

  it('escapes & < > " \' in text and attributes, and keeps line breaks of attributes', () => {
    const name = `a&b <c> "d" 'e'\nf`;
    const xml = junitXml({ name: 'skiff', cases: [failing({ name, output: [`<failure>&amp; "quoted" 'single' ]]>`] })] });
    expect(xml).not.toMatch(/<c>|"d"|'e'/);
    const testcase = child(child(parseXml(xml), 'testsuite')[0]!, 'testcase')[0]!;
    expect(testcase.attributes.name).toBe(name);
    expect(testcase.children[0]!.text).toBe(`<failure>&amp; "quoted" 'single' ]]>`);
  });

  it('strips ANSI escape codes from the output, and shows a line redrawn with \\r as its last state', () => {
    const xml = junitXml({
      name: 'skiff',
      cases: [
        failing({ output: ['\x1b[1;31mFAIL\x1b[0m test', '\x1b]8;;https://x.test\x07link\x1b]8;;\x07', '\x1b[2K 10%\r 50%\r100%\x1b[K', 'esc\x1b(Bset'] }),
      ],
    });
    expect(xml).not.toContain('\x1b');
    expect(child(child(child(parseXml(xml), 'testsuite')[0]!, 'testcase')[0]!, 'failure')[0]!.text).toBe('FAIL test\nlink\n100%\nescset');
  });

  it('drops the characters XML 1.0 forbids: control characters, lone surrogates, U+FFFE/U+FFFF', () => {
    const xml = junitXml({
      name: 'skiff',
      cases: [passing({ output: ['nul\x00 bel\x07 vt\x0b ff\x0c', 'half \ud800 pair', 'ok \ufffe\uffff', 'kept: tab\t é 😀'] })],
    });
    const out = child(child(child(parseXml(xml), 'testsuite')[0]!, 'testcase')[0]!, 'system-out')[0]!;
    expect(out.text).toBe('nul bel vt ff\nhalf  pair\nok \nkept: tab\t é 😀');
  });
});

describe('xmlText and stripAnsi', () => {
  it('escape and strip', () => {
    expect(xmlText(`a & b < c > d " e ' f\x01`)).toBe('a &amp; b &lt; c &gt; d &quot; e &apos; f');
    expect(stripAnsi('\x1b[32mgreen\x1b[39m plain \x9b1mc1')).toBe('green plain c1');
  });
});

describe('OutputTail', () => {
  it('keeps the last lines only, and cuts very long ones', () => {
    const tail = new OutputTail(3, 10);
    for (let i = 1; i <= 250; i++) tail.push(`line ${i}`);
    tail.push('x'.repeat(25));
    expect(tail.lines()).toEqual(['line 249', 'line 250', 'xxxxxxxxxx … (15 more characters)']);
  });
});

describe('parseXml', () => {
  it('reads elements, attributes, text, CDATA and references; skips comments, PIs and a DOCTYPE', () => {
    const root = parseXml(
      `\uFEFF<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY e "x">]>\n<!-- c -->\n<r a='1' b = "&lt;&#65;&#x42;">t&amp;<![CDATA[<raw>]]><k/><?pi x?><!-- in --><k>&e;</k></r>\n`,
    );
    expect(root).toEqual({
      name: 'r',
      attributes: { a: '1', b: '<AB' },
      text: 't&<raw>',
      children: [
        { name: 'k', attributes: {}, children: [], text: '' },
        { name: 'k', attributes: {}, children: [], text: '&e;' },
      ],
    });
  });

  it.each([
    ['', 'line 1: no root element'],
    ['<a>', 'line 1: <a> is not closed'],
    ['<a>\n</b>', 'line 2: </b> does not close <a>'],
    ['<a x=1/>', 'line 1: the value of attribute x must be quoted'],
    ['<a x="1" x="2"/>', 'line 1: attribute x appears twice in <a>'],
    ['<a x="<"/>', 'line 1: "<" in the value of attribute x must be written &lt;'],
    ['<a>&nbsp;</a>', 'line 1: unknown entity &nbsp;'],
    ['<a>AT&T</a>', 'line 1: "&" must start a reference such as &amp;'],
    ['<a>&#0;</a>', 'line 1: &#0; is not a character XML allows'],
    ['<a/><b/>', 'line 1: a second root element'],
    ['<a/>tail', 'line 1: text after the root element'],
    ['text', 'line 1: expected the root element'],
    ['</a>', 'line 1: expected the root element'],
    ['<a>\n\n\x01</a>', 'line 3: character U+0001 is not allowed in XML'],
    ['\n<?xml version="1.0"?><a/>', 'line 2: the XML declaration must be at the very start'],
    ['<a><!-- open</a>', 'line 1: a comment is not closed with -->'],
    ['<a b="1"c="2"/>', 'line 1: expected white space, > or /> in <a>'],
    ['<a>]]></a>', 'line 1: "]]>" in text must be written "]]&gt;"'],
  ])('rejects %j', (doc, message) => {
    expect(() => parseXml(doc)).toThrow(XmlSyntaxError);
    expect(() => parseXml(doc)).toThrow(message);
  });

  it('reads a large report in linear time', () => {
    const big = `<testsuite>${'<testcase name="t" classname="c"><system-out>some &amp; output</system-out></testcase>'.repeat(50_000)}</testsuite>`;
    const started = Date.now();
    expect(parseXml(big).children).toHaveLength(50_000);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

/**
 * The JUnit XML report GitLab shows in pipelines and merge requests, and the
 * minimal XML reader that checks reports are well-formed. Pure.
 *
 * The report follows the schema GitLab (and Jenkins) read: `<testsuites>`
 * holding one `<testsuite>`, both with tests, failures, errors, skipped and
 * time; a `<testcase>` per test with a `<failure>` or its `<system-out>`,
 * and its `<properties>` when it has any (pytest's record_property writes them there too).
 */

export interface JunitCase {
  name: string;
  classname: string;
  durationMs: number;
  /** Set when the test did not pass: message `exit N`, type what happened. */
  failure?: { message: string; type: 'failed' | 'timed out' | 'interrupted' };
  /** The last lines of its output: a failure's text, or a passing test's system-out. */
  output: readonly string[];
  /** Written as the testcase's <properties> (a test skipped as passed before says so there). */
  properties?: Readonly<Record<string, string>>;
}

export interface JunitSuite {
  name: string;
  /** When the run started (written in UTC, without a zone, as the schema's timestamp wants). */
  timestamp?: Date;
  cases: readonly JunitCase[];
}

/** Escape sequences of terminals: CSI (colours, cursor moves), OSC (titles, links), and the short ESC forms. */
// eslint-disable-next-line no-control-regex -- matching ESC and BEL is the point
const ANSI = /\x1b\][\s\S]*?(?:\x07|\x1b\\)|(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]|\x1b[ -/]*[0-~]/g;
/** Everything XML 1.0 does not allow in a document, lone surrogates included. */
const NOT_XML = /[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

export function stripAnsi(text: string): string {
  return text.replace(ANSI, '');
}

/** Text fit for an XML document: characters XML 1.0 forbids dropped, & < > " ' escaped. */
export function xmlText(text: string): string {
  return text.replace(NOT_XML, '').replace(/[&<>"']/g, (c) => ENTITY_OF[c]!);
}

/** An attribute value: as xmlText, and tabs and line breaks kept as references (a parser would turn them into spaces). */
export function xmlAttribute(text: string): string {
  return xmlText(text).replace(/[\t\n\r]/g, (c) => `&#${c.charCodeAt(0)};`);
}

const ENTITY_OF: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };

/** A line of output as a reader of the report should see it: no escape codes, and what a terminal shows of a line redrawn with \r. */
function plainLine(line: string): string {
  const segments = stripAnsi(line).split('\r');
  return segments.findLast((s) => s !== '') ?? '';
}

const seconds = (ms: number) => (Math.max(0, ms) / 1000).toFixed(3);

const attributes = (attrs: Record<string, string | number | undefined>) =>
  Object.entries(attrs)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => ` ${k}="${xmlAttribute(String(v))}"`)
    .join('');

/** The report as one XML document. */
export function junitXml(suite: JunitSuite): string {
  const failures = suite.cases.filter((c) => c.failure).length;
  const totals = {
    tests: suite.cases.length,
    failures,
    errors: 0,
    skipped: 0,
    time: seconds(suite.cases.reduce((sum, c) => sum + c.durationMs, 0)),
  };
  const out = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites${attributes({ name: suite.name, ...totals })}>`,
    `  <testsuite${attributes({ name: suite.name, ...totals, timestamp: suite.timestamp?.toISOString().slice(0, 19) })}>`,
  ];
  for (const c of suite.cases) {
    out.push(`    <testcase${attributes({ name: c.name, classname: c.classname, time: seconds(c.durationMs) })}>`);
    const properties = Object.entries(c.properties ?? {});
    if (properties.length) {
      out.push('      <properties>');
      for (const [name, value] of properties) out.push(`        <property${attributes({ name, value })}/>`);
      out.push('      </properties>');
    }
    const text = xmlText(c.output.map(plainLine).join('\n'));
    if (c.failure) out.push(`      <failure${attributes(c.failure)}>${text}</failure>`);
    else if (text) out.push(`      <system-out>${text}</system-out>`);
    out.push('    </testcase>');
  }
  out.push('  </testsuite>', '</testsuites>', '');
  return out.join('\n');
}

/** The last lines of a stream of output, at most `limit` of them, each at most `width` characters. */
export class OutputTail {
  private readonly kept: string[] = [];
  constructor(
    private readonly limit = 100,
    private readonly width = 4000,
  ) {}
  push(line: string) {
    this.kept.push(line.length > this.width ? `${line.slice(0, this.width)} … (${line.length - this.width} more characters)` : line);
    if (this.kept.length > this.limit) this.kept.shift();
  }
  lines(): string[] {
    return [...this.kept];
  }
}

/**
 * The JUnit XML report GitLab shows in pipelines and merge requests, and the
 * minimal XML reader that checks reports are well-formed. Pure.
 *
 * The report follows the schema GitLab (and Jenkins) read: `<testsuites>`
 * holding one `<testsuite>`, both with tests, failures, errors, skipped and
 * time; a `<testcase>` per test with a `<failure>` or its `<system-out>`.
 */

export interface JunitCase {
  name: string;
  classname: string;
  durationMs: number;
  /** Set when the test did not pass: message `exit N`, type what happened. */
  failure?: { message: string; type: 'failed' | 'timed out' | 'interrupted' };
  /** The last lines of its output: a failure's text, or a passing test's system-out. */
  output: readonly string[];
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

export interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: XmlElement[];
  /** The element's own text (its text and CDATA, not its children's), references resolved. */
  text: string;
}

export class XmlSyntaxError extends Error {
  constructor(
    readonly line: number,
    reason: string,
  ) {
    super(`line ${line}: ${reason}`);
    this.name = 'XmlSyntaxError';
  }
}

const NAME = /[A-Za-z_:\u00C0-\uFFFF][-A-Za-z0-9_:.\u00B7\u00C0-\uFFFF]*/y;
const SPACE = /[ \t\r\n]*/y;
const REFERENCE = /&(?:(amp|lt|gt|quot|apos)|#([0-9]+)|#x([0-9a-fA-F]+)|([A-Za-z_:][-A-Za-z0-9_:.]*));/y;
const PREDEFINED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/**
 * Reads a document and returns its root element, or throws XmlSyntaxError
 * naming the line: one root element, tags that nest and match, quoted and
 * unique attributes, known references, no character XML 1.0 forbids. Enough
 * to tell a well-formed report from a broken one; DTDs are skipped, not read.
 */
export function parseXml(source: string): XmlElement {
  const doc = source.startsWith('\uFEFF') ? source.slice(1) : source;
  let pos = 0;
  function fail(reason: string, at = pos): never {
    throw new XmlSyntaxError(doc.slice(0, at).split('\n').length, reason);
  }
  const bad = /[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u.exec(doc);
  if (bad) fail(`character U+${bad[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')} is not allowed in XML`, bad.index);
  let doctype = false;
  const match = (re: RegExp) => {
    re.lastIndex = pos;
    const m = re.exec(doc);
    if (m) pos = re.lastIndex;
    return m;
  };
  const skipTo = (end: string, what: string) => {
    const at = doc.indexOf(end, pos);
    if (at === -1) fail(`${what} is not closed with ${end}`);
    const body = doc.slice(pos, at);
    pos = at + end.length;
    return body;
  };
  const name = (what: string) => match(NAME)?.[0] ?? fail(`expected ${what}`);
  /** Resolves the references of a text or attribute value. */
  const resolve = (text: string, at: number) => {
    let out = '';
    let i = 0;
    for (let amp = text.indexOf('&'); amp !== -1; amp = text.indexOf('&', i)) {
      out += text.slice(i, amp);
      REFERENCE.lastIndex = amp;
      const m = REFERENCE.exec(text) ?? fail(`"&" must start a reference such as &amp;`, at + amp);
      const [all, predefined, dec, hex, other] = m;
      if (predefined) out += PREDEFINED[predefined];
      else if (other) {
        if (!doctype) fail(`unknown entity &${other};`, at + amp);
        out += all;
      } else {
        const code = dec ? Number.parseInt(dec, 10) : Number.parseInt(hex!, 16);
        const char = code <= 0x10ffff ? String.fromCodePoint(code) : '';
        if (!char || /[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u.test(char)) fail(`${all} is not a character XML allows`, at + amp);
        out += char;
      }
      i = amp + all.length;
    }
    return out + text.slice(i);
  };
  /** Comments, processing instructions and white space between elements; a DOCTYPE where it may be. */
  const misc = (prolog: boolean) => {
    for (;;) {
      match(SPACE);
      if (doc.startsWith('<!--', pos)) {
        pos += 4;
        skipTo('-->', 'a comment');
      } else if (doc.startsWith('<?', pos)) {
        pos += 2;
        if (/^xml[ \t\r\n?]/i.test(doc.slice(pos, pos + 4)) && pos !== 2) fail('the XML declaration must be at the very start');
        skipTo('?>', 'a processing instruction');
      } else if (prolog && !doctype && doc.startsWith('<!DOCTYPE', pos)) {
        doctype = true;
        const open = doc.indexOf('[', pos);
        const close = doc.indexOf('>', pos);
        if (open !== -1 && (close === -1 || open < close)) {
          pos = open;
          skipTo(']', 'the DOCTYPE');
        }
        skipTo('>', 'the DOCTYPE');
      } else return;
    }
  };

  misc(true);
  if (pos >= doc.length) fail('no root element');
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  while (!root) {
    if (pos >= doc.length) fail(`<${stack.at(-1)!.name}> is not closed`);
    const parent = stack.at(-1);
    if (!parent && (doc[pos] !== '<' || /^<[/!?]/.test(doc.slice(pos, pos + 2)))) fail('expected the root element');
    if (doc[pos] !== '<') {
      const start = pos;
      const end = doc.indexOf('<', pos);
      pos = end === -1 ? doc.length : end;
      const text = doc.slice(start, pos);
      if (text.includes(']]>')) fail('"]]>" in text must be written "]]&gt;"', start + text.indexOf(']]>'));
      parent!.text += resolve(text, start);
    } else if (doc.startsWith('</', pos)) {
      const at = pos;
      pos += 2;
      const closing = name('a tag name after </');
      match(SPACE);
      if (doc[pos] !== '>') fail(`expected > to close </${closing}`);
      pos++;
      const open = stack.pop()!;
      if (open.name !== closing) fail(`</${closing}> does not close <${open.name}>`, at);
      if (stack.length === 0) root = open;
    } else if (doc.startsWith('<!--', pos)) {
      pos += 4;
      skipTo('-->', 'a comment');
    } else if (doc.startsWith('<![CDATA[', pos)) {
      pos += 9;
      parent!.text += skipTo(']]>', 'a CDATA section');
    } else if (doc.startsWith('<?', pos)) {
      pos += 2;
      skipTo('?>', 'a processing instruction');
    } else if (doc.startsWith('<!', pos)) {
      fail('unexpected <! in content');
    } else {
      pos++;
      const element: XmlElement = { name: name('a tag name after <'), attributes: {}, children: [], text: '' };
      for (;;) {
        const spaced = match(SPACE)![0].length > 0;
        if (doc.startsWith('/>', pos) || doc[pos] === '>') break;
        if (!spaced) fail(`expected white space, > or /> in <${element.name}>`);
        const attrAt = pos;
        const attr = name(`an attribute name, > or /> in <${element.name}>`);
        match(SPACE);
        if (doc[pos] !== '=') fail(`attribute ${attr} of <${element.name}> has no value`);
        pos++;
        match(SPACE);
        const quote = doc[pos];
        if (quote !== '"' && quote !== "'") fail(`the value of attribute ${attr} must be quoted`);
        pos++;
        const valueAt = pos;
        const value = skipTo(quote, `the value of attribute ${attr}`);
        if (value.includes('<')) fail(`"<" in the value of attribute ${attr} must be written &lt;`, valueAt);
        if (Object.hasOwn(element.attributes, attr)) fail(`attribute ${attr} appears twice in <${element.name}>`, attrAt);
        Object.defineProperty(element.attributes, attr, { value: resolve(value, valueAt), enumerable: true, writable: true, configurable: true });
      }
      parent?.children.push(element);
      if (doc.startsWith('/>', pos)) {
        pos += 2;
        if (!parent) root = element;
      } else {
        pos++;
        stack.push(element);
      }
    }
  }
  misc(false);
  if (pos < doc.length) fail(doc[pos] === '<' ? 'a second root element' : 'text after the root element');
  return root;
}

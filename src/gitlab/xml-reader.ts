// A small XML 1.0 well-formedness reader: enough to tell a test's JUnit report that GitLab will
// accept from a broken one, naming the line. No dependency; DTDs are skipped, not read.

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
const NOT_XML_CHAR = /[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;

/**
 * Reads a document and returns its root element, or throws XmlSyntaxError
 * naming the line: one root element, tags that nest and match, quoted and
 * unique attributes, known references, no character XML 1.0 forbids.
 */
export function parseXml(source: string): XmlElement {
  return new XmlReader(source.startsWith('\uFEFF') ? source.slice(1) : source).document();
}

class XmlReader {
  private pos = 0;
  private doctype = false;
  private readonly stack: XmlElement[] = [];

  constructor(private readonly doc: string) {}

  document(): XmlElement {
    const bad = NOT_XML_CHAR.exec(this.doc);
    if (bad) this.fail(`character U+${bad[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')} is not allowed in XML`, bad.index);
    this.misc(true);
    if (this.pos >= this.doc.length) this.fail('no root element');
    let root: XmlElement | undefined;
    while (!root) root = this.content();
    this.misc(false);
    if (this.pos < this.doc.length) this.fail(this.doc[this.pos] === '<' ? 'a second root element' : 'text after the root element');
    return root;
  }

  /** One piece of content; returns the root element once it is complete. */
  private content(): XmlElement | undefined {
    const { doc, pos } = this;
    if (pos >= doc.length) this.fail(`<${this.stack.at(-1)!.name}> is not closed`);
    const parent = this.stack.at(-1);
    if (!parent && (doc[pos] !== '<' || /^<[/!?]/.test(doc.slice(pos, pos + 2)))) this.fail('expected the root element');
    if (doc[pos] !== '<') this.text(parent!);
    else if (doc.startsWith('</', pos)) return this.endTag();
    else if (doc.startsWith('<!--', pos)) this.skipTo('-->', 'a comment', 4);
    else if (doc.startsWith('<![CDATA[', pos)) parent!.text += this.skipTo(']]>', 'a CDATA section', 9);
    else if (doc.startsWith('<?', pos)) this.skipTo('?>', 'a processing instruction', 2);
    else if (doc.startsWith('<!', pos)) this.fail('unexpected <! in content');
    else return this.startTag(parent);
    return undefined;
  }

  private text(parent: XmlElement) {
    const start = this.pos;
    const end = this.doc.indexOf('<', start);
    this.pos = end === -1 ? this.doc.length : end;
    const text = this.doc.slice(start, this.pos);
    if (text.includes(']]>')) this.fail('"]]>" in text must be written "]]&gt;"', start + text.indexOf(']]>'));
    parent.text += this.resolve(text, start);
  }

  private endTag(): XmlElement | undefined {
    const at = this.pos;
    this.pos += 2;
    const closing = this.name('a tag name after </');
    this.match(SPACE);
    if (this.doc[this.pos] !== '>') this.fail(`expected > to close </${closing}`);
    this.pos++;
    const open = this.stack.pop()!;
    if (open.name !== closing) this.fail(`</${closing}> does not close <${open.name}>`, at);
    return this.stack.length === 0 ? open : undefined;
  }

  private startTag(parent: XmlElement | undefined): XmlElement | undefined {
    this.pos++;
    const element: XmlElement = { name: this.name('a tag name after <'), attributes: {}, children: [], text: '' };
    for (;;) {
      const spaced = this.match(SPACE)![0].length > 0;
      if (this.doc.startsWith('/>', this.pos) || this.doc[this.pos] === '>') break;
      if (!spaced) this.fail(`expected white space, > or /> in <${element.name}>`);
      this.attribute(element);
    }
    parent?.children.push(element);
    if (this.doc.startsWith('/>', this.pos)) {
      this.pos += 2;
      return parent ? undefined : element;
    }
    this.pos++;
    this.stack.push(element);
    return undefined;
  }

  private attribute(element: XmlElement) {
    const attrAt = this.pos;
    const attr = this.name(`an attribute name, > or /> in <${element.name}>`);
    this.match(SPACE);
    if (this.doc[this.pos] !== '=') this.fail(`attribute ${attr} of <${element.name}> has no value`);
    this.pos++;
    this.match(SPACE);
    const quote = this.doc[this.pos];
    if (quote !== '"' && quote !== "'") this.fail(`the value of attribute ${attr} must be quoted`);
    const valueAt = this.pos + 1;
    const value = this.skipTo(quote, `the value of attribute ${attr}`, 1);
    if (value.includes('<')) this.fail(`"<" in the value of attribute ${attr} must be written &lt;`, valueAt);
    if (Object.hasOwn(element.attributes, attr)) this.fail(`attribute ${attr} appears twice in <${element.name}>`, attrAt);
    Object.defineProperty(element.attributes, attr, { value: this.resolve(value, valueAt), enumerable: true, writable: true, configurable: true });
  }

  /** Comments, processing instructions and white space between elements; a DOCTYPE where it may be. */
  private misc(prolog: boolean) {
    const doc = this.doc;
    for (;;) {
      this.match(SPACE);
      if (doc.startsWith('<!--', this.pos)) this.skipTo('-->', 'a comment', 4);
      else if (doc.startsWith('<?', this.pos)) {
        this.pos += 2;
        if (/^xml[ \t\r\n?]/i.test(doc.slice(this.pos, this.pos + 4)) && this.pos !== 2) this.fail('the XML declaration must be at the very start');
        this.skipTo('?>', 'a processing instruction');
      } else if (prolog && !this.doctype && doc.startsWith('<!DOCTYPE', this.pos)) this.doctypeDeclaration();
      else return;
    }
  }

  private doctypeDeclaration() {
    this.doctype = true;
    const open = this.doc.indexOf('[', this.pos);
    const close = this.doc.indexOf('>', this.pos);
    if (open !== -1 && (close === -1 || open < close)) {
      this.pos = open;
      this.skipTo(']', 'the DOCTYPE');
    }
    this.skipTo('>', 'the DOCTYPE');
  }

  /** Resolves the references of a text or attribute value. */
  private resolve(text: string, at: number): string {
    let out = '';
    let i = 0;
    for (let amp = text.indexOf('&'); amp !== -1; amp = text.indexOf('&', i)) {
      out += text.slice(i, amp);
      REFERENCE.lastIndex = amp;
      const m = REFERENCE.exec(text) ?? this.fail(`"&" must start a reference such as &amp;`, at + amp);
      out += this.reference(m, at + amp);
      i = amp + m[0].length;
    }
    return out + text.slice(i);
  }

  private reference([all, predefined, dec, hex, other]: RegExpExecArray, at: number): string {
    if (predefined) return PREDEFINED[predefined]!;
    if (other) {
      if (!this.doctype) this.fail(`unknown entity &${other};`, at);
      return all;
    }
    const code = dec ? Number.parseInt(dec, 10) : Number.parseInt(hex!, 16);
    const char = code <= 0x10ffff ? String.fromCodePoint(code) : '';
    if (!char || NOT_XML_CHAR.test(char)) this.fail(`${all} is not a character XML allows`, at);
    return char;
  }

  private match(re: RegExp): RegExpExecArray | null {
    re.lastIndex = this.pos;
    const m = re.exec(this.doc);
    if (m) this.pos = re.lastIndex;
    return m;
  }

  /** Skips `open` characters, then returns what comes before `end` and moves past it. */
  private skipTo(end: string, what: string, open = 0): string {
    this.pos += open;
    const at = this.doc.indexOf(end, this.pos);
    if (at === -1) this.fail(`${what} is not closed with ${end}`);
    const body = this.doc.slice(this.pos, at);
    this.pos = at + end.length;
    return body;
  }

  private name(what: string): string {
    return this.match(NAME)?.[0] ?? this.fail(`expected ${what}`);
  }

  private fail(reason: string, at = this.pos): never {
    throw new XmlSyntaxError(this.doc.slice(0, at).split('\n').length, reason);
  }
}

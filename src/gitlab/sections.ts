import type { SectionOptions } from '../context.js';

interface OpenSection {
  name: string;
  header: string;
  collapsed: boolean;
  source?: string;
  startedAt: number;
  /** What it printed while waiting for the log, its end included. */
  queue: Array<() => void>;
}

/**
 * GitLab's collapsible sections
 * (https://docs.gitlab.com/ci/jobs/job_logs/#custom-collapsible-sections).
 * GitLab nests a section started inside another, so sections of parallel
 * work must not interleave: one is on the log at a time, a section started
 * meanwhile waits with its lines (kept by their source) and is printed whole
 * when the log is free. Lines of no open section are held until the open one
 * ends, so no warning or verdict is folded into another unit's section.
 */
export class GitlabSections {
  private open: OpenSection | undefined;
  private readonly waiting: OpenSection[] = [];
  private held: Array<() => void> = [];
  private readonly names = new Set<string>();
  private promoting = false;

  constructor(
    private readonly write: (line: string) => void,
    private readonly now: () => number,
  ) {}

  start(name: string, header: string, opts: SectionOptions): () => void {
    const section: OpenSection = {
      name: this.unique(name),
      header: header.replace(/[\r\n]+/g, ' '),
      collapsed: Boolean(opts.collapsed),
      source: opts.source,
      startedAt: this.now(),
      queue: [],
    };
    if (this.open || this.waiting.length) this.waiting.push(section);
    else this.begin(section);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      const at = this.now();
      if (this.open === section) this.end(section, at);
      else section.queue.push(() => this.end(section, at));
    };
  }

  route(source: string | undefined, print: () => void) {
    const open = this.open?.source;
    if (open !== undefined && open === source) return print();
    const waiting = source === undefined ? undefined : this.waiting.find((s) => s.source === source);
    if (waiting) waiting.queue.push(print);
    else if (open !== undefined) this.held.push(print);
    else print();
  }

  private begin(section: OpenSection) {
    this.open = section;
    const collapsed = section.collapsed ? '[collapsed=true]' : '';
    this.write(`\x1b[0Ksection_start:${unixSeconds(section.startedAt)}:${section.name}${collapsed}\r\x1b[0K${section.header}`);
  }

  private end(section: OpenSection, at: number) {
    this.write(`\x1b[0Ksection_end:${unixSeconds(at)}:${section.name}\r\x1b[0K`);
    this.open = undefined;
    const held = this.held;
    this.held = [];
    for (const print of held) print();
    if (this.waiting.length && !this.promoting) {
      this.promoting = true;
      // Next turn: the verdict the ended unit prints right after its end comes first.
      queueMicrotask(() => {
        this.promoting = false;
        this.promote();
      });
    }
  }

  /** The waiting sections, in the order they started, each printed up to where it is now. */
  private promote() {
    while (!this.open && this.waiting.length) {
      const next = this.waiting.shift()!;
      this.begin(next);
      for (const print of next.queue.splice(0)) print();
    }
  }

  /** GitLab's section names: [a-z0-9_.-], one per section of the job. */
  private unique(name: string): string {
    const base =
      name
        .toLowerCase()
        .replace(/[^a-z0-9_.-]+/g, '_')
        .replace(/^_+|_+$/g, '') || 'section';
    let candidate = base;
    for (let n = 2; this.names.has(candidate); n++) candidate = `${base}_${n}`;
    this.names.add(candidate);
    return candidate;
  }
}

const unixSeconds = (ms: number) => Math.floor(ms / 1000);

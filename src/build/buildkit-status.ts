/**
 * BuildKit's progress, as the Docker Engine streams it for `POST /build?version=2`:
 * `{"id":"moby.buildkit.trace","aux":"<base64>"}` lines, each a `StatusResponse` of
 * BuildKit's control API (moby/buildkit api/services/control/control.proto). Only the
 * fields skiff shows are decoded; everything else is skipped by its wire type, so a
 * newer BuildKit that adds fields decodes the same.
 */
export interface StatusResponse {
  vertexes: Vertex[];
  statuses: VertexStatus[];
  logs: VertexLog[];
}

/** One node of the build graph: a Dockerfile step (`[app 3/5] RUN make`) or an internal one (`[internal] load …`). */
export interface Vertex {
  digest: string;
  inputs: string[];
  name: string;
  cached: boolean;
  /** Milliseconds since the epoch. */
  started?: number;
  completed?: number;
  error?: string;
}

/** Progress inside a vertex (bytes pulled, layers exported). */
export interface VertexStatus {
  id: string;
  vertex: string;
  name: string;
  current: number;
  total: number;
  timestamp?: number;
  started?: number;
  completed?: number;
}

/** Output of a vertex's process: stream 1 is stdout, 2 stderr. */
export interface VertexLog {
  vertex: string;
  timestamp?: number;
  stream: number;
  msg: Uint8Array;
}

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_BYTES = 2;
const WIRE_FIXED32 = 5;

/** A reader of protobuf's wire format (https://protobuf.dev/programming-guides/encoding/). */
class WireReader {
  private pos = 0;
  constructor(private readonly buf: Uint8Array) {}

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  /** Field number and wire type of the next field. */
  key(): { field: number; wire: number } {
    const key = this.varint();
    return { field: Math.floor(key / 8), wire: key % 8 };
  }

  /** An unsigned varint; exact up to 2^53, which every timestamp and count here stays below. */
  varint(): number {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      if (this.pos >= this.buf.length) throw new Error('truncated varint');
      if (shift > 63) throw new Error('varint longer than 10 bytes');
      const byte = this.buf[this.pos++]!;
      value += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return value;
    }
  }

  bytes(): Uint8Array {
    const length = this.varint();
    if (this.pos + length > this.buf.length) throw new Error('length-delimited field runs past the end');
    const out = this.buf.subarray(this.pos, this.pos + length);
    this.pos += length;
    return out;
  }

  string(): string {
    return Buffer.from(this.bytes()).toString('utf8');
  }

  skip(wire: number) {
    if (wire === WIRE_VARINT) this.varint();
    else if (wire === WIRE_BYTES) this.bytes();
    else if (wire === WIRE_FIXED64) this.advance(8);
    else if (wire === WIRE_FIXED32) this.advance(4);
    else throw new Error(`unsupported wire type ${wire}`);
  }

  private advance(n: number) {
    if (this.pos + n > this.buf.length) throw new Error('fixed-width field runs past the end');
    this.pos += n;
  }
}

/** Reads every field of a message, handing (field, wire type, reader) to `onField`; returns true when it consumed the field. */
function readMessage(buf: Uint8Array, onField: (field: number, wire: number, r: WireReader) => boolean) {
  const r = new WireReader(buf);
  while (!r.done) {
    const { field, wire } = r.key();
    if (!onField(field, wire, r)) r.skip(wire);
  }
}

/** google.protobuf.Timestamp { int64 seconds = 1; int32 nanos = 2; } as epoch milliseconds. */
function timestamp(buf: Uint8Array): number {
  let seconds = 0;
  let nanos = 0;
  readMessage(buf, (field, wire, r) => {
    if (wire !== WIRE_VARINT) return false;
    if (field === 1) seconds = r.varint();
    else if (field === 2) nanos = r.varint();
    else return false;
    return true;
  });
  return seconds * 1000 + Math.floor(nanos / 1e6);
}

function vertex(buf: Uint8Array): Vertex {
  const v: Vertex = { digest: '', inputs: [], name: '', cached: false };
  readMessage(buf, (field, wire, r) => {
    if (field === 4 && wire === WIRE_VARINT) v.cached = r.varint() !== 0;
    else if (wire !== WIRE_BYTES) return false;
    else if (field === 1) v.digest = r.string();
    else if (field === 2) v.inputs.push(r.string());
    else if (field === 3) v.name = r.string();
    else if (field === 5) v.started = timestamp(r.bytes());
    else if (field === 6) v.completed = timestamp(r.bytes());
    else if (field === 7) v.error = r.string() || undefined;
    else return false;
    return true;
  });
  return v;
}

function vertexStatus(buf: Uint8Array): VertexStatus {
  const s: VertexStatus = { id: '', vertex: '', name: '', current: 0, total: 0 };
  readMessage(buf, (field, wire, r) => {
    if (wire === WIRE_VARINT && field === 4) s.current = r.varint();
    else if (wire === WIRE_VARINT && field === 5) s.total = r.varint();
    else if (wire !== WIRE_BYTES) return false;
    else if (field === 1) s.id = r.string();
    else if (field === 2) s.vertex = r.string();
    else if (field === 3) s.name = r.string();
    else if (field === 6) s.timestamp = timestamp(r.bytes());
    else if (field === 7) s.started = timestamp(r.bytes());
    else if (field === 8) s.completed = timestamp(r.bytes());
    else return false;
    return true;
  });
  return s;
}

function vertexLog(buf: Uint8Array): VertexLog {
  const l: VertexLog = { vertex: '', stream: 0, msg: new Uint8Array() };
  readMessage(buf, (field, wire, r) => {
    if (field === 3 && wire === WIRE_VARINT) l.stream = r.varint();
    else if (wire !== WIRE_BYTES) return false;
    else if (field === 1) l.vertex = r.string();
    else if (field === 2) l.timestamp = timestamp(r.bytes());
    else if (field === 4) l.msg = r.bytes();
    else return false;
    return true;
  });
  return l;
}

/** Decodes one `StatusResponse`; throws on bytes that are not one. */
export function decodeStatusResponse(buf: Uint8Array): StatusResponse {
  const out: StatusResponse = { vertexes: [], statuses: [], logs: [] };
  readMessage(buf, (field, wire, r) => {
    if (wire !== WIRE_BYTES) return false;
    if (field === 1) out.vertexes.push(vertex(r.bytes()));
    else if (field === 2) out.statuses.push(vertexStatus(r.bytes()));
    else if (field === 3) out.logs.push(vertexLog(r.bytes()));
    else return false;
    return true;
  });
  return out;
}

/** The `aux` of a `moby.buildkit.trace` message (base64), decoded. */
export function decodeTraceAux(aux: string): StatusResponse {
  return decodeStatusResponse(Buffer.from(aux, 'base64'));
}

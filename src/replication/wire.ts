/**
 * Replication's messaging over the mesh's reliable channel: messages of any
 * size (a snapshot of a large database, a query result) are CBOR-encoded and,
 * above one frame, split into chunks that the receiver reassembles; and a
 * small request/response RPC on top, used to forward work to group leaders.
 *
 * The reliable channel is ordered per peer. A large message's chunks are
 * paced by the link's backlog (a mesh link closes past 32 MiB of it, and a
 * snapshot of a large database is hundreds of MiB): at most PACE_BYTES wait
 * in the link, the rest leave as it drains, and small messages (heartbeats,
 * votes) pass between them. Large messages to one peer leave one after the
 * other, so chunks of two never interleave; a chunk of a new message discards
 * an incomplete earlier one (the link was replaced). Every chunk carries its
 * CRC-32C: a damaged one drops the message (Raft and RPC callers retry).
 *
 * Resuming: a large message's first chunk names it (`r`: its length and the
 * CRC-32C of its first and last chunk) and its last chunk carries the
 * SHA-256 of the whole message (`d`). A receiver keeps the chunks of a
 * message cut off by a dropped link; when the same message starts again (a
 * resent snapshot), it keeps them and answers `{s: [id, have]}`, and the
 * sender goes on from chunk `have`. The digest, checked over the kept and the
 * new chunks alike, makes sure a message is never pieced together from two
 * that merely share the name: such a message is dropped, the next one starts
 * afresh.
 *
 * Spooling: a message above SPOOL_BYTES is written to the receiver's spool
 * directory chunk by chunk as it arrives (spool.ts), never held in memory
 * until it is complete. The receiver tells the sender how many chunks are on
 * its disk (`{a: [id, written]}`), and the sender keeps at most WINDOW_BYTES
 * of such a message ahead of that, so a disk slower than the network holds
 * the sender back instead of filling the receiver's memory. A receiver that
 * never answers (a node before spooling) gets the rest unwindowed after
 * ACK_GRACE_MS. A kept partial message lives in its spool file too.
 *
 * A sender need not encode a large binary into one buffer either:
 * `sendWithBody` streams a message whose one large field (the image of a
 * snapshot) is sent from the caller's own buffer. The bytes on the wire are
 * the CBOR of the whole message all the same, so a receiver cannot tell.
 */
import { createHash, type Hash } from 'node:crypto';
import { Encoder } from 'cbor-x';
import type { Clock, TimerHandle } from '../core/clock';
import { checkCbor } from '../core/cbor-guard';
import { GandalfError, type ErrorCode } from '../core/errors';
import { crc32c } from '../core/crc32c';
import type { Logger } from '../core/logger';
import type { SpoolDir, SpoolFile } from './spool';

export const REPLICATION_TOPIC = 'repl';
/** Payload bytes per chunk: well inside one 64 KiB mesh frame with its envelope. */
export const CHUNK_BYTES = 48 * 1024;
/** Largest message accepted (a database snapshot travels as one message). */
export const MAX_MESSAGE_BYTES = 512 * 1024 * 1024;
/** A large message's chunks wait in a link only up to this many bytes of its backlog. */
export const PACE_BYTES = 2 * 1024 * 1024;
/** Bytes of large messages queued for one peer beyond this are refused (the send fails; callers retry). */
export const MAX_QUEUED_BYTES = 640 * 1024 * 1024;
/** How often a paced sender looks at a full link again. */
const PACE_POLL_MS = 5;
/** Messages larger than this go to the receiver's spool directory as they arrive. */
export const SPOOL_BYTES = 4 * 1024 * 1024;
/** Bytes of a message above SPOOL_BYTES sent ahead of what the receiver reports written. */
export const WINDOW_BYTES = 8 * 1024 * 1024;
/** A receiver that has not reported a written chunk this long after the window filled gets the rest unwindowed. */
export const ACK_GRACE_MS = 5000;
/** Stands for the body in a message sent with `sendWithBody` (a 16-byte CBOR byte string: 0x50 and these). */
const BODY_MARKER = Buffer.from('gandalf:body:\x00\xff\x01', 'latin1');

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true });

/** What the wire needs from the mesh. */
export interface MeshPort {
  readonly selfId: string;
  send(to: string, body: unknown): boolean;
  subscribe(handler: (from: string, body: unknown) => void): void;
  /** Bytes waiting in the link to `to` (undefined: not linked). Without it, large messages are not paced. */
  backlog?(to: string): number | undefined;
}

/**
 * `k`: CRC-32C of `b`; `r` (first chunk): the message's resume key; `d` (last
 * chunk): SHA-256 of the whole message. Each is absent from nodes before it existed.
 */
type Chunk = { c: [id: number, seq: number, count: number]; b: Uint8Array; k?: number; r?: string; d?: Uint8Array };
/** A receiver that kept chunks 0..have-1 of message `id` from an earlier try: `{s: [id, have]}`. */
type Skip = { s: [id: number, have: number] };
/** A spooling receiver has chunks 0..written-1 of message `id` on its disk: `{a: [id, written]}`. */
type Ack = { a: [id: number, written: number] };
/**
 * `done`: told once whether the last chunk reached the link (true) or the message was dropped (false).
 * `hash` covers the first `hashed` bytes (chunks skipped on a resume are hashed before the last chunk leaves).
 */
type Outgoing = {
  id: number;
  /** The message's bytes: the parts, one after the other. */
  parts: Uint8Array[];
  length: number;
  seq: number;
  count: number;
  done: ((sent: boolean) => void) | undefined;
  hash: Hash;
  hashed: number;
  /** Held to WINDOW_BYTES ahead of `acked` (a message above SPOOL_BYTES, until its receiver proves silent). */
  windowed: boolean;
  /** Chunks the receiver reported written (undefined: no report yet). */
  acked: number | undefined;
  /** When the window first filled without a report. */
  stalledSince: number | undefined;
};
/** An incoming large message: its chunks in memory (`parts`) or in a spool file. */
type Partial_ = {
  id: number;
  key: string | undefined;
  parts: Uint8Array[];
  spool: SpoolFile | undefined;
  received: number;
  bytes: number;
  hash: Hash;
  count: number;
  skipBelow: number;
};
export type SendDone = (sent: boolean) => void;
/** Bytes of skipped chunks a sender hashes per turn of the event loop. */
const HASH_SLICE = 1024 * 1024;

/** Bytes `start`..`end` of a message held as parts (a view where they lie in one part). */
function range(parts: readonly Uint8Array[], start: number, end: number): Uint8Array {
  const pieces: Uint8Array[] = [];
  let at = 0;
  for (const part of parts) {
    const from = Math.max(start, at);
    const to = Math.min(end, at + part.length);
    if (from < to) pieces.push(part.subarray(from - at, to - at));
    at += part.length;
    if (at >= end) break;
  }
  return pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
}

function resumeKey(out: Outgoing): string {
  const last = Math.floor((out.length - 1) / CHUNK_BYTES) * CHUNK_BYTES;
  return `${out.length}:${crc32c(range(out.parts, 0, CHUNK_BYTES))}:${crc32c(range(out.parts, last, out.length))}`;
}

/** Where the marker's byte string lies in `encoded`, if exactly once. */
function markerAt(encoded: Uint8Array): number {
  const needle = Buffer.concat([Buffer.from([0x50]), BODY_MARKER]);
  const view = Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength);
  const at = view.indexOf(needle);
  return at >= 0 && view.indexOf(needle, at + 1) < 0 ? at : -1;
}

export class Wire {
  private nextId = 1;
  private readonly partial = new Map<string, Partial_>();
  /** Chunks skipped because the receiver held them from an earlier try (for tests and metrics). */
  resumedChunks = 0;
  private readonly handlers: ((from: string, message: unknown) => void)[] = [];
  private bad = 0;
  /** Large messages per peer, the first one leaving. */
  private readonly outgoing = new Map<string, Outgoing[]>();
  private readonly pumps = new Map<string, TimerHandle>();

  /** `clock`: for pacing (with `mesh.backlog`); `spool`: where messages above SPOOL_BYTES arrive (else in memory). */
  constructor(
    private readonly mesh: MeshPort,
    private readonly logger: Logger,
    private readonly clock?: Clock,
    private readonly spool?: SpoolDir,
  ) {
    mesh.subscribe((from, body) => this.receive(from, body));
  }

  get selfId(): string {
    return this.mesh.selfId;
  }

  onMessage(handler: (from: string, message: unknown) => void): void {
    this.handlers.push(handler);
  }

  /**
   * Queues `message` for `to`; false when the peer is not linked or its queue is
   * full (the message is dropped). `done`, if given, is told later (never
   * during this call) whether all of the message reached the link.
   */
  send(to: string, message: unknown, done?: SendDone): boolean {
    return this.enqueue(to, [cbor.encode(message) as Uint8Array], done);
  }

  /**
   * Like `send(to, build(placeholder))` with `body` in the placeholder's place,
   * but streamed from `body` itself: the message is never encoded into one
   * buffer. `build` must place the placeholder once, as a value.
   */
  sendWithBody(to: string, body: Uint8Array, build: (placeholder: Uint8Array) => unknown, done?: SendDone): boolean {
    const header = cbor.encode(build(BODY_MARKER)) as Uint8Array;
    const at = markerAt(header);
    if (at < 0) throw new Error('sendWithBody: the message must hold the placeholder exactly once');
    const length = Buffer.alloc(5);
    length[0] = 0x5a; // a byte string, 32-bit length
    length.writeUInt32BE(body.length, 1);
    return this.enqueue(to, [header.subarray(0, at), length, body, header.subarray(at + 1 + BODY_MARKER.length)], done);
  }

  private enqueue(to: string, parts: Uint8Array[], done?: SendDone): boolean {
    const length = parts.reduce((n, p) => n + p.length, 0);
    if (length > MAX_MESSAGE_BYTES) throw new GandalfError('invalid_request', `message of ${length} bytes exceeds ${MAX_MESSAGE_BYTES}`);
    const settle = (sent: boolean): boolean => {
      if (done) queueMicrotask(() => done(sent));
      return sent;
    };
    if (length <= CHUNK_BYTES) return settle(this.mesh.send(to, range(parts, 0, length)));
    const out: Outgoing = {
      id: this.nextId++,
      parts,
      length,
      seq: 0,
      count: Math.ceil(length / CHUNK_BYTES),
      done: undefined,
      hash: createHash('sha256'),
      hashed: 0,
      windowed: length > SPOOL_BYTES,
      acked: undefined,
      stalledSince: undefined,
    };
    if (!this.mesh.backlog || !this.clock) {
      while (out.seq < out.count) if (!this.sendChunk(to, out)) return settle(false);
      return settle(true);
    }
    if (this.mesh.backlog(to) === undefined) return settle(false);
    const queue = this.outgoing.get(to) ?? [];
    const queued = queue.reduce((n, o) => n + o.length - o.seq * CHUNK_BYTES, 0);
    if (queue.length > 0 && queued + length > MAX_QUEUED_BYTES) {
      this.logger.warn('a large message was refused: too much is queued for this peer already', { to, bytes: length, queued });
      return settle(false);
    }
    if (done) out.done = (sent) => queueMicrotask(() => done(sent));
    queue.push(out);
    this.outgoing.set(to, queue);
    if (!this.pumps.has(to)) this.pump(to);
    return true;
  }

  private sendChunk(to: string, out: Outgoing): boolean {
    this.hashUpTo(out, out.seq * CHUNK_BYTES);
    const b = range(out.parts, out.seq * CHUNK_BYTES, Math.min(out.length, (out.seq + 1) * CHUNK_BYTES));
    const chunk: Chunk = { c: [out.id, out.seq, out.count], b, k: crc32c(b) };
    if (out.seq === 0) chunk.r = resumeKey(out);
    out.hash.update(b);
    out.hashed += b.length;
    if (out.seq === out.count - 1) chunk.d = out.hash.digest();
    out.seq++;
    return this.mesh.send(to, chunk);
  }

  private hashUpTo(out: Outgoing, end: number): void {
    if (out.hashed >= end) return;
    let at = 0;
    for (const part of out.parts) {
      const from = Math.max(out.hashed, at);
      const to = Math.min(end, at + part.length);
      if (from < to) out.hash.update(part.subarray(from - at, to - at));
      at += part.length;
    }
    out.hashed = end;
  }

  /** The receiver holds chunks below `have` of message `id` already: go on from there. */
  private skip(from: string, [id, have]: Skip['s']): void {
    const out = this.outgoing.get(from)?.[0];
    if (!out || out.id !== id || have <= out.seq || have >= out.count) return;
    this.resumedChunks += have - out.seq;
    out.seq = have;
    out.acked = Math.max(out.acked ?? 0, have);
  }

  /** The receiver has chunks below `written` of message `id` on its disk: the window moves on. */
  private acked(from: string, [id, written]: Ack['a']): void {
    const out = this.outgoing.get(from)?.find((o) => o.id === id);
    if (out) out.acked = Math.max(out.acked ?? 0, Math.min(written, out.count));
  }

  /** Whether `out` must wait for its receiver's disk before its next chunk. */
  private windowFull(to: string, out: Outgoing): boolean {
    if (!out.windowed || (out.seq - (out.acked ?? 0)) * CHUNK_BYTES < WINDOW_BYTES) return false;
    if (out.acked !== undefined) return true;
    const now = this.clock!.monotonic();
    out.stalledSince ??= now;
    if (now - out.stalledSince < ACK_GRACE_MS) return true;
    out.windowed = false;
    this.logger.info('the receiver does not report what it wrote (an older node?): sending the rest unwindowed', { to, bytes: out.length });
    return false;
  }

  /** Sends chunks while the link has room; looks again shortly when it has none. A link that went away drops the queue. */
  private pump(to: string): void {
    this.pumps.delete(to);
    const queue = this.outgoing.get(to);
    while (queue && queue.length > 0) {
      const backlog = this.mesh.backlog!(to);
      if (backlog === undefined) break;
      if (backlog > PACE_BYTES || this.windowFull(to, queue[0]!)) {
        const timer = this.clock!.setTimeout(() => this.pump(to), PACE_POLL_MS);
        timer.unref?.();
        this.pumps.set(to, timer);
        return;
      }
      const head = queue[0]!;
      if (head.hashed < head.seq * CHUNK_BYTES) {
        // chunks skipped on a resume still count towards the digest: hashed a slice per turn
        this.hashUpTo(head, Math.min(head.seq * CHUNK_BYTES, head.hashed + HASH_SLICE));
        const timer = this.clock!.setTimeout(() => this.pump(to), 0);
        timer.unref?.();
        this.pumps.set(to, timer);
        return;
      }
      if (!this.sendChunk(to, head)) break;
      if (head.seq === head.count) {
        queue.shift();
        head.done?.(true);
      }
      if (queue.length === 0) break;
    }
    this.outgoing.delete(to);
    for (const dropped of queue ?? []) dropped.done?.(false);
  }

  private receive(from: string, body: unknown): void {
    if (body instanceof Uint8Array) return this.deliver(from, body);
    const skip = (body as Partial<Skip> | null)?.s;
    if (Array.isArray(skip)) {
      if (skip.length === 2 && skip.every((n) => Number.isSafeInteger(n) && n >= 0)) return this.skip(from, skip as Skip['s']);
      return this.dropped(from, 'malformed resume answer');
    }
    const ack = (body as Partial<Ack> | null)?.a;
    if (Array.isArray(ack)) {
      if (ack.length === 2 && ack.every((n) => Number.isSafeInteger(n) && n >= 0)) return this.acked(from, ack as Ack['a']);
      return this.dropped(from, 'malformed written report');
    }
    const chunk = body as Partial<Chunk> | null;
    const c = chunk?.c;
    if (!Array.isArray(c) || c.length !== 3 || !(chunk!.b instanceof Uint8Array) || !c.every((n) => Number.isSafeInteger(n) && n >= 0)) {
      return this.dropped(from, 'not a message or chunk');
    }
    const [id, seq, count] = c as [number, number, number];
    if (count * CHUNK_BYTES > MAX_MESSAGE_BYTES + CHUNK_BYTES || seq >= count) return this.dropped(from, 'chunk out of bounds');
    if (chunk!.k !== undefined && chunk!.k !== crc32c(chunk!.b!)) {
      this.forget(from);
      return this.dropped(from, 'chunk checksum mismatch');
    }
    let p = this.partial.get(from);
    if (seq === 0) {
      const key = typeof chunk!.r === 'string' ? chunk!.r : undefined;
      if (p && key !== undefined && p.key === key && p.count === count && p.received > 1 && p.received < count) {
        // The message cut off earlier starts again: keep what arrived, ask for the rest.
        p.id = id;
        p.skipBelow = p.received;
        this.mesh.send(from, { s: [id, p.received] } satisfies Skip);
        return;
      }
      this.forget(from);
      p = { id, key, parts: [], spool: undefined, received: 0, bytes: 0, hash: createHash('sha256'), count, skipBelow: 0 };
      if (this.spool && count * CHUNK_BYTES > SPOOL_BYTES) {
        const spooling = p;
        p.spool = this.spool.create((written) => this.mesh.send(from, { a: [spooling.id, written] } satisfies Ack));
      }
      this.partial.set(from, p);
    }
    if (p && p.id === id && seq < p.skipBelow) return; // sent before the sender heard that these were kept
    if (!p || p.id !== id || p.received !== seq) {
      this.forget(from);
      return this.dropped(from, 'chunk out of sequence');
    }
    const b = chunk!.b!;
    if (p.spool) p.spool.write(b);
    else p.parts.push(b);
    p.received++;
    p.bytes += b.length;
    p.hash.update(b);
    if (p.received === count) {
      this.partial.delete(from);
      if (chunk!.d instanceof Uint8Array && !Buffer.from(chunk!.d).equals(p.hash.digest())) {
        p.spool?.discard();
        return this.dropped(from, 'message digest mismatch');
      }
      if (!p.spool) return this.deliver(from, Buffer.concat(p.parts, p.bytes));
      p.spool.finish().then(
        (bytes) => this.deliver(from, bytes),
        (err: unknown) => this.logger.warn('a large message could not be spooled to disk and was dropped', { from, err: err as Error }),
      );
    }
  }

  /** Drops the incomplete message from `from`, if any. */
  private forget(from: string): void {
    this.partial.get(from)?.spool?.discard();
    this.partial.delete(from);
  }

  private deliver(from: string, bytes: Uint8Array): void {
    const problem = checkCbor(bytes);
    if (problem) return this.dropped(from, problem);
    let message: unknown;
    try {
      message = cbor.decode(bytes);
    } catch (err) {
      return this.dropped(from, (err as Error).message);
    }
    for (const h of this.handlers) h(from, message);
  }

  private dropped(from: string, reason: string): void {
    if (this.bad++ % 100 === 0) this.logger.warn('dropped a malformed replication message', { from, reason, total: this.bad });
  }
}

/** The peer could not be asked (`sent` false: the request never left) or did not answer (`sent` true: it may have acted). */
export class RpcUnreachableError extends GandalfError {
  constructor(
    message: string,
    readonly sent: boolean,
  ) {
    super('peer_unreachable', message);
  }
}

type RpcHandler = (from: string, body: unknown) => Promise<unknown> | unknown;
type RpcRequest = { rpc: 'q'; id: number; m: string; b: unknown };
type RpcReply = { rpc: 's'; id: number; ok: boolean; b?: unknown; code?: string; msg?: string };

/** Request/response over the wire. A handler's GandalfError reaches the caller with its code. */
export class Rpc {
  private nextId = 1;
  private readonly handlers = new Map<string, RpcHandler>();
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: TimerHandle; to: string }>();

  constructor(
    private readonly wire: Wire,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {
    wire.onMessage((from, message) => {
      const m = message as { rpc?: unknown; m?: unknown; id?: unknown } | null;
      if (m?.rpc === 'q' && typeof m.m === 'string' && typeof m.id === 'number') void this.serve(from, m as unknown as RpcRequest);
      else if (m?.rpc === 's' && typeof m.id === 'number') this.answer(m as unknown as RpcReply);
    });
  }

  /** Registers the handler of `method`; a second handler for one method is a bug and refused. */
  handle(method: string, handler: RpcHandler): void {
    if (this.handlers.has(method)) throw new Error(`rpc: ${method} already has a handler`);
    this.handlers.set(method, handler);
  }

  /**
   * Calls `method` on node `to` (locally when `to` is this node). Fails with `peer_unreachable`
   * after `timeoutMs`, or as soon as `signal` aborts (the caller gave up on that node; `sent`: the
   * request may have reached it).
   */
  call<T = unknown>(to: string, method: string, body: unknown, timeoutMs: number, signal?: AbortSignal): Promise<T> {
    if (to === this.wire.selfId) {
      const h = this.handlers.get(method);
      if (!h) return Promise.reject(new GandalfError('internal', `no handler for ${method}`));
      return Promise.resolve().then(() => h(to, body)) as Promise<T>;
    }
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        this.waiting.delete(id);
        reject(new RpcUnreachableError(`node ${to} did not answer ${method} within ${timeoutMs} ms`, true));
      }, timeoutMs);
      timer.unref?.();
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject, timer, to });
      const request: RpcRequest = { rpc: 'q', id, m: method, b: body };
      if (!this.wire.send(to, request)) {
        this.clock.clearTimeout(timer);
        this.waiting.delete(id);
        reject(new RpcUnreachableError(`node ${to} is not connected`, false));
        return;
      }
      signal?.addEventListener(
        'abort',
        () => {
          if (!this.waiting.delete(id)) return;
          this.clock.clearTimeout(timer);
          reject(new RpcUnreachableError(`gave up waiting for node ${to} to answer ${method}: ${String(signal.reason ?? 'aborted')}`, true));
        },
        { once: true },
      );
    });
  }

  /** Fails every call waiting on `peer` (its link went down). */
  peerDown(peer: string): void {
    for (const [id, w] of this.waiting) {
      if (w.to !== peer) continue;
      this.clock.clearTimeout(w.timer);
      this.waiting.delete(id);
      w.reject(new RpcUnreachableError(`lost the link to node ${peer}`, true));
    }
  }

  private async serve(from: string, request: RpcRequest): Promise<void> {
    let reply: RpcReply;
    const h = this.handlers.get(request.m);
    try {
      if (!h) throw new GandalfError('invalid_request', `unknown method ${request.m}`);
      reply = { rpc: 's', id: request.id, ok: true, b: await h(from, request.b) };
    } catch (err) {
      const code = err instanceof GandalfError ? err.code : 'internal';
      if (code === 'internal') this.logger.error('rpc handler failed', { method: request.m, err: err as Error });
      reply = { rpc: 's', id: request.id, ok: false, code, msg: (err as Error).message };
    }
    this.wire.send(from, reply);
  }

  private answer(reply: RpcReply): void {
    const w = this.waiting.get(reply.id);
    if (!w) return;
    this.waiting.delete(reply.id);
    this.clock.clearTimeout(w.timer);
    if (reply.ok) w.resolve(reply.b);
    else w.reject(new GandalfError((reply.code ?? 'internal') as ErrorCode, reply.msg ?? 'remote error'));
  }
}

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
 */
import { createHash, type Hash } from 'node:crypto';
import { Encoder } from 'cbor-x';
import type { Clock, TimerHandle } from '../core/clock';
import { checkCbor } from '../core/cbor-guard';
import { GandalfError, type ErrorCode } from '../core/errors';
import { crc32c } from '../core/crc32c';
import type { Logger } from '../core/logger';

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
/**
 * `done`: told once whether the last chunk reached the link (true) or the message was dropped (false).
 * `hash` covers the first `hashed` bytes (chunks skipped on a resume are hashed before the last chunk leaves).
 */
type Outgoing = { id: number; bytes: Uint8Array; seq: number; count: number; done: ((sent: boolean) => void) | undefined; hash: Hash; hashed: number };
type Partial_ = { id: number; key: string | undefined; parts: Uint8Array[]; bytes: number; hash: Hash; count: number; skipBelow: number };
export type SendDone = (sent: boolean) => void;
/** Bytes of skipped chunks a sender hashes per turn of the event loop. */
const HASH_SLICE = 1024 * 1024;

function resumeKey(bytes: Uint8Array): string {
  const last = Math.floor((bytes.length - 1) / CHUNK_BYTES) * CHUNK_BYTES;
  return `${bytes.length}:${crc32c(bytes.subarray(0, CHUNK_BYTES))}:${crc32c(bytes.subarray(last))}`;
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

  /** `clock`: for pacing (with `mesh.backlog`). */
  constructor(
    private readonly mesh: MeshPort,
    private readonly logger: Logger,
    private readonly clock?: Clock,
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
    const bytes = cbor.encode(message) as Uint8Array;
    if (bytes.length > MAX_MESSAGE_BYTES) throw new GandalfError('invalid_request', `message of ${bytes.length} bytes exceeds ${MAX_MESSAGE_BYTES}`);
    const settle = (sent: boolean): boolean => {
      if (done) queueMicrotask(() => done(sent));
      return sent;
    };
    if (bytes.length <= CHUNK_BYTES) return settle(this.mesh.send(to, bytes));
    const out: Outgoing = {
      id: this.nextId++,
      bytes,
      seq: 0,
      count: Math.ceil(bytes.length / CHUNK_BYTES),
      done: undefined,
      hash: createHash('sha256'),
      hashed: 0,
    };
    if (!this.mesh.backlog || !this.clock) {
      while (out.seq < out.count) if (!this.sendChunk(to, out)) return settle(false);
      return settle(true);
    }
    if (this.mesh.backlog(to) === undefined) return settle(false);
    const queue = this.outgoing.get(to) ?? [];
    const queued = queue.reduce((n, o) => n + o.bytes.length - o.seq * CHUNK_BYTES, 0);
    if (queue.length > 0 && queued + bytes.length > MAX_QUEUED_BYTES) {
      this.logger.warn('a large message was refused: too much is queued for this peer already', { to, bytes: bytes.length, queued });
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
    const b = out.bytes.subarray(out.seq * CHUNK_BYTES, (out.seq + 1) * CHUNK_BYTES);
    const chunk: Chunk = { c: [out.id, out.seq, out.count], b, k: crc32c(b) };
    if (out.seq === 0) chunk.r = resumeKey(out.bytes);
    out.hash.update(b);
    out.hashed += b.length;
    if (out.seq === out.count - 1) chunk.d = out.hash.digest();
    out.seq++;
    return this.mesh.send(to, chunk);
  }

  private hashUpTo(out: Outgoing, end: number): void {
    if (out.hashed >= end) return;
    out.hash.update(out.bytes.subarray(out.hashed, end));
    out.hashed = end;
  }

  /** The receiver holds chunks below `have` of message `id` already: go on from there. */
  private skip(from: string, [id, have]: Skip['s']): void {
    const out = this.outgoing.get(from)?.[0];
    if (!out || out.id !== id || have <= out.seq || have >= out.count) return;
    this.resumedChunks += have - out.seq;
    out.seq = have;
  }

  /** Sends chunks while the link has room; looks again shortly when it has none. A link that went away drops the queue. */
  private pump(to: string): void {
    this.pumps.delete(to);
    const queue = this.outgoing.get(to);
    while (queue && queue.length > 0) {
      const backlog = this.mesh.backlog!(to);
      if (backlog === undefined) break;
      if (backlog > PACE_BYTES) {
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
    const chunk = body as Partial<Chunk> | null;
    const c = chunk?.c;
    if (!Array.isArray(c) || c.length !== 3 || !(chunk!.b instanceof Uint8Array) || !c.every((n) => Number.isSafeInteger(n) && n >= 0)) {
      return this.dropped(from, 'not a message or chunk');
    }
    const [id, seq, count] = c as [number, number, number];
    if (count * CHUNK_BYTES > MAX_MESSAGE_BYTES + CHUNK_BYTES || seq >= count) return this.dropped(from, 'chunk out of bounds');
    if (chunk!.k !== undefined && chunk!.k !== crc32c(chunk!.b!)) {
      this.partial.delete(from);
      return this.dropped(from, 'chunk checksum mismatch');
    }
    let p = this.partial.get(from);
    if (seq === 0) {
      const key = typeof chunk!.r === 'string' ? chunk!.r : undefined;
      if (p && key !== undefined && p.key === key && p.count === count && p.parts.length > 1 && p.parts.length < count) {
        // The message cut off earlier starts again: keep what arrived, ask for the rest.
        p.id = id;
        p.skipBelow = p.parts.length;
        this.mesh.send(from, { s: [id, p.parts.length] } satisfies Skip);
        return;
      }
      p = { id, key, parts: [], bytes: 0, hash: createHash('sha256'), count, skipBelow: 0 };
      this.partial.set(from, p);
    }
    if (p && p.id === id && seq < p.skipBelow) return; // sent before the sender heard that these were kept
    if (!p || p.id !== id || p.parts.length !== seq) {
      this.partial.delete(from);
      return this.dropped(from, 'chunk out of sequence');
    }
    p.parts.push(chunk!.b!);
    p.bytes += chunk!.b!.length;
    p.hash.update(chunk!.b!);
    if (p.parts.length === count) {
      this.partial.delete(from);
      if (chunk!.d instanceof Uint8Array && !Buffer.from(chunk!.d).equals(p.hash.digest())) return this.dropped(from, 'message digest mismatch');
      this.deliver(from, Buffer.concat(p.parts, p.bytes));
    }
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

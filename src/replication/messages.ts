/**
 * Raft wire messages: a tagged union of plain data (JSON-safe apart from the
 * opaque entry and snapshot `data`), and `parseRaftMessage`, which checks the
 * shape and bounds of anything received and never throws.
 */

export type NodeId = string;

/**
 * A log entry. `kind` is absent for client commands; `noop` is the entry a new
 * leader appends; `conf` carries a membership change (data: ConfEntryData).
 * The driver must persist `kind` with the entry.
 */
export interface Entry {
  index: number;
  term: number;
  data: unknown;
  kind?: 'noop' | 'conf';
}

export interface ConfChange {
  type: 'add-learner' | 'promote' | 'remove';
  node: NodeId;
}

/**
 * What a conf entry records: a proposed change, or an operator's forced
 * configuration (`force`: a replica re-formed the group from the survivors
 * after its quorum was lost for good; `node` is that replica).
 */
export type ConfEntryChange = ConfChange | { type: 'force'; node: NodeId };

/** Data of a `conf` entry: the change and the whole configuration it results in. */
export interface ConfEntryData {
  change: ConfEntryChange;
  voters: NodeId[];
  learners: NodeId[];
}

export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
}

/** State machine image at `index` (term of that entry) with the configuration in force there. */
export interface Snapshot {
  index: number;
  term: number;
  data: unknown;
  voters: NodeId[];
  learners: NodeId[];
}

interface Envelope {
  term: number;
  from: NodeId;
  to: NodeId;
}

/** RequestVote. `pre`: a pre-vote (term is the candidate's term + 1, nobody changes term). `transfer`: leadership transfer, ignores leases. */
export interface VoteRequest extends Envelope {
  type: 'vote';
  pre: boolean;
  lastIndex: number;
  lastTerm: number;
  transfer: boolean;
}

/**
 * `removed`: the answering member can prove the candidate is no longer in the group (see
 * `RaftNode`: its committed configuration excludes the candidate, which asks with a log no longer
 * than the answerer's committed prefix). The candidate then never campaigns in this group again.
 */
export interface VoteResponse extends Envelope {
  type: 'vote-resp';
  pre: boolean;
  granted: boolean;
  removed?: true;
}

export interface AppendRequest extends Envelope {
  type: 'append';
  prevIndex: number;
  prevTerm: number;
  entries: Entry[];
  commit: number;
}

/**
 * Success: `index` is the follower's match index. Reject: `index` is the rejected prevIndex and
 * (hintIndex, hintTerm) the follower's last entry at or below it whose term is at most prevTerm.
 */
export interface AppendResponse extends Envelope {
  type: 'append-resp';
  success: boolean;
  index: number;
  hintIndex: number;
  hintTerm: number;
}

/** `commit` is min(leader commit, follower match); `ctx` is the leader's ReadIndex round. */
export interface Heartbeat extends Envelope {
  type: 'heartbeat';
  commit: number;
  ctx: number;
}

export interface HeartbeatResponse extends Envelope {
  type: 'heartbeat-resp';
  ctx: number;
}

export interface InstallSnapshot extends Envelope {
  type: 'snapshot';
  snapshot: Snapshot;
}

export interface TimeoutNow extends Envelope {
  type: 'timeout-now';
}

export type RaftMessage = VoteRequest | VoteResponse | AppendRequest | AppendResponse | Heartbeat | HeartbeatResponse | InstallSnapshot | TimeoutNow;

/** Longest node id accepted. */
export const MAX_NODE_ID_LENGTH = 256;
/** Most entries accepted in one AppendEntries. */
export const MAX_ENTRIES_PER_MESSAGE = 65_536;
/** Most members in a configuration. */
export const MAX_MEMBERS = 1_024;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

export function isNodeId(v: unknown): v is NodeId {
  return typeof v === 'string' && v.length > 0 && v.length <= MAX_NODE_ID_LENGTH;
}

function parseIds(v: unknown): NodeId[] | undefined {
  if (!Array.isArray(v) || v.length > MAX_MEMBERS) return undefined;
  const out: NodeId[] = [];
  for (const id of v) {
    if (!isNodeId(id) || out.includes(id)) return undefined;
    out.push(id);
  }
  return out;
}

export function parseConfChange(v: unknown): ConfChange | undefined {
  if (!isRecord(v) || !isNodeId(v.node)) return undefined;
  if (v.type !== 'add-learner' && v.type !== 'promote' && v.type !== 'remove') return undefined;
  return { type: v.type, node: v.node };
}

export function parseConfEntryData(v: unknown): ConfEntryData | undefined {
  if (!isRecord(v)) return undefined;
  const forced = isRecord(v.change) && v.change.type === 'force' && isNodeId(v.change.node);
  const change: ConfEntryChange | undefined = forced ? { type: 'force', node: (v.change as { node: NodeId }).node } : parseConfChange(v.change);
  const voters = parseIds(v.voters);
  const learners = parseIds(v.learners);
  if (!change || !voters || !learners || voters.some((id) => learners.includes(id))) return undefined;
  return { change, voters, learners };
}

function parseEntry(v: unknown, index: number): Entry | undefined {
  if (!isRecord(v) || v.index !== index || !isIndex(v.term) || v.term === 0) return undefined;
  if (v.kind === undefined) return { index, term: v.term, data: v.data };
  if (v.kind === 'noop') return { index, term: v.term, data: null, kind: 'noop' };
  if (v.kind === 'conf') {
    const data = parseConfEntryData(v.data);
    return data ? { index, term: v.term, data, kind: 'conf' } : undefined;
  }
  return undefined;
}

function parseSnapshot(v: unknown): Snapshot | undefined {
  if (!isRecord(v) || !isIndex(v.index) || !isIndex(v.term) || v.index === 0 || v.term === 0) return undefined;
  const voters = parseIds(v.voters);
  const learners = parseIds(v.learners);
  if (!voters || !learners || voters.some((id) => learners.includes(id))) return undefined;
  return { index: v.index, term: v.term, data: v.data, voters, learners };
}

function parse(v: unknown): RaftMessage | undefined {
  if (!isRecord(v)) return undefined;
  const { term, from, to } = v;
  if (!isIndex(term) || !isNodeId(from) || !isNodeId(to) || from === to) return undefined;
  const base = { term, from, to };
  switch (v.type) {
    case 'vote':
      if (typeof v.pre !== 'boolean' || typeof v.transfer !== 'boolean') return undefined;
      if (!isIndex(v.lastIndex) || !isIndex(v.lastTerm) || v.lastTerm > term) return undefined;
      return { type: 'vote', ...base, pre: v.pre, lastIndex: v.lastIndex, lastTerm: v.lastTerm, transfer: v.transfer };
    case 'vote-resp':
      if (typeof v.pre !== 'boolean' || typeof v.granted !== 'boolean') return undefined;
      if (v.removed !== undefined && (v.removed !== true || v.granted)) return undefined;
      return { type: 'vote-resp', ...base, pre: v.pre, granted: v.granted, ...(v.removed ? { removed: true as const } : {}) };
    case 'append': {
      if (!isIndex(v.prevIndex) || !isIndex(v.prevTerm) || !isIndex(v.commit) || v.prevTerm > term) return undefined;
      if (!Array.isArray(v.entries) || v.entries.length > MAX_ENTRIES_PER_MESSAGE) return undefined;
      if (!Number.isSafeInteger(v.prevIndex + v.entries.length)) return undefined;
      const entries: Entry[] = [];
      let lastTerm = v.prevTerm;
      for (let i = 0; i < v.entries.length; i++) {
        const e = parseEntry(v.entries[i], v.prevIndex + 1 + i);
        if (!e || e.term < lastTerm || e.term > term) return undefined;
        lastTerm = e.term;
        entries.push(e);
      }
      return { type: 'append', ...base, prevIndex: v.prevIndex, prevTerm: v.prevTerm, entries, commit: v.commit };
    }
    case 'append-resp':
      if (typeof v.success !== 'boolean' || !isIndex(v.index) || !isIndex(v.hintIndex) || !isIndex(v.hintTerm)) return undefined;
      return { type: 'append-resp', ...base, success: v.success, index: v.index, hintIndex: v.hintIndex, hintTerm: v.hintTerm };
    case 'heartbeat':
      if (!isIndex(v.commit) || !isIndex(v.ctx)) return undefined;
      return { type: 'heartbeat', ...base, commit: v.commit, ctx: v.ctx };
    case 'heartbeat-resp':
      if (!isIndex(v.ctx)) return undefined;
      return { type: 'heartbeat-resp', ...base, ctx: v.ctx };
    case 'snapshot': {
      const snapshot = parseSnapshot(v.snapshot);
      if (!snapshot || snapshot.term > term) return undefined;
      return { type: 'snapshot', ...base, snapshot };
    }
    case 'timeout-now':
      return { type: 'timeout-now', ...base };
    default:
      return undefined;
  }
}

/**
 * Checks that `v` is a well-formed RaftMessage and returns a fresh copy holding only the known
 * fields (entry and snapshot `data` are opaque and kept as they are). Never throws: anything
 * else, including objects whose getters throw, gives undefined.
 */
export function parseRaftMessage(v: unknown): RaftMessage | undefined {
  try {
    return parse(v);
  } catch {
    return undefined;
  }
}

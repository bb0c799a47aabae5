/**
 * SWIM membership with Lifeguard, as a deterministic state machine: every
 * input is a call (handle, join, leave, …) or a timer of the injected Clock,
 * every random choice comes from the injected `random`, every output is a
 * send on the injected SwimNetwork. Same inputs, same outputs. See DESIGN.md.
 *
 * One probe round per interval (both scaled by Lifeguard health):
 *
 *   t = 0        ping the next member of a shuffled round-robin order
 *   t = timeout  no ack yet: ping-req to k random alive helpers, which ping the
 *                target, relay its ack, or send a nack when they got none
 *   t = interval the next round starts; an unacknowledged target becomes
 *                suspect (or this node confirms an existing suspicion)
 *
 * A suspicion turns into death when its (Lifeguard) timeout expires; the
 * accused member refutes it by raising its incarnation. Every accepted change
 * is piggybacked on later messages; push-pull exchanges the whole list now and
 * then, on join, and heals partitions together with notices to the dead.
 */
import type { Clock, TimerHandle } from '../core/clock';
import { ConfigError, GandalfError, errorMessage } from '../core/errors';
import type { Logger } from '../core/logger';
import { Awareness } from './awareness';
import { BroadcastQueue } from './broadcast-queue';
import { resolveSwimConfig, type SwimConfig } from './config';
import { copyMember, sameMeta, type Member, type MemberMeta, type MemberState } from './member';
import { MemberList } from './member-list';
import { isEndpoint, isMemberId, MAX_UPDATES, parseMeta, type MemberUpdate, type SwimMessage } from './messages';
import { randomIndex, sample, shuffle } from './random';
import { Suspicion, suspicionBounds } from './suspicion';

export type { Member, MemberMeta, MemberState } from './member';
export { DEFAULT_SWIM_CONFIG, type SwimConfig } from './config';
export { parseSwimMessage, type MemberUpdate, type SwimMessage } from './messages';

/** What membership needs from the network. Implemented by the transport layer (WebRTC) and by the simulation. */
export interface SwimNetwork {
  /** Best-effort, unordered, may be lost/duplicated/reordered (probes, acks, gossip). */
  sendDatagram(to: string, message: SwimMessage): void;
  /** Reliable and ordered, may still fail if the peer is unreachable (push-pull state sync). */
  sendReliable(to: string, message: SwimMessage): void;
}

export interface SwimOptions {
  self: { id: string; endpoint: string; meta: MemberMeta };
  clock: Clock;
  /** Uniform in [0, 1). */
  random: () => number;
  network: SwimNetwork;
  logger: Logger;
  config?: Partial<SwimConfig>;
}

export type ChangeListener = (member: Member, previous: MemberState | undefined) => void;

/** Members that also get a graceful leave over the reliable channel (every member gets it as a datagram). */
const LEAVE_RELIABLE_FANOUT = 3;
/** A helper sends its nack after this fraction of the probe timeout, so it reaches the requester within the round. */
const NACK_AFTER_TIMEOUT_FRACTION = 0.8;
/** Most pings relayed for ping-req requesters at once (bounds memory if a peer floods ping-reqs). */
const MAX_RELAYS = 64;
/** Join peers remembered for retrying while alone (discovery may call join() once per board it finds). */
const MAX_SEEDS = 16;

/** The one probe this node has in flight. */
interface Probe {
  seq: number;
  target: string;
  startedAt: number;
  acked: boolean;
  /** Helpers asked by ping-req (empty until the probe timeout). */
  helpers: string[];
  nacks: Set<string>;
  indirectTimer: TimerHandle | undefined;
}

/** A ping this node sent on behalf of a ping-req. */
interface Relay {
  requester: string;
  requesterSeq: number;
  target: string;
  nackTimer: TimerHandle;
}

interface SuspicionTimer {
  suspicion: Suspicion;
  timer: TimerHandle;
}

export class Swim {
  private readonly config: SwimConfig;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly network: SwimNetwork;
  private readonly logger: Logger;
  private readonly selfId: string;
  private readonly list = new MemberList();
  /** Members removed from the cluster: never taken back. */
  private readonly banned = new Set<string>();
  private readonly queue = new BroadcastQueue();
  private readonly awareness: Awareness;
  private readonly listeners = new Set<ChangeListener>();
  private readonly suspicions = new Map<string, SuspicionTimer>();
  private readonly relays = new Map<number, Relay>();
  private readonly rtts = new Map<string, number>();
  /** Unknown senders this node push-pulled with, and when (monotonic): at most once per pushPullIntervalMs each. */
  private readonly introductions = new Map<string, number>();
  /** Peers of recent join() calls (the latest MAX_SEEDS), tried again at each push-pull tick while no other member is alive. */
  private readonly seeds = new Set<string>();
  private lifecycle: 'new' | 'running' | 'stopped' = 'new';
  private probe: Probe | undefined;
  /** Round-robin probe order (shuffled per pass) and the position in it. */
  private probeOrder: string[] = [];
  private probeIndex = 0;
  private probeTimer: TimerHandle | undefined;
  private pushPullTimer: TimerHandle | undefined;
  private seq = 0;

  /** Throws ConfigError for an invalid config or self (id 1..128 characters, endpoint 1..512, meta as in messages.ts). */
  constructor(options: SwimOptions) {
    this.config = resolveSwimConfig(options.config);
    this.clock = options.clock;
    this.random = options.random;
    this.network = options.network;
    this.logger = options.logger;
    this.awareness = new Awareness(this.config.awarenessMaxMultiplier);
    const { id, endpoint } = options.self;
    const meta = parseMeta(options.self.meta);
    if (!isMemberId(id)) throw new ConfigError(`membership: node id must be a string of 1 to 128 characters, got ${JSON.stringify(id)}`);
    if (!isEndpoint(endpoint)) throw new ConfigError(`membership: endpoint must be a string of 1 to 512 characters, got ${JSON.stringify(endpoint)}`);
    if (!meta) throw new ConfigError('membership: meta must be at most 32 string entries (keys [A-Za-z0-9._-], values up to 256 characters)');
    this.selfId = id;
    this.accept({ id, endpoint, meta, state: 'alive', incarnation: 0, by: id });
  }

  /** Begins the probe loop and the push-pull timer (each first fires at a random point of its interval). */
  start(): void {
    if (this.lifecycle === 'stopped') throw new GandalfError('stopping', 'membership: a stopped instance cannot start again');
    if (this.lifecycle === 'running') return;
    this.lifecycle = 'running';
    if (this.self().state === 'left') return;
    this.probeTimer = this.clock.setTimeout(() => this.probeTick(), this.random() * this.config.probeIntervalMs);
    this.pushPullTimer = this.clock.setTimeout(() => this.pushPullTick(), this.random() * this.config.pushPullIntervalMs);
  }

  /** Stops every timer; nothing is sent and nothing handled after this. */
  stop(): void {
    this.lifecycle = 'stopped';
    this.stopProbing();
    for (const { timer } of this.suspicions.values()) this.clock.clearTimeout(timer);
    this.suspicions.clear();
    for (const relay of this.relays.values()) this.clock.clearTimeout(relay.nackTimer);
    this.relays.clear();
  }

  /**
   * Joins through known peers (from discovery or --join): sends each a push-pull; their answers bring the
   * whole cluster. Safe to call repeatedly. The peers are remembered (the latest MAX_SEEDS) and tried again
   * while this node knows no other alive member. Peers are addressed by id; the transport maps ids to endpoints.
   */
  join(peers: { id: string; endpoint: string }[]): void {
    for (const { id } of peers) {
      if (!isMemberId(id) || id === this.selfId) continue;
      this.seeds.delete(id);
      this.seeds.add(id);
      if (this.seeds.size > MAX_SEEDS) this.seeds.delete(this.seeds.values().next().value!);
      this.sendReliable(id, this.pushPull(false));
    }
  }

  /**
   * Forgets a member for good (it was removed from the cluster): it leaves the
   * list now, and neither its messages nor news about it are taken again.
   */
  ban(id: string): void {
    if (id === this.selfId || this.banned.has(id)) return;
    this.banned.add(id);
    const member = this.list.get(id);
    if (member) {
      this.list.remove(id);
      this.rtts.delete(id);
      this.logger.info('membership: member removed from the cluster', { member: id });
      this.emit({ ...member, state: 'left' }, member.state);
    }
  }

  /** Feeds a received message (from = sender id as authenticated by the transport). Never throws. */
  handle(from: string, message: SwimMessage): void {
    if (this.lifecycle === 'stopped' || from === this.selfId || this.banned.has(from)) return;
    try {
      if (message.type !== 'push-pull' && !this.list.get(from)) this.introduce(from);
      this.dispatch(from, message);
    } catch (err) {
      this.logger.error('membership: failed to handle a message', { from, type: message?.type, err });
    }
  }

  /**
   * Graceful leave: marks this node left with a raised incarnation, sends that as a datagram to every
   * alive or suspect member and reliably to a few of them, and stops probing. Until stop() it still
   * answers pings (whose acks carry the news). Calling it again does nothing.
   */
  leave(): void {
    const self = this.self();
    if (self.state === 'left' || this.lifecycle === 'stopped') return;
    this.stopProbing();
    const update = this.claim(self, 'left', self.incarnation + 1);
    this.accept(update);
    const others = this.list.ids('alive', 'suspect').filter((id) => id !== this.selfId);
    const message: SwimMessage = { type: 'gossip', updates: [update] };
    for (const id of others) this.sendDatagram(id, message);
    for (const id of sample(others, LEAVE_RELIABLE_FANOUT, this.random)) this.sendReliable(id, message);
    this.logger.info('membership: left the cluster', { incarnation: update.incarnation, told: others.length });
  }

  /** All known members including self, sorted by id (copies). */
  members(): Member[] {
    return this.list.snapshot();
  }

  member(id: string): Member | undefined {
    const member = this.list.get(id);
    return member && copyMember(member);
  }

  /** Lifeguard local health score (0 = healthy, at most awarenessMaxMultiplier - 1). */
  health(): number {
    return this.awareness.value;
  }

  /**
   * Calls `listener` when a member is first seen, changes state, or changes endpoint or meta (with the
   * previous state, undefined for a new member). Forgetting a dead or left member is not a change.
   * A throwing listener is logged and otherwise ignored. Returns the unsubscribe function.
   */
  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Round-trip time (ms) of the last successful direct probe of `id`. */
  rttMs(id: string): number | undefined {
    return this.rtts.get(id);
  }

  /** Replaces this node's meta and disseminates it with a raised incarnation. Throws after leave() or stop(). */
  setMeta(meta: MemberMeta): void {
    const self = this.self();
    if (self.state === 'left' || this.lifecycle === 'stopped') throw new GandalfError('stopping', 'membership: meta cannot change after leave or stop');
    const parsed = parseMeta(meta);
    if (!parsed) throw new ConfigError('membership: meta must be at most 32 string entries (keys [A-Za-z0-9._-], values up to 256 characters)');
    this.accept({ ...this.claim(self, 'alive', self.incarnation + 1), meta: parsed });
  }

  // --- messages -------------------------------------------------------------

  private dispatch(from: string, message: SwimMessage): void {
    switch (message.type) {
      case 'ping':
        this.receiveUpdates(from, message.updates);
        if (message.target === this.selfId) this.sendDatagram(from, { type: 'ack', seq: message.seq, updates: this.piggyback(from) });
        return;
      case 'ping-req':
        this.receiveUpdates(from, message.updates);
        this.relayPing(from, message.seq, message.target);
        return;
      case 'ack':
        this.receiveUpdates(from, message.updates);
        this.receiveAck(from, message.seq);
        return;
      case 'nack':
        this.receiveUpdates(from, message.updates);
        if (this.probe?.seq === message.seq && this.probe.helpers.includes(from)) this.probe.nacks.add(from);
        return;
      case 'gossip':
        this.receiveUpdates(from, message.updates);
        return;
      case 'push-pull':
        this.mergeState(from, message.members);
        if (!message.reply) this.sendReliable(from, this.pushPull(true));
        return;
    }
  }

  /**
   * A message from a member this node does not know (its alive news missed us, or we forgot it while it was
   * cut off): exchange state with it, so each side learns the other and what the other knows.
   */
  private introduce(from: string): void {
    const now = this.clock.monotonic();
    const last = this.introductions.get(from);
    if (last !== undefined && now - last < this.config.pushPullIntervalMs) return;
    this.introductions.set(from, now);
    this.sendReliable(from, this.pushPull(false));
  }

  private receiveUpdates(from: string, updates: MemberUpdate[]): void {
    for (const update of updates) {
      if (update.id === this.selfId) this.rumorAboutSelf(from, update);
      else this.accept(update);
    }
  }

  /**
   * A push-pull state is a snapshot that may be old: a member it calls dead is only suspected here (by the
   * sender), so this node's own suspicion timeout decides, and the member gets its chance to refute. The
   * sender may only be repeating someone else's suspicion, so it never counts as a confirmation.
   */
  private mergeState(from: string, members: MemberUpdate[]): void {
    for (const update of members) {
      if (update.id === this.selfId) this.rumorAboutSelf(from, update);
      else if (update.state === 'dead' || update.state === 'suspect') this.accept({ ...update, state: 'suspect', by: from }, false);
      else this.accept(update);
    }
  }

  /**
   * Claims about this node. Suspicion, death or a leave it did not make (at or above its incarnation) are
   * refuted with a higher incarnation, which costs health (Lifeguard: being suspected hints at our own
   * slowness). An alive claim newer than ours, or differing at ours, comes from an earlier life of this id
   * and is outdone the same way. Whoever told us a suspicion or death, however old, is answered with our
   * current alive state directly, and so is its accuser, so views that missed a refutation catch up (and
   * partitions heal).
   */
  private rumorAboutSelf(from: string, update: MemberUpdate): void {
    const self = this.self();
    if (self.state === 'left') return;
    if (update.state === 'alive') {
      const conflicting = update.incarnation === self.incarnation && (update.endpoint !== self.endpoint || !sameMeta(update.meta, self.meta));
      if (update.incarnation > self.incarnation || conflicting) this.refute(update.incarnation, false);
      return;
    }
    if (update.incarnation >= self.incarnation) this.refute(update.incarnation, true);
    const answer: SwimMessage = { type: 'gossip', updates: [this.claim(this.self(), 'alive')] };
    this.sendDatagram(from, answer);
    if (update.by !== from && update.by !== this.selfId) this.sendDatagram(update.by, answer);
  }

  private refute(heard: number, accused: boolean): void {
    const self = this.self();
    const incarnation = Math.max(heard, self.incarnation) + 1;
    this.logger.debug('membership: refuting', { incarnation });
    if (accused) this.awareness.applyDelta(1);
    this.accept(this.claim(self, 'alive', incarnation));
  }

  // --- state changes ----------------------------------------------------------

  /**
   * Applies a claim under the precedence rules, with every side effect: dissemination, suspicion timers,
   * probe order, events. A suspicion at the member's current incarnation by an accuser not heard before
   * confirms the existing one, unless not `independent` (a push-pull repeats views, not probes).
   */
  private accept(update: MemberUpdate, independent = true): void {
    if (this.banned.has(update.id)) return;
    const result = this.list.apply(update, this.clock.now(), this.clock.monotonic());
    if (result.kind === 'ignored') return;
    if (result.kind === 'confirmation') {
      if (independent) this.confirmSuspicion(update);
      return;
    }
    this.queue.enqueue(update);
    const member = this.list.get(update.id)!;
    this.syncSuspicion(member, update.by);
    if (member.state === 'alive' && result.previous !== 'alive' && result.previous !== 'suspect') this.addToProbeOrder(member.id);
    if (result.stateChanged) {
      this.logger.info('membership: member state changed', {
        member: member.id,
        state: member.state,
        previous: result.previous,
        incarnation: member.incarnation,
        by: update.by,
      });
    }
    if (result.stateChanged || result.infoChanged) this.emit(member, result.previous);
  }

  /** Starts, restarts (new incarnation) or cancels the suspicion timer to match the member's state. */
  private syncSuspicion(member: Readonly<Member>, accuser: string): void {
    const current = this.suspicions.get(member.id);
    if (current && member.state === 'suspect' && current.suspicion.incarnation === member.incarnation) return;
    if (current) {
      this.clock.clearTimeout(current.timer);
      this.suspicions.delete(member.id);
    }
    if (member.state !== 'suspect') return;
    const bounds = suspicionBounds(this.config, this.list.ids('alive', 'suspect').length);
    const suspicion = new Suspicion(member.incarnation, this.clock.monotonic(), bounds, accuser);
    this.suspicions.set(member.id, { suspicion, timer: this.suspicionTimer(member.id, suspicion) });
  }

  /** Counts an independent confirmation, shortens the timeout, and passes the confirmation on. */
  private confirmSuspicion(update: MemberUpdate): void {
    const entry = this.suspicions.get(update.id);
    if (!entry || !entry.suspicion.confirm(update.by)) return;
    this.clock.clearTimeout(entry.timer);
    entry.timer = this.suspicionTimer(update.id, entry.suspicion);
    this.queue.enqueue(update);
  }

  private suspicionTimer(id: string, suspicion: Suspicion): TimerHandle {
    const delay = Math.max(0, suspicion.deadline() - this.clock.monotonic());
    return this.clock.setTimeout(() => this.suspicionExpired(id, suspicion), delay);
  }

  private suspicionExpired(id: string, suspicion: Suspicion): void {
    if (this.suspicions.get(id)?.suspicion !== suspicion) return;
    this.suspicions.delete(id);
    const member = this.list.get(id);
    if (member?.state !== 'suspect' || member.incarnation !== suspicion.incarnation) return;
    this.accept(this.claim(member, 'dead'));
  }

  private emit(member: Readonly<Member>, previous: MemberState | undefined): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(copyMember(member), previous);
      } catch (err) {
        this.logger.warn('membership: change listener failed', { member: member.id, err: errorMessage(err) });
      }
    }
  }

  // --- probing ----------------------------------------------------------------

  private probeTick(): void {
    this.probeTimer = undefined;
    this.finishProbe();
    this.forgetDeparted();
    this.noticeTheDead();
    this.startProbe();
    this.probeTimer = this.clock.setTimeout(() => this.probeTick(), this.awareness.scale(this.config.probeIntervalMs));
  }

  private startProbe(): void {
    const target = this.nextProbeTarget();
    if (target === undefined) return;
    const probe: Probe = { seq: ++this.seq, target, startedAt: this.clock.monotonic(), acked: false, helpers: [], nacks: new Set(), indirectTimer: undefined };
    this.probe = probe;
    this.sendDatagram(target, { type: 'ping', seq: probe.seq, target, updates: this.piggyback(target) });
    probe.indirectTimer = this.clock.setTimeout(() => this.probeIndirectly(probe), this.awareness.scale(this.config.probeTimeoutMs));
  }

  private probeIndirectly(probe: Probe): void {
    probe.indirectTimer = undefined;
    if (this.probe !== probe || probe.acked) return;
    const candidates = this.list.ids('alive').filter((id) => id !== this.selfId && id !== probe.target);
    probe.helpers = sample(candidates, this.config.indirectChecks, this.random);
    for (const helper of probe.helpers) {
      this.sendDatagram(helper, { type: 'ping-req', seq: probe.seq, target: probe.target, updates: this.piggyback(helper) });
    }
  }

  private receiveAck(from: string, seq: number): void {
    const relay = this.relays.get(seq);
    if (relay) {
      if (from !== relay.target) return;
      this.clock.clearTimeout(relay.nackTimer);
      this.relays.delete(seq);
      this.sendDatagram(relay.requester, { type: 'ack', seq: relay.requesterSeq, updates: this.piggyback(relay.requester) });
      return;
    }
    const probe = this.probe;
    if (!probe || probe.seq !== seq || probe.acked || (from !== probe.target && !probe.helpers.includes(from))) return;
    probe.acked = true;
    if (from === probe.target) this.rtts.set(from, this.clock.monotonic() - probe.startedAt);
    this.awareness.applyDelta(-1);
  }

  /**
   * Ends the probe of the round that just closed. Unacknowledged: the target is accused, and health
   * worsens by the nacks that did not come (helpers that answered saw the target down too, so the fault
   * is not ours) or by one if no helper could be asked.
   */
  private finishProbe(): void {
    const probe = this.probe;
    if (!probe) return;
    this.probe = undefined;
    if (probe.indirectTimer) this.clock.clearTimeout(probe.indirectTimer);
    if (probe.acked) return;
    this.awareness.applyDelta(probe.helpers.length > 0 ? probe.helpers.length - probe.nacks.size : 1);
    const target = this.list.get(probe.target);
    if (target?.state === 'alive' || target?.state === 'suspect') {
      this.logger.debug('membership: probe failed', { member: target.id, helpers: probe.helpers.length, nacks: probe.nacks.size });
      this.accept(this.claim(target, 'suspect'));
    }
  }

  /** Pings `target` for a ping-req requester; relays its ack, or sends a nack if none comes in time. */
  private relayPing(requester: string, requesterSeq: number, target: string): void {
    if (target === this.selfId) {
      this.sendDatagram(requester, { type: 'ack', seq: requesterSeq, updates: this.piggyback(requester) });
      return;
    }
    if (this.relays.size >= MAX_RELAYS) {
      this.logger.debug('membership: too many relayed pings, dropping a ping-req', { from: requester });
      return;
    }
    const seq = ++this.seq;
    const nackTimer = this.clock.setTimeout(() => {
      this.relays.delete(seq);
      this.sendDatagram(requester, { type: 'nack', seq: requesterSeq, updates: this.piggyback(requester) });
    }, this.config.probeTimeoutMs * NACK_AFTER_TIMEOUT_FRACTION);
    this.relays.set(seq, { requester, requesterSeq, target, nackTimer });
    this.sendDatagram(target, { type: 'ping', seq, target, updates: this.piggyback(target) });
  }

  /** The next member in round-robin order: alive or suspect, each probed once per pass, order reshuffled per pass. */
  private nextProbeTarget(): string | undefined {
    for (;;) {
      if (this.probeIndex >= this.probeOrder.length) {
        this.probeOrder = shuffle(this.probeable(), this.random);
        this.probeIndex = 0;
        if (this.probeOrder.length === 0) return undefined;
      }
      const id = this.probeOrder[this.probeIndex++]!;
      const state = this.list.get(id)?.state;
      if (state === 'alive' || state === 'suspect') return id;
    }
  }

  /** A member that (again) needs probing joins the current pass at a random place still ahead. */
  private addToProbeOrder(id: string): void {
    if (id === this.selfId || this.probeOrder.indexOf(id, this.probeIndex) !== -1) return;
    const at = this.probeIndex + randomIndex(this.probeOrder.length - this.probeIndex + 1, this.random);
    this.probeOrder.splice(at, 0, id);
  }

  private probeable(): string[] {
    return this.list.ids('alive', 'suspect').filter((id) => id !== this.selfId);
  }

  private stopProbing(): void {
    if (this.probeTimer) this.clock.clearTimeout(this.probeTimer);
    if (this.pushPullTimer) this.clock.clearTimeout(this.pushPullTimer);
    if (this.probe?.indirectTimer) this.clock.clearTimeout(this.probe.indirectTimer);
    this.probeTimer = undefined;
    this.pushPullTimer = undefined;
    this.probe = undefined;
  }

  // --- the dead ---------------------------------------------------------------

  /** Dead and left members are forgotten gossipToTheDeadMs after they became so; old introductions too. */
  private forgetDeparted(): void {
    const now = this.clock.monotonic();
    for (const [id, at] of this.introductions) if (now - at >= this.config.pushPullIntervalMs) this.introductions.delete(id);
    for (const id of this.list.ids('dead', 'left')) {
      if (id !== this.selfId && now - this.list.changedAt(id)! >= this.config.gossipToTheDeadMs) {
        this.list.remove(id);
        this.rtts.delete(id);
        this.logger.debug('membership: forgot member', { member: id });
      }
    }
  }

  /**
   * Tells one random dead member that it is considered dead. A member that is in fact alive (a false
   * positive, or the far side of a healed partition) refutes and answers with its alive state.
   */
  private noticeTheDead(): void {
    const dead = this.list.ids('dead');
    if (dead.length === 0) return;
    const member = this.list.get(dead[randomIndex(dead.length, this.random)]!)!;
    this.sendDatagram(member.id, { type: 'gossip', updates: [this.claim(member, 'dead')] });
  }

  // --- dissemination and push-pull ------------------------------------------

  /**
   * Updates to piggyback on one message to `to`. A message to a member this node suspects also carries that
   * suspicion (not counted as a retransmission), so the member can refute at once: Lifeguard's "buddy
   * system", here for every message, not only probes.
   */
  private piggyback(to: string): MemberUpdate[] {
    const live = this.list.ids('alive', 'suspect').length;
    const limit = this.config.retransmitMult * Math.ceil(Math.log10(live + 1));
    const recipient = this.list.get(to);
    if (recipient?.state !== 'suspect') return this.queue.take(this.config.maxPiggyback, limit);
    return [this.claim(recipient, 'suspect'), ...this.queue.take(this.config.maxPiggyback - 1, limit)];
  }

  private pushPullTick(): void {
    this.pushPullTimer = this.clock.setTimeout(() => this.pushPullTick(), this.config.pushPullIntervalMs);
    const peers = this.list.ids('alive').filter((id) => id !== this.selfId);
    if (peers.length > 0) this.sendReliable(peers[randomIndex(peers.length, this.random)]!, this.pushPull(false));
    else for (const id of this.seeds) this.sendReliable(id, this.pushPull(false));
  }

  /** This node's whole list (at most MAX_UPDATES members), each member as claimed by this node. */
  private pushPull(reply: boolean): SwimMessage {
    const members = this.list.snapshot().slice(0, MAX_UPDATES);
    return { type: 'push-pull', reply, members: members.map((m) => this.claim(m, m.state)) };
  }

  /** A claim about `member` in `state`, made by this node (alive and left claims about self are the member's own). */
  private claim(member: Readonly<Member>, state: MemberState, incarnation = member.incarnation): MemberUpdate {
    return { id: member.id, endpoint: member.endpoint, meta: { ...member.meta }, state, incarnation, by: this.selfId };
  }

  private self(): Readonly<Member> {
    return this.list.get(this.selfId)!;
  }

  private sendDatagram(to: string, message: SwimMessage): void {
    if (this.lifecycle === 'stopped') return;
    try {
      this.network.sendDatagram(to, message);
    } catch (err) {
      this.logger.warn('membership: datagram send failed', { to, type: message.type, err: errorMessage(err) });
    }
  }

  private sendReliable(to: string, message: SwimMessage): void {
    if (this.lifecycle === 'stopped') return;
    try {
      this.network.sendReliable(to, message);
    } catch (err) {
      this.logger.warn('membership: reliable send failed', { to, type: message.type, err: errorMessage(err) });
    }
  }
}

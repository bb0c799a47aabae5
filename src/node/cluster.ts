/**
 * Ties discovery, the mesh and membership together:
 *   - discovery (--join, mDNS) and gossip name candidate peers; the mesh dials them;
 *   - a new link triggers a SWIM push-pull, so the joiner learns the cluster;
 *   - SWIM probes and gossip ride the mesh: probes as datagrams, state sync reliable;
 *   - a member SWIM sees alive or suspect is kept connected (reconnect with
 *     backoff); one declared dead or left is disconnected.
 * Who dials: the lower node id dials at once; the higher one waits
 * DIAL_GRACE_MS first, so two nodes rarely dial each other (glare is still
 * resolved by the mesh).
 */
import type { NodeView } from '../api/cluster-routes';
import type { Clock, TimerHandle } from '../core/clock';
import type { Logger } from '../core/logger';
import type { JoinLoop } from '../discovery/join-loop';
import type { MdnsDiscovery } from '../discovery/mdns';
import { Swim, parseSwimMessage, type Member, type SwimMessage, type SwimNetwork } from '../membership/swim';
import type { Mesh } from '../transport/mesh';

export const SWIM_TOPIC = 'swim';
export const DIAL_GRACE_MS = 2000;
export const RECONNECT_MIN_MS = 500;
export const RECONNECT_MAX_MS = 30_000;
/** Time given to the leave broadcast to go out before links close. */
export const LEAVE_FLUSH_MS = 300;

export interface ClusterOptions {
  /** `meta`: what the node publishes besides its arch and transport (its routing identity). */
  self: { id: string; endpoint: string; arch: string; meta?: Record<string, string> };
  mesh: Mesh;
  clock: Clock;
  random: () => number;
  logger: Logger;
  joinLoop?: JoinLoop;
  mdns?: MdnsDiscovery;
  swimConfig?: ConstructorParameters<typeof Swim>[0]['config'];
}

/** SWIM's network, carried by the mesh. */
export function meshNetwork(mesh: Mesh): SwimNetwork {
  return {
    sendDatagram: (to: string, message: SwimMessage) => void mesh.send('datagram', to, SWIM_TOPIC, message),
    sendReliable: (to: string, message: SwimMessage) => void mesh.send('reliable', to, SWIM_TOPIC, message),
  };
}

export class Cluster {
  readonly swim: Swim;
  private readonly dialTimers = new Map<string, TimerHandle>();
  private readonly failures = new Map<string, number>();
  private badMessages = 0;
  private stopped = false;

  constructor(private readonly options: ClusterOptions) {
    const { self, mesh, clock, random, logger } = options;
    this.swim = new Swim({
      self: { id: self.id, endpoint: self.endpoint, meta: { ...self.meta, arch: self.arch, transport: mesh.implementation } },
      clock,
      random,
      network: meshNetwork(mesh),
      logger: logger.child({ part: 'swim' }),
      ...(options.swimConfig ? { config: options.swimConfig } : {}),
    });
  }

  start(): void {
    const { mesh, logger } = this.options;
    mesh.subscribe(SWIM_TOPIC, (from, body) => {
      const message = parseSwimMessage(body);
      if (!message) {
        if (this.badMessages++ % 100 === 0) logger.warn('dropped a malformed membership message', { from, total: this.badMessages });
        return;
      }
      this.swim.handle(from, message);
    });
    mesh.onPeerUp((peer) => {
      this.failures.delete(peer.id);
      this.swim.join([{ id: peer.id, endpoint: peer.endpoint }]);
    });
    mesh.onPeerDown((id) => {
      const member = this.swim.member(id);
      if (member && (member.state === 'alive' || member.state === 'suspect')) this.scheduleDial(member, true);
    });
    this.swim.onChange((member) => this.onMemberChange(member));
    this.swim.start();
    this.options.joinLoop?.start();
    this.options.mdns?.start();
  }

  /** Boards removed from the cluster for good: forgotten by membership, refused by the mesh, never dialled. */
  ban(ids: string[]): void {
    for (const id of ids) {
      this.options.mesh.ban(id);
      this.swim.ban(id);
      this.cancelDial(id);
    }
  }

  /** A candidate from discovery: dial it unless already linked. */
  discovered(peer: { id: string; endpoint: string }): void {
    if (this.stopped || peer.id === this.options.self.id || this.options.mesh.isConnected(peer.id) || this.options.mesh.isBanned(peer.id)) return;
    this.scheduleDial(peer, false);
  }

  private onMemberChange(member: Member): void {
    if (member.id === this.options.self.id || this.stopped) return;
    if (member.state === 'alive' || member.state === 'suspect') {
      if (!this.options.mesh.isConnected(member.id)) this.scheduleDial(member, false);
    } else {
      this.cancelDial(member.id);
      this.options.mesh.disconnect(member.id, `membership says ${member.state}`);
    }
  }

  private scheduleDial(peer: { id: string; endpoint: string }, afterFailure: boolean): void {
    if (this.stopped || this.dialTimers.has(peer.id)) return;
    const failures = this.failures.get(peer.id) ?? 0;
    const grace = peer.id < this.options.self.id ? DIAL_GRACE_MS : 0;
    const backoff = afterFailure || failures > 0 ? Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** Math.min(failures, 10)) : 0;
    const delay = Math.round((grace + backoff) * (0.75 + this.options.random() / 2));
    const timer = this.options.clock.setTimeout(() => {
      this.dialTimers.delete(peer.id);
      void this.dial(peer);
    }, delay);
    timer.unref?.();
    this.dialTimers.set(peer.id, timer);
  }

  private cancelDial(id: string): void {
    const t = this.dialTimers.get(id);
    if (t) this.options.clock.clearTimeout(t);
    this.dialTimers.delete(id);
    this.failures.delete(id);
  }

  private async dial(peer: { id: string; endpoint: string }): Promise<void> {
    const { mesh, logger } = this.options;
    if (this.stopped || mesh.isConnected(peer.id)) return;
    const member = this.swim.member(peer.id);
    if (member && (member.state === 'dead' || member.state === 'left')) return;
    try {
      await mesh.connect(peer.endpoint, peer.id);
    } catch (err) {
      const failures = (this.failures.get(peer.id) ?? 0) + 1;
      this.failures.set(peer.id, failures);
      logger.debug('dial failed', { peer: peer.id, endpoint: peer.endpoint, failures, err: err as Error });
      if (!mesh.isConnected(peer.id)) this.scheduleDial(peer, true);
    }
  }

  /** GET /cluster/nodes. */
  nodes(): NodeView[] {
    const links = new Map(this.options.mesh.peers().map((p) => [p.id, p]));
    return this.swim.members().map((m) => {
      const self = m.id === this.options.self.id;
      const rtt = self ? 0 : this.swim.rttMs(m.id);
      return {
        'node-id': m.id,
        endpoint: m.endpoint,
        state: m.state,
        incarnation: m.incarnation,
        arch: m.meta.arch ?? '',
        transport: links.get(m.id)?.impl ?? m.meta.transport ?? '',
        'rtt-ms': rtt === undefined ? null : Math.round(rtt * 100) / 100,
      };
    });
  }

  /** Graceful leave: tell the cluster, give the message a moment to go out, close everything. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const id of [...this.dialTimers.keys()]) this.cancelDial(id);
    this.options.joinLoop?.stop();
    this.swim.leave();
    await new Promise<void>((r) => this.options.clock.setTimeout(r, LEAVE_FLUSH_MS));
    this.swim.stop();
    await this.options.mdns?.stop();
    this.options.mesh.close();
  }
}

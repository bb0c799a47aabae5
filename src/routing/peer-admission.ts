/**
 * Admission of routing peers: which tenant each peer's aggregator or
 * connector was admitted for, the `Admission` the router checks at every hop.
 *
 * In an open cluster (no tenant created yet) a peer under the cluster cookie
 * is admitted for the tenant it publishes; a node that has not read the
 * registry yet (just started) admits no aggregator or connector. Once admission is required, a node
 * presents its secret (`--secret`) over the mesh's authenticated channel, in
 * an `admit` frame, to the cluster members and to the nodes of its own
 * tenant only (never to another tenant's nodes); the receiver checks it
 * against the replicated registry (scrypt, off the event loop; a secret
 * verified once is remembered by its SHA-256) and answers `admitted` or
 * `refused` with the reason. The secret travels in no envelope.
 *
 * An admission holds while its secret is in force: revoking the secret,
 * deleting its tenant or reaching its expiry cuts the peer off at the next
 * registry refresh. A peer whose admission a receiver lacks (it restarted,
 * say) is asked again (`admit_needed`); a node presents its secret again
 * every REPRESENT_MS anyway. Cluster members need no secret: the cookie
 * admits them (they hold the tables).
 *
 * Every admission and refusal is traced in the tenant's data sink (the
 * secret's id, never its value), refusals at most once per peer per
 * REFUSAL_TRACE_MS.
 */
import { createHash } from 'node:crypto';
import type { Clock, TimerHandle } from '../core/clock';
import type { Logger } from '../core/logger';
import { parseSecret, type Role, type RoutingIdentity } from '../core/routing-identity';
import { verifyScrypt } from '../core/scrypt-hash';
import { identityOf, type Directory } from './directory';
import type { Admission, AdmissionRecord } from './ports';
import type { SecretRole, TenantRegistry } from './tenant-registry';

export type AdmissionFrame = { t: 'admit'; secret: string } | { t: 'admitted'; tenant: string } | { t: 'refused'; reason: string } | { t: 'admit_needed' };

const TICK_MS = 1000;
/** A node presents its secret to each peer again this often (a receiver that restarted forgot it). */
const REPRESENT_MS = 30_000;
/** An unanswered presentation is sent again after this long. */
const RETRY_MS = 3000;
/** A refused presentation is tried again after this long (the secret may be created meanwhile). */
const REFUSED_RETRY_MS = 10_000;
const ASK_AGAIN_MS = 1000;
const REFUSAL_TRACE_MS = 60_000;
const MAX_VERIFIED = 4096;
const MAX_SECRET_CHARS = 256;

export function parseAdmissionFrame(body: unknown): AdmissionFrame | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const f = body as Record<string, unknown>;
  if (f.t === 'admit' && typeof f.secret === 'string' && f.secret.length <= MAX_SECRET_CHARS) return { t: 'admit', secret: f.secret };
  if (f.t === 'admitted' && typeof f.tenant === 'string') return { t: 'admitted', tenant: f.tenant.slice(0, 64) };
  if (f.t === 'refused' && typeof f.reason === 'string') return { t: 'refused', reason: f.reason.slice(0, 300) };
  if (f.t === 'admit_needed') return { t: 'admit_needed' };
  return undefined;
}

export function isAdmissionFrame(body: unknown): boolean {
  const t = typeof body === 'object' && body !== null ? (body as { t?: unknown }).t : undefined;
  return t === 'admit' || t === 'admitted' || t === 'refused' || t === 'admit_needed';
}

export function digest(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** The roles a node's secret must admit: those of its roles that need one. */
function secretRoles(identity: RoutingIdentity): SecretRole[] {
  return identity.roles.filter((r): r is 'aggregator' | 'connector' => r !== 'cluster');
}

interface Admitted {
  tenant: string;
  id: string;
  digest: string;
}

type Presented = { state: 'sent' | 'admitted' | 'refused'; at: number; reason?: string };

export interface PeerAdmissionOptions {
  self: string;
  identity: RoutingIdentity;
  /** This node's secret (--secret), if it has one. */
  secret: string | undefined;
  registry: TenantRegistry;
  directory: Directory;
  clock: Clock;
  logger: Logger;
  send(to: string, frame: AdmissionFrame): boolean;
  trace(record: AdmissionRecord): void;
}

export class PeerAdmission implements Admission {
  /** Peers (this node included) admitted with a secret, by node id. */
  private readonly admitted = new Map<string, Admitted>();
  /** SHA-256 of secrets whose key matched their hash -> the secret's id. */
  private readonly verified = new Map<string, string>();
  /** SHA-256 of secrets whose key did not match, -> why (a repeated wrong secret costs no scrypt). */
  private readonly wrong = new Map<string, string>();
  /** Peers whose presentation is being verified: one at a time each. */
  private readonly verifying = new Set<string>();
  /** How this node's presentation to each peer stands. */
  private readonly presented = new Map<string, Presented>();
  private readonly askedAt = new Map<string, number>();
  private readonly refusalTracedAt = new Map<string, number>();
  private timer: TimerHandle | undefined;
  private stopped = false;
  private loggedOwn: string | undefined;

  constructor(private readonly o: PeerAdmissionOptions) {
    o.registry.onChange(() => this.recheck());
  }

  start(): void {
    const tick = () => {
      if (this.stopped) return;
      this.present();
      this.timer = this.o.clock.setTimeout(tick, TICK_MS);
      this.timer.unref?.();
    };
    tick();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) this.o.clock.clearTimeout(this.timer);
  }

  tenantOf(peer: string, role: Role): string | undefined {
    const identity = peer === this.o.self ? this.o.identity : identityOf(this.o.directory, peer);
    if (!identity?.roles.includes(role)) return undefined;
    if (role === 'cluster') return '*';
    // fail closed: until this node has read the registry, it does not know whether the cluster is open
    if (!this.o.registry.loaded) return undefined;
    if (!this.o.registry.required()) return identity.tenant;
    const a = this.admitted.get(peer);
    if (a && a.tenant === identity.tenant && this.o.registry.secret(a.tenant, a.id)?.roles.includes(role)) return a.tenant;
    this.askAgain(peer);
    return undefined;
  }

  /** How this node stands with each peer it presented its secret to (GET /gandalf/admission). */
  standing(): Record<string, { state: Presented['state']; reason?: string }> {
    return Object.fromEntries(
      [...this.presented].map(([peer, p]) => [peer, p.reason === undefined ? { state: p.state } : { state: p.state, reason: p.reason }]),
    );
  }

  get tenant(): string {
    return this.o.identity.tenant;
  }

  get hasSecret(): boolean {
    return this.o.secret !== undefined;
  }

  receive(from: string, body: unknown): void {
    const f = parseAdmissionFrame(body);
    if (!f) return;
    if (f.t === 'admit') void this.check(from, f.secret);
    else if (f.t === 'admitted') this.presented.set(from, { state: 'admitted', at: this.o.clock.monotonic() });
    else if (f.t === 'refused') {
      const before = this.presented.get(from);
      this.presented.set(from, { state: 'refused', at: this.o.clock.monotonic(), reason: f.reason });
      if (before?.state !== 'refused' || before.reason !== f.reason)
        this.o.logger.warn('a peer refused this node\u2019s secret', { peer: from, reason: f.reason });
    } else this.presented.delete(from);
  }

  /** A secret presented by `from` (a peer, or this node itself): checked, remembered, answered, traced. */
  private async check(from: string, secret: string): Promise<void> {
    const identity = from === this.o.self ? this.o.identity : identityOf(this.o.directory, from);
    const answer = (frame: AdmissionFrame) => (from === this.o.self ? this.receive(from, frame) : void this.o.send(from, frame));
    // a peer membership does not know yet: no answer, it presents again shortly (RETRY_MS)
    if (!identity) return;
    if (secretRoles(identity).length === 0) return answer({ t: 'refused', reason: 'only aggregators and connectors present secrets' });
    const key = digest(secret);
    if (this.verifying.has(from)) return;
    this.verifying.add(from);
    let refusal: string | undefined;
    try {
      refusal = await this.verify(secret, key, identity);
    } finally {
      this.verifying.delete(from);
    }
    const id = parseSecret(secret)?.id;
    if (refusal !== undefined) {
      this.admitted.delete(from);
      this.traceRefusal(from, identity, refusal, id);
      return answer({ t: 'refused', reason: refusal });
    }
    const before = this.admitted.get(from);
    this.admitted.set(from, { tenant: identity.tenant, id: id!, digest: key });
    if (before?.digest !== key) this.traceNode(from, identity, 'admitted', id);
    answer({ t: 'admitted', tenant: identity.tenant });
  }

  /** Why `secret` does not admit the node `identity` describes, or undefined when it does. */
  private async verify(secret: string, key: string, identity: RoutingIdentity): Promise<string | undefined> {
    const roles = secretRoles(identity);
    // a secret created a moment ago may not have reached this board's view yet
    if (roles.some((role) => typeof this.o.registry.lookup(secret, identity.tenant, role) === 'string')) await this.o.registry.refreshForMiss();
    for (const role of roles) {
      const r = this.o.registry.lookup(secret, identity.tenant, role);
      if (typeof r === 'string') return r;
    }
    const record = this.o.registry.lookup(secret, identity.tenant, roles[0]!);
    if (typeof record === 'string') return record;
    if (this.verified.get(key) === record.id) return undefined;
    const known = this.wrong.get(key);
    if (known !== undefined) return known;
    const ok = await verifyScrypt(parseSecret(secret)!.key, record.hash);
    const remember = ok ? this.verified : this.wrong;
    if (remember.size >= MAX_VERIFIED) remember.delete(remember.keys().next().value!);
    if (ok) this.verified.set(key, record.id);
    else this.wrong.set(key, `wrong key for secret ${record.id} of tenant ${record.tenant}`);
    return ok ? undefined : this.wrong.get(key);
  }

  /** After a registry refresh: admissions whose secret is no longer in force end. */
  private recheck(): void {
    for (const [peer, a] of this.admitted) {
      if (this.o.registry.secret(a.tenant, a.id)) continue;
      this.admitted.delete(peer);
      this.o.logger.info('an admission ended: its secret was revoked, expired or its tenant deleted', { peer, tenant: a.tenant, secret: a.id });
    }
  }

  /** Presents this node's secret to itself, the cluster members and its tenant's nodes, where that is due. */
  private present(): void {
    const { identity, secret, registry, self } = this.o;
    if (!registry.loaded || !registry.required() || secretRoles(identity).length === 0) return;
    if (secret === undefined) {
      if (this.loggedOwn !== 'none')
        this.o.logger.warn('admission is required and this node has no --secret: its aggregator and connector are not routed', { tenant: identity.tenant });
      this.loggedOwn = 'none';
      return;
    }
    const now = this.o.clock.monotonic();
    const peers = this.o.directory.peers().filter((p) => p.id === self || p.identity.roles.includes('cluster') || p.identity.tenant === identity.tenant);
    for (const p of peers) {
      const st = this.presented.get(p.id);
      const wait = !st ? 0 : st.state === 'sent' ? RETRY_MS : st.state === 'refused' ? REFUSED_RETRY_MS : REPRESENT_MS;
      if (st && now - st.at < wait) continue;
      this.presented.set(p.id, { state: 'sent', at: now });
      if (p.id === self) void this.check(self, secret);
      else this.o.send(p.id, { t: 'admit', secret });
    }
    for (const id of this.presented.keys()) if (!peers.some((p) => p.id === id)) this.presented.delete(id);
  }

  /** A peer this node does not hold an admission for is asked to present its secret again (at most every ASK_AGAIN_MS). */
  private askAgain(peer: string): void {
    const now = this.o.clock.monotonic();
    if (now - (this.askedAt.get(peer) ?? -Infinity) < ASK_AGAIN_MS) return;
    this.askedAt.set(peer, now);
    if (peer === this.o.self) this.presented.delete(peer);
    else this.o.send(peer, { t: 'admit_needed' });
  }

  private traceRefusal(from: string, identity: RoutingIdentity, reason: string, secretId: string | undefined): void {
    const now = this.o.clock.monotonic();
    if (now - (this.refusalTracedAt.get(from) ?? -Infinity) < REFUSAL_TRACE_MS) return;
    this.refusalTracedAt.set(from, now);
    this.o.logger.warn('refused a peer\u2019s secret', { peer: from, tenant: identity.tenant, reason });
    this.traceNode(from, identity, 'refused', secretId, reason);
  }

  private traceNode(from: string, identity: RoutingIdentity, outcome: 'admitted' | 'refused', secretId: string | undefined, reason?: string): void {
    this.o.trace({
      tenant: identity.tenant,
      node: this.o.self,
      subject: 'node',
      name: from,
      roles: secretRoles(identity),
      secretId,
      outcome,
      ...(reason !== undefined ? { reason } : {}),
      at: Math.floor(this.o.clock.now()),
    });
  }
}

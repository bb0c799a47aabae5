/**
 * The same behaviour from every transport implementation: in-memory,
 * node-datachannel <-> node-datachannel, werift <-> werift, and both mixed
 * directions. Real WebRTC runs on 127.0.0.1 only.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { systemClock, type Clock } from '../../../src/core/clock';
import { offerReply } from '../../../src/api/cluster-routes';
import { silentLogger } from '../../../src/core/logger';
import { memoryRtc } from '../../../src/transport/memory-rtc';
import { Mesh, type HttpReply } from '../../../src/transport/mesh';
import { loadNativeRtc } from '../../../src/transport/native-rtc';
import type { RtcFactory } from '../../../src/transport/rtc';
import { SignalAuth, type SignalOffer } from '../../../src/transport/signaling';
import { loadWeriftRtc } from '../../../src/transport/werift-rtc';

const factories: Record<string, () => Promise<RtcFactory>> = {
  memory: async () => memoryRtc(),
  native: loadNativeRtc,
  werift: loadWeriftRtc,
};
const PAIRS: [string, string][] = [
  ['memory', 'memory'],
  ['native', 'native'],
  ['werift', 'werift'],
  ['native', 'werift'],
  ['werift', 'native'],
];

const meshes: Mesh[] = [];
const endpoints = new Map<string, Mesh>();
/** "from->endpoint" pairs whose HTTP signaling fails (a firewalled or unroutable mgmt endpoint). */
const unreachable = new Set<string>();
afterEach(() => {
  for (const m of meshes.splice(0)) m.close();
  endpoints.clear();
  unreachable.clear();
});
afterAll(async () => {
  (await import('node-datachannel')).cleanup();
});

interface NodeSpec {
  id: string;
  impl: string;
  /** One cookie, or a keyring (the first signs). */
  cookie?: string | string[];
  cluster?: string;
  clock?: Clock;
}

const auths = new Map<string, SignalAuth>();
function authOf(id: string, auth: SignalAuth): SignalAuth {
  auths.set(id, auth);
  return auth;
}

async function makeMesh(spec: NodeSpec): Promise<Mesh> {
  const endpoint = `http://127.0.0.1:${10000 + endpoints.size}`;
  const clock = spec.clock ?? systemClock;
  const mesh = new Mesh({
    self: { id: spec.id, endpoint },
    rtc: await factories[spec.impl]!(),
    rtcOptions: { iceAddresses: ['127.0.0.1'], iceServers: [] },
    auth: authOf(spec.id, new SignalAuth(spec.cookie, spec.cluster ?? 'test', clock)),
    postSignal: async (to: string, offer: SignalOffer): Promise<HttpReply> => {
      const target = endpoints.get(to);
      if (!target || unreachable.has(`${spec.id}->${to}`)) throw new Error(`connect ECONNREFUSED ${to}`);
      return offerReply(await target.acceptOffer(JSON.parse(JSON.stringify(offer))));
    },
    logger: silentLogger,
    clock,
  });
  endpoints.set(endpoint, mesh);
  meshes.push(mesh);
  return mesh;
}

function inbox(mesh: Mesh, topic: string): { from: string; body: any }[] {
  const got: { from: string; body: any }[] = [];
  mesh.subscribe(topic, (from, body) => got.push({ from, body }));
  return got;
}

async function until(cond: () => boolean, ms = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

for (const [left, right] of PAIRS) {
  describe(`mesh over ${left} <-> ${right}`, () => {
    it('connects through signed signaling and carries both channel kinds both ways', async () => {
      const a = await makeMesh({ id: 'node-a', impl: left, cookie: 'secret' });
      const b = await makeMesh({ id: 'node-b', impl: right, cookie: 'secret' });
      const atA = inbox(a, 'test');
      const atB = inbox(b, 'test');
      const id = await a.connect(b.self.endpoint);
      expect(id).toBe('node-b');
      await until(() => b.isConnected('node-a'), 10_000, 'b to see a');
      expect(a.peers().map((p) => [p.id, p.impl])).toEqual([['node-b', right === 'memory' ? 'werift' : right]]);
      expect(b.peers().map((p) => [p.id, p.endpoint])).toEqual([['node-a', a.self.endpoint]]);

      for (let i = 0; i < 1000; i++) a.send('reliable', 'node-b', 'test', { i });
      b.send('reliable', 'node-a', 'test', 'hello');
      b.send('datagram', 'node-a', 'test', { probe: 1 });
      await until(() => atB.length === 1000 && atA.length === 2, 10_000, 'messages');
      expect(atB.map((m) => m.body.i)).toEqual(Array.from({ length: 1000 }, (_, i) => i)); // in order
      expect(atB.every((m) => m.from === 'node-a')).toBe(true);
      expect(atA.map((m) => m.body)).toEqual(expect.arrayContaining(['hello', { probe: 1 }]));
      // 1000 messages queued in one tick travel in a handful of frames.
      expect(a.peers()[0]!.stats.framesSent).toBeLessThanOrEqual(10);
    });

    it('delivers large messages intact and refuses ones larger than a frame', async () => {
      const a = await makeMesh({ id: 'a', impl: left });
      const b = await makeMesh({ id: 'b', impl: right });
      const got = inbox(b, 'blob');
      await a.connect(b.self.endpoint);
      const big = Buffer.alloc(60 * 1024, 7);
      a.send('reliable', 'b', 'blob', big);
      a.send('reliable', 'b', 'blob', Buffer.alloc(100 * 1024, 1)); // over the 64 KiB frame limit: dropped by the sender
      a.send('reliable', 'b', 'blob', 'after');
      await until(() => got.length === 2, 10_000, 'blobs');
      expect(Buffer.from(got[0]!.body).equals(big)).toBe(true);
      expect(got[1]!.body).toBe('after');
    });

    it('keeps what the dialer sends before the other side attached its listener, in order', async () => {
      // A peer may send the moment its side is open; the accepting side adopts
      // its channels a little later (seen: a fuzzer's whole burst lost).
      const options = { iceAddresses: ['127.0.0.1'], iceServers: [] };
      const dialer = await factories[left]!();
      const acceptor = await factories[right]!();
      const offered = await dialer.offer(options);
      const answered = await acceptor.answer(options, offered.sdp);
      try {
        await dialer.complete(offered.connection, answered.sdp);
        const mine = await offered.connection.ready;
        for (let i = 0; i < 50; i++) mine.reliable.send(Uint8Array.of(i));
        const theirs = await answered.connection.ready;
        await new Promise((r) => setTimeout(r, 300));
        const got: number[] = [];
        theirs.reliable.onMessage((data) => got.push(data[0]!));
        expect(() => theirs.reliable.onMessage(() => {})).toThrow(/one message listener/);
        await until(() => got.length === 50, 5_000, 'the early messages');
        expect(got).toEqual(Array.from({ length: 50 }, (_, i) => i));
        mine.reliable.send(Uint8Array.of(99));
        await until(() => got.length === 51, 5_000, 'a later message');
        expect(got[50]).toBe(99);
      } finally {
        offered.connection.close();
        answered.connection.close();
      }
    });

    it('drops malformed frames and disconnects a peer that keeps sending them', async () => {
      const a = await makeMesh({ id: 'a', impl: left });
      const b = await makeMesh({ id: 'b', impl: right });
      const got = inbox(b, 'ok');
      const downs: string[] = [];
      b.onPeerDown((id) => downs.push(id));
      await a.connect(b.self.endpoint);
      await until(() => b.isConnected('a'));
      const raw = (a as any).links.get('b').link.channels.reliable;
      raw.send(Buffer.from('not cbor at all'));
      a.send('reliable', 'b', 'nosuchtopic', 1);
      a.send('reliable', 'b', 'ok', 'still fine');
      await until(() => got.length === 1);
      expect(b.peers()[0]!.stats.badFrames).toBe(2);
      for (let i = 0; i < 25; i++) raw.send(Buffer.from([0xff, i]));
      await until(() => downs.includes('a'), 10_000, 'b to drop a');
      expect(b.isConnected('a')).toBe(false);
    });
  });
}

describe('signaling authentication (in-memory transport)', () => {
  it('refuses a wrong cookie, another cluster, a replayed offer, and heals clock skew', async () => {
    const b = await makeMesh({ id: 'b', impl: 'memory', cookie: 'right' });
    const wrong = await makeMesh({ id: 'w', impl: 'memory', cookie: 'wrong' });
    await expect(wrong.connect(b.self.endpoint)).rejects.toThrow(/401 unauthorized/);
    const open = await makeMesh({ id: 'o', impl: 'memory' });
    await expect(open.connect(b.self.endpoint)).rejects.toThrow(/401 unauthorized/);
    const other = await makeMesh({ id: 'x', impl: 'memory', cookie: 'right', cluster: 'elsewhere' });
    await expect(other.connect(b.self.endpoint)).rejects.toThrow(/403 wrong_cluster/);
    expect(b.peers()).toEqual([]);

    // Replay: the same signed offer twice.
    const auth = new SignalAuth('right', 'test', systemClock);
    const offer = auth.sign<SignalOffer>({
      v: 1,
      kind: 'offer',
      from: 'r',
      to: '',
      cluster: 'test',
      endpoint: 'http://127.0.0.1:1',
      impl: 'werift',
      ts: Date.now(),
      nonce: auth.nonce(),
      sdp: (await memoryRtc().offer({ iceAddresses: [], iceServers: [] })).sdp,
    });
    expect(await b.acceptOffer(offer)).toMatchObject({ ok: true });
    expect(await b.acceptOffer(offer)).toMatchObject({ ok: false, code: 'replayed' });
    expect(await b.acceptOffer({ ...offer, sdp: offer.sdp + 'a=x\r\n', nonce: auth.nonce() })).toMatchObject({ ok: false, code: 'unauthorized' }); // tampered SDP
    expect(await b.acceptOffer({ garbage: true })).toMatchObject({ ok: false, code: 'invalid_request' });
    expect(offerReply(await b.acceptOffer(offer))).toMatchObject({ status: 401, body: { code: 'replayed' } });

    // A board whose clock is an hour off still joins: the stale reply carries the peer's time.
    const skewed: Clock = { ...systemClock, now: () => Date.now() - 3_600_000 };
    const late = await makeMesh({ id: 'late', impl: 'memory', cookie: 'right', clock: skewed });
    expect(await late.connect(b.self.endpoint)).toBe('b');
  });

  it('refuses a second handler for one topic instead of replacing the first', async () => {
    const m = await makeMesh({ id: 'dup', impl: 'memory' });
    m.subscribe('t', () => undefined);
    expect(() => m.subscribe('t', () => undefined)).toThrow(/topic t already has a handler/);
    expect(() => m.subscribe('signal', () => undefined)).toThrow(/already has a handler/);
  });

  it('rotates the cookie board by board: accept the new one, sign with it, drop the old one', async () => {
    const board = (id: string, cookies: string[]) => makeMesh({ id, impl: 'memory', cookie: cookies });
    const [a, b, c] = [await board('ra', ['old-cookie']), await board('rb', ['old-cookie']), await board('rc', ['old-cookie'])];
    const dial = async (from: Mesh, to: Mesh) => {
      from.disconnect(to.self.id, 'test');
      to.disconnect(from.self.id, 'test');
      return from.connect(to.self.endpoint);
    };
    // step 1, one board at a time: accept the new cookie (old still signs); every pair connects at every moment
    for (const id of ['ra', 'rb', 'rc']) {
      auths.get(id)!.setCookies(['old-cookie', 'new-cookie']);
      expect(await dial(a, b)).toBe('rb');
      expect(await dial(c, a)).toBe('ra');
    }
    // step 2: sign with the new one
    for (const id of ['ra', 'rb', 'rc']) {
      auths.get(id)!.setCookies(['new-cookie', 'old-cookie']);
      expect(await dial(a, b)).toBe('rb');
      expect(await dial(b, c)).toBe('rc');
    }
    // step 3: the old one goes; a board still on it alone is refused now
    for (const id of ['ra', 'rb', 'rc']) auths.get(id)!.setCookies(['new-cookie']);
    expect(await dial(c, b)).toBe('rb');
    const stale = await board('stale', ['old-cookie']);
    await expect(stale.connect(a.self.endpoint)).rejects.toThrow(/401 unauthorized/);
    // a reload can neither open a closed cluster nor close an open one
    expect(() => auths.get('ra')!.setCookies([])).toThrow(/cannot become open/);
    expect(() => new SignalAuth(undefined, 'test', systemClock).setCookies(['x-cookie-1'])).toThrow(/open cluster cannot get a cookie/);
  });

  it('resolves glare (both sides dialing) to one link each way, and the newest connection wins', async () => {
    const a = await makeMesh({ id: 'a', impl: 'memory' });
    const b = await makeMesh({ id: 'b', impl: 'memory' });
    const results = await Promise.allSettled([a.connect(b.self.endpoint, 'b'), b.connect(a.self.endpoint, 'a')]);
    expect(results.filter((r) => r.status === 'fulfilled').length).toBeGreaterThanOrEqual(1);
    await until(() => a.isConnected('b') && b.isConnected('a'));
    expect(a.peers()).toHaveLength(1);
    expect(b.peers()).toHaveLength(1);
    // A reconnect (e.g. after a restart of a) replaces the old link.
    const before = b.peers()[0]!.since;
    await new Promise((r) => setTimeout(r, 5));
    await a.connect(b.self.endpoint);
    await until(() => b.peers()[0]!.since > before);
    expect(b.peers()).toHaveLength(1);
    await expect(a.connect(b.self.endpoint, 'not-b')).rejects.toThrow(/wrong_node/);
  });
});

describe('signaling relayed over mesh links', () => {
  for (const impl of ['memory', 'native', 'werift']) {
    it(`reaches a peer whose endpoint is unreachable through a common peer (${impl})`, async () => {
      const a = await makeMesh({ id: 'a', impl, cookie: 'relay-secret' });
      const b = await makeMesh({ id: 'b', impl, cookie: 'relay-secret' });
      const c = await makeMesh({ id: 'c', impl, cookie: 'relay-secret' });
      await a.connect(b.self.endpoint);
      await c.connect(b.self.endpoint);
      await until(() => b.isConnected('a') && b.isConnected('c'));
      unreachable.add(`a->${c.self.endpoint}`);
      // Without a known id there is nobody to relay to: the failure stands.
      await expect(a.connect(c.self.endpoint)).rejects.toThrow(/ECONNREFUSED/);
      expect(await a.connect(c.self.endpoint, 'c')).toBe('c');
      await until(() => c.isConnected('a'));
      const got = inbox(c, 'hello');
      a.send('reliable', 'c', 'hello', 'direct now');
      await until(() => got.length === 1);
      expect(got[0]).toEqual({ from: 'a', body: 'direct now' });
    });
  }
});

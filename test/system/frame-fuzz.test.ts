/**
 * Random and mutated frames into a live node over a real authenticated data
 * channel: the node keeps serving, keeps its other peer, and disconnects the
 * sender once it keeps sending garbage.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/core/clock';
import { silentLogger } from '../../src/core/logger';
import { encodeFrame } from '../../src/transport/frames';
import { Mesh } from '../../src/transport/mesh';
import { postSignal } from '../../src/transport/signal-client';
import { SignalAuth } from '../../src/transport/signaling';
import { loadWeriftRtc } from '../../src/transport/werift-rtc';
import { startNode } from '../helpers/node-process';
import { mulberry32 } from '../helpers/sim/prng';
import { tempDir } from '../helpers/tmp';

const COOKIE = 'fuzz-cookie-0123456789';

const meshes: Mesh[] = [];
afterAll(() => meshes.forEach((m) => m.close()));

describe('frame fuzzing against a live node', () => {
  it('keeps serving and drops a peer that sends garbage', async () => {
    const seedNode = await startNode({ dataDir: tempDir(), args: ['--node-id', 'target', '--discovery', 'manual', '--cluster-cookie', COOKIE] });
    const endpoint = `http://127.0.0.1:${seedNode.mgmtPort}`;
    const friend = await startNode({
      dataDir: tempDir(),
      args: ['--node-id', 'friend', '--discovery', 'manual', '--cluster-cookie', COOKIE, '--join', endpoint],
    });
    const bothAlive = async () => {
      const rows = (await seedNode.get('/cluster/nodes')).body.nodes as { 'node-id': string; state: string }[];
      return rows.filter((r) => r.state === 'alive').length === 2;
    };
    for (let i = 0; !(await bothAlive()); i++) {
      if (i > 200) throw new Error('cluster did not form');
      await new Promise((r) => setTimeout(r, 100));
    }

    const random = mulberry32(Number(process.env.FUZZ_SEED ?? 42));
    let rounds = 0;
    for (let round = 0; round < 3; round++) {
      const fuzzer = new Mesh({
        self: { id: `fuzzer-${round}`, endpoint: 'http://127.0.0.1:9' },
        rtc: await loadWeriftRtc(),
        rtcOptions: { iceAddresses: ['127.0.0.1'], iceServers: [] },
        auth: new SignalAuth(COOKIE, 'gandalf', systemClock),
        postSignal,
        logger: silentLogger,
        clock: systemClock,
      });
      meshes.push(fuzzer);
      expect(await fuzzer.connect(endpoint)).toBe('target');
      // This fuzzer's link, not the count (the last round's link may not be gone yet).
      for (let i = 0; !((await seedNode.get('/ui/overview')).body.links as string[]).includes(`fuzzer-${round}`); i++) {
        if (i > 100) throw new Error('the node never registered the fuzzer link');
        await new Promise((r) => setTimeout(r, 50));
      }
      const raw = (fuzzer as any).links.get('target').link.channels;
      const valid = encodeFrame([{ topic: 'swim', body: { type: 'ping', seq: 1, from: 'x' } }]);
      for (let i = 0; i < 200 && fuzzer.isConnected('target'); i++) {
        const kind = random() < 0.5 ? 'reliable' : 'datagram';
        const pick = random();
        let frame: Buffer;
        if (pick < 0.3) frame = Buffer.from(Array.from({ length: 1 + Math.floor(random() * 512) }, () => Math.floor(random() * 256)));
        else if (pick < 0.6) {
          frame = Buffer.from(valid);
          for (let k = 0; k < 1 + random() * 4; k++) frame[Math.floor(random() * frame.length)] = Math.floor(random() * 256);
        } else if (pick < 0.8) frame = encodeFrame([{ topic: 'swim', body: [random(), 'x'.repeat(Math.floor(random() * 100)), { type: 'ack', seq: -1 }] }]);
        else frame = encodeFrame([{ topic: 'nosuch', body: i }]);
        raw[kind].send(frame);
        rounds++;
        await new Promise((r) => setImmediate(r));
      }
      // The node cut the fuzzer off and stays healthy with its real peer.
      for (let i = 0; fuzzer.isConnected('target'); i++) {
        if (i > 100)
          throw new Error(
            `the node never disconnected the fuzzer (round ${round}, ${rounds} frames)\n${seedNode.log
              .split('\n')
              .filter((l) => /fuzzer|bad frame|closing/.test(l))
              .slice(-8)
              .join('\n')}`,
          );
        await new Promise((r) => setTimeout(r, 100));
      }
      expect((await seedNode.get('/health')).status).toBe(200);
      expect(await bothAlive()).toBe(true);
      fuzzer.close();
    }
    expect(rounds).toBeGreaterThan(20);
    const w = await seedNode.post('/db/execute', ['CREATE TABLE still_serving(x)']);
    expect(w.status).toBe(200);
    expect((await seedNode.stop()).code).toBe(0);
    expect((await friend.stop()).code).toBe(0);
  }, 90_000);
});

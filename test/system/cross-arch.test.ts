/**
 * The single executables of every architecture (`npm run package`,
 * scripts/package.mjs), black-box, under qemu-user with a CPU model of each
 * target board: ARMv6 (arm1176, Raspberry Pi 1 / Zero), ARMv7 (cortex-a7),
 * arm64 (cortex-a53), x86 (n270, a 32-bit Atom), and x64 natively.
 * Each serves SQL, reports its architecture and Node version, and stops with
 * exit code 0 on SIGTERM. The ARMv7 executable must not run on an ARMv6 CPU,
 * which shows the CPU models are enforced.
 *
 * qemu is invoked explicitly (binfmt_misc may not be registered). The official
 * Node builds (arm64, ARMv7) are dynamically linked against glibc: qemu gets
 * the Debian sysroot scripts/package.mjs fetched (-L). The ARMv6 and x86
 * executables are sh stubs that exec their own dynamic loader: qemu goes in
 * front of that exec through GANDALF_EXEC_WRAPPER.
 *
 * beforeAll runs scripts/package.mjs for the four foreign targets (it rebuilds
 * only what changed), so the executables tested are those of the current
 * bundle; linux-x64 comes from `npm run build`, like test/system/runtimes.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUNDLE, ROOT, requireBuilt, runCli, startNode, type NodeProcess } from '../helpers/node-process';
import { tempDir } from '../helpers/tmp';
import { runLong } from '../helpers/run';

const CACHE = path.join(ROOT, '.cache');
const exe = (target: string) => path.join(ROOT, `dist/gandalf-node-${target}`);

interface Target {
  target: string;
  /** What runs the executable: emulator and options, then the file. */
  command: string[];
  env: Record<string, string | undefined>;
  arch: string;
  nodeMajor: number;
  singleExecutable: boolean;
  /**
   * qemu-i386 7.2 (Debian bookworm) breaks i386 Node at any handled signal
   * ("Fatal error in HandleScope::HandleScope: Entering the V8 API without
   * proper locking", then SIGTRAP or SIGSEGV; a node that handles SIGTERM
   * with two lines of JS does the same, while the same files run natively on
   * the x64 kernel's 32-bit mode stop cleanly every time). So for x86 the
   * emulated node is killed, and SIGTERM -> exit 0 is checked on the same
   * executable and data run natively (a real x86 CPU).
   */
  sigtermNatively?: boolean;
}

let stubCache = '';
function targets(): Target[] {
  const stubEnv = (wrapper: string) => ({ GANDALF_EXEC_WRAPPER: wrapper, GANDALF_CACHE_DIR: stubCache });
  return [
    { target: 'linux-x64', command: [exe('linux-x64')], env: {}, arch: 'x64', nodeMajor: 24, singleExecutable: true },
    {
      target: 'linux-arm64',
      command: ['qemu-aarch64-static', '-cpu', 'cortex-a53', '-L', path.join(CACHE, 'sysroot-arm64'), exe('linux-arm64')],
      env: {},
      arch: 'arm64',
      nodeMajor: 24,
      singleExecutable: true,
    },
    {
      target: 'linux-armv7',
      command: ['qemu-arm-static', '-cpu', 'cortex-a7', '-L', path.join(CACHE, 'sysroot-armhf'), exe('linux-armv7')],
      env: {},
      arch: 'arm',
      nodeMajor: 20,
      // Node 20.11 has no node:sea module (added in 20.12); the CLI recognises the SEA by argv[1].
      singleExecutable: true,
    },
    { target: 'linux-armv6', command: [exe('linux-armv6')], env: stubEnv('qemu-arm-static -cpu arm1176'), arch: 'arm', nodeMajor: 18, singleExecutable: false },
    {
      target: 'linux-x86',
      command: [exe('linux-x86')],
      env: stubEnv('qemu-i386-static -cpu n270'),
      arch: 'ia32',
      nodeMajor: 18,
      singleExecutable: false,
      sigtermNatively: true,
    },
  ];
}

beforeAll(async () => {
  if (process.getuid?.() !== 0) {
    throw new Error('cross-arch tests need root (package.mjs adds Debian architectures and installs nothing else); CI runs as root; not skipped');
  }
  for (const q of ['qemu-arm-static', 'qemu-aarch64-static', 'qemu-i386-static']) {
    if (spawnSync('sh', ['-c', `command -v ${q}`]).status !== 0) {
      throw new Error(`${q} is missing: run scripts/ensure-test-deps.sh (installs qemu-user-static); not skipped`);
    }
  }
  requireBuilt(BUNDLE);
  // Incremental: only targets whose bundle or runtime changed are rebuilt. Not
  // linux-x64: `npm run build` made it, and other test files may be running it.
  const foreign = ['linux-arm64', 'linux-armv7', 'linux-armv6', 'linux-x86'];
  await runLong(process.execPath, [path.join(ROOT, 'scripts/package.mjs'), ...foreign], { cwd: ROOT, timeoutMs: 300_000 });
  for (const t of targets()) requireBuilt(exe(t.target));
  stubCache = mkdtempSync(path.join(tmpdir(), 'gandalf-sfx-cache-'));
}, 360_000);

afterAll(() => {
  if (stubCache) rmSync(stubCache, { recursive: true, force: true });
});

describe('single executables under qemu-user', () => {
  for (const name of ['linux-x64', 'linux-arm64', 'linux-armv7', 'linux-armv6', 'linux-x86']) {
    it(`${name} serves SQL on its target CPU`, async () => {
      const t = targets().find((x) => x.target === name)!;
      const v = await runCli(['version', '--json'], t.env, t.command);
      expect(v.code, v.stderr).toBe(0);
      const info = JSON.parse(v.stdout);
      expect(info.arch).toBe(t.arch);
      expect(info.platform).toBe('linux');
      expect(info.node).toMatch(new RegExp(`^v${t.nodeMajor}\\.`));
      expect(info.single_executable).toBe(t.singleExecutable);
      // node-datachannel ships prebuilt addons for 64-bit targets only; they are embedded in those SEAs.
      expect(info.transport).toBe(t.arch === 'x64' || t.arch === 'arm64' ? 'native' : 'werift');

      const dataDir = tempDir('gandalf-xarch-');
      const node = await startNode({ dataDir, command: t.command, env: t.env, noWait: true });
      try {
        await node.waitHealthy(120_000);
        const w = await node.post('/db/execute', [
          'CREATE TABLE boards(id INTEGER PRIMARY KEY, arch TEXT, at DEFAULT CURRENT_TIMESTAMP)',
          ['INSERT INTO boards(arch) VALUES(?)', name],
        ]);
        expect(w.status).toBe(200);
        expect(w.body.results[1]).toEqual({ last_insert_id: 1, rows_affected: 1 });
        const r = await node.get('/db/query?q=SELECT+id,arch+FROM+boards');
        expect(r.status).toBe(200);
        expect(r.body.results[0].values).toEqual([[1, name]]);
        const status = (await node.get('/status')).body;
        expect(status.arch).toBe(t.arch);
      } finally {
        const exit = await node.stop(t.sigtermNatively ? 'SIGKILL' : 'SIGTERM');
        if (!t.sigtermNatively) expect(exit, node.log).toEqual({ code: 0, signal: null });
      }
      if (t.sigtermNatively) {
        const native = await startNode({ dataDir, command: t.command, env: { ...t.env, GANDALF_EXEC_WRAPPER: undefined }, noWait: true });
        try {
          await native.waitHealthy(60_000);
          expect((await native.get('/status')).body.arch).toBe(t.arch);
          const r = await native.get('/db/query?q=SELECT+id,arch+FROM+boards');
          expect(r.body.results[0].values).toEqual([[1, name]]);
        } finally {
          const exit = await native.stop('SIGTERM');
          expect(exit, native.log).toEqual({ code: 0, signal: null });
        }
      }
    }, 180_000);
  }

  it('the ARMv7 executable fails on an ARMv6 CPU (arm1176)', async () => {
    const command = ['qemu-arm-static', '-cpu', 'arm1176', '-L', path.join(CACHE, 'sysroot-armhf'), exe('linux-armv7')];
    const v = await runCli(['version', '--json'], {}, command);
    expect(v.code).not.toBe(0);
    expect(v.stdout).toBe('');
    expect(v.stderr).toMatch(/Illegal instruction|signal 4/);
  }, 60_000);

  it('a damaged ARMv6 executable refuses to unpack', async () => {
    const dir = tempDir('gandalf-sfx-damaged-');
    const copy = path.join(dir, 'gandalf-node');
    const data = readFileSync(exe('linux-armv6'));
    data[data.length - 1000] ^= 0xff;
    writeFileSync(copy, data, { mode: 0o755 });
    const v = await runCli(['version', '--json'], { GANDALF_CACHE_DIR: path.join(dir, 'cache'), GANDALF_EXEC_WRAPPER: 'qemu-arm-static -cpu arm1176' }, [copy]);
    expect(v.code).toBe(1);
    expect(v.stderr).toMatch(/is damaged/);
    // Nothing unpacked, nothing left behind.
    expect(readdirSync(path.join(dir, 'cache'))).toEqual([]);
  }, 60_000);

  it('x64, ARMv7 and ARMv6 nodes form one mesh on loopback (native and werift mixed), replicate a database on all three and pass a lock', async () => {
    const byTarget = new Map(targets().map((t) => [t.target, t]));
    const cookie = ['--cluster-cookie', 'cross-arch-cookie', '--discovery', 'manual'];
    const seed = await startNode({ dataDir: tempDir('gandalf-xmesh-'), command: byTarget.get('linux-x64')!.command, args: ['--node-id', 'x64', ...cookie] });
    const join = ['--join', `http://127.0.0.1:${seed.mgmtPort}`];
    const guests: NodeProcess[] = [];
    for (const [id, target] of [
      ['armv7', 'linux-armv7'],
      ['armv6', 'linux-armv6'],
    ] as const) {
      const t = byTarget.get(target)!;
      const node = await startNode({
        dataDir: tempDir('gandalf-xmesh-'),
        command: t.command,
        env: t.env,
        args: ['--node-id', id, ...cookie, ...join],
        noWait: true,
      });
      await node.waitHealthy(120_000);
      guests.push(node);
    }
    type Row = { 'node-id': string; state: string; transport: string; arch: string };
    const views = async () => Promise.all([seed, ...guests].map(async (n) => (await n.get('/cluster/nodes')).body.nodes as Row[]));
    const deadline = Date.now() + 120_000;
    let last: Row[][] = [];
    while (Date.now() < deadline) {
      // A request may be reset while an emulated node is starved; the node is checked below.
      last = await views().catch(() => last);
      if (last.every((v) => v.length === 3 && v.every((r) => r.state === 'alive'))) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(last.map((v) => v.map((r) => `${r['node-id']}:${r.state}`).sort())).toEqual(Array(3).fill(['armv6:alive', 'armv7:alive', 'x64:alive']));
    const fromSeed = new Map(last[0]!.map((r) => [r['node-id'], r]));
    expect(fromSeed.get('armv7')).toMatchObject({ arch: 'arm', transport: 'werift' });
    expect(fromSeed.get('armv6')).toMatchObject({ arch: 'arm', transport: 'werift' });
    expect(fromSeed.get('x64')).toMatchObject({ arch: 'x64', transport: 'native' });

    // The mixed-architecture cluster replicates a database on all three boards…
    const all = [seed, ...guests];
    const until = async (what: string, probe: () => Promise<boolean>, ms: number) => {
      const end = Date.now() + ms;
      while (!(await probe().catch(() => false))) {
        if (Date.now() > end) {
          const tails = all.map((n) => `--- ${n.url}\n${n.log.split('\n').slice(-25).join('\n')}`).join('\n');
          throw new Error(`timed out waiting for ${what}\n${tails}`);
        }
        await new Promise((r) => setTimeout(r, 500));
      }
    };
    let answer = '';
    await until(
      'a write through the ARMv6 node',
      async () => {
        const r = await guests[1]!.post('/db/execute?db=mixed&redundancy=3', ['CREATE TABLE IF NOT EXISTS t(v UNIQUE)']);
        answer = `${r.status} ${JSON.stringify(r.body)}`;
        return r.status === 200;
      },
      120_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\nlast answer: ${answer}`);
    });
    // Emulated boards are slow enough for membership to suspect one now and then: a write that ends 503
    // (outcome_unknown while its link was cut, no_quorum) is retried, a bounded number of times; the insert is
    // idempotent, so one that did apply is not counted twice.
    for (let i = 0; i < 20; i++) {
      const answers: string[] = [];
      for (let attempt = 0; attempt < 5; attempt++) {
        const r = await all[(i + attempt) % 3]!.post('/db/execute?db=mixed', [['INSERT OR IGNORE INTO t VALUES(?)', i]]);
        answers.push(`${r.status} ${JSON.stringify(r.body)}`);
        if (r.status === 200) break;
        expect(r.status, answers.join('\n')).toBe(503);
        await new Promise((res) => setTimeout(res, 1_000));
      }
      expect(answers[answers.length - 1], answers.join('\n')).toMatch(/^200 /);
    }
    for (const n of all) {
      await until(
        `${n.url} to hold all rows`,
        async () => {
          const r = await n.get('/db/query?db=mixed&level=none&q=SELECT+count(*),sum(v)+FROM+t');
          return r.status === 200 && JSON.stringify(r.body.results[0].values) === '[[20,190]]';
        },
        60_000,
      );
    }
    // …and passes a lock between architectures with increasing fencing tokens.
    const sArm = (await guests[0]!.post('/session?ttl=30s', {})).body.session;
    const sX64 = (await seed.post('/session?ttl=30s', {})).body.session;
    const got = await guests[0]!.post(`/lock/shared/acquire?session=${sArm}&timeout=0`, {});
    expect(got.status).toBe(200);
    expect((await seed.post(`/lock/shared/acquire?session=${sX64}&timeout=0`, {})).body.code).toBe('lock_busy');
    const waiting = seed.post(`/lock/shared/acquire?session=${sX64}&timeout=60s`, {});
    expect((await guests[1]!.get('/lock/shared')).body.holder.node).toBe('armv7');
    expect((await guests[0]!.post(`/lock/shared/release?session=${sArm}`, {})).status).toBe(200);
    const passed = await waiting;
    expect(passed.status).toBe(200);
    expect(passed.body.token).toBeGreaterThan(got.body.token);
    expect((await guests[1]!.get('/lock/shared?level=strong')).body.holder.node).toBe('x64');
    for (const n of [...guests, seed]) await n.stop('SIGKILL');
  }, 420_000);
});

/**
 * An SD-card image boots: the Raspberry Pi 64-bit image (built by
 * scripts/build-image.mjs from Debian's packages) boots under
 * qemu-system-aarch64 ("virt" machine, the image's own kernel and initrd) until
 * gandalf-node.service answers on its API. The test writes the card's
 * gandalf.conf into the FAT partition first, as a user would, and checks that
 * first boot applied it, grew the root file system and set a unique hostname.
 * The guest's network is qemu's user mode with restrict=on: it reaches
 * nothing; only a port forward on 127.0.0.1 reaches the guest's API.
 */
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROOT, freePort, requireBuilt } from '../helpers/node-process';
import { runLong } from '../helpers/run';
import { tempDir } from '../helpers/tmp';

const VERSION = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version as string;
const BOARD = 'rpi-arm64';
const IMAGE = path.join(ROOT, 'dist/images', `gandalf-node-${VERSION}-${BOARD}.img`);
const BOOT_OFFSET = '4M'; // genimage puts the FAT partition at 4 MiB
const BOOT_TIMEOUT_MS = 12 * 60_000;

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error('building an image needs root (CI runs as root); not skipped');
  requireBuilt(path.join(ROOT, 'dist', `gandalf-node_${VERSION}_arm64.deb`));
  await runLong(process.execPath, [path.join(ROOT, 'scripts/build-image.mjs'), BOARD, '--no-compress'], { timeoutMs: 30 * 60_000 });
}, 31 * 60_000);

describe('SD-card image', () => {
  it(`the ${BOARD} image boots under qemu-system-aarch64 and serves its API`, async () => {
    const dir = tempDir('gandalf-boot-');
    const disk = path.join(dir, 'card.img');
    copyFileSync(requireBuilt(IMAGE), disk);
    const boot = `${disk}@@${BOOT_OFFSET}`;
    const files = execFileSync('mdir', ['-b', '-i', boot, '::']).toString().split('\n').map((l) => l.replace(/^::\//, '').trim());
    const kernel = files.find((f) => /^vmlinuz-/.test(f));
    const initrd = files.find((f) => /^initrd\.img-/.test(f));
    expect(kernel, files.join(' ')).toBeDefined();
    expect(initrd, files.join(' ')).toBeDefined();
    for (const f of [kernel!, initrd!]) execFileSync('mcopy', ['-i', boot, `::${f}`, path.join(dir, f)]);
    const conf = path.join(dir, 'gandalf.conf');
    writeFileSync(conf, 'cluster-name = imagetest\ncluster-cookie = image-test-cookie-123\nhttp-bind = 0.0.0.0:8420\ndiscovery = none\nssh-key = ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTheImageTestOnly test@ci\n');
    execFileSync('mcopy', ['-o', '-i', boot, conf, '::gandalf.conf']);
    truncateSync(disk, statSync(disk).size + 1024 * 1024 * 1024); // a bigger card: first boot grows the root
    const port = await freePort();
    const consoleLog: string[] = [];
    const started = Date.now();
    const vm = spawn('qemu-system-aarch64', [
      '-M', 'virt', '-cpu', 'cortex-a53', '-smp', '2', '-m', '1024', '-nographic', '-no-reboot',
      '-kernel', path.join(dir, kernel!), '-initrd', path.join(dir, initrd!),
      '-append', 'root=LABEL=gndroot rw console=ttyAMA0 panic=10',
      '-drive', `if=none,file=${disk},format=raw,id=card`, '-device', 'virtio-blk-device,drive=card',
      '-netdev', `user,id=net,restrict=on,hostfwd=tcp:127.0.0.1:${port}-:8420`, '-device', 'virtio-net-device,netdev=net',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    vm.stdout.on('data', (d: Buffer) => consoleLog.push(d.toString()));
    vm.stderr.on('data', (d: Buffer) => consoleLog.push(d.toString()));
    try {
      let healthy = false;
      while (!healthy && Date.now() - started < BOOT_TIMEOUT_MS && vm.exitCode === null) {
        healthy = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(3000) }).then((r) => r.status === 200, () => false);
        if (!healthy) await new Promise((r) => setTimeout(r, 2000));
      }
      const log = consoleLog.join('');
      expect(healthy, `the node never answered; console:\n${log.slice(-6000)}`).toBe(true);
      console.log(`${BOARD} image: power-on to gandalf-node API answering in ${((Date.now() - started) / 1000).toFixed(0)} s (qemu TCG, 2 vCPU)`);
      const status = (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as Record<string, any>;
      expect(status.hostname).toMatch(/^gandalf-[0-9a-f]{8}$/);
      expect(status.arch).toBe('arm64');
      expect(status.cluster).toMatchObject({ name: 'imagetest', open: false });
      expect(status.data_dir).toBe('/var/lib/gandalf-node');
      const w = await fetch(`http://127.0.0.1:${port}/db/execute`, { method: 'POST', body: JSON.stringify(['CREATE TABLE boot(x)', "INSERT INTO boot VALUES('ok')"]) });
      expect(w.status).toBe(200);
      expect(log).toMatch(/gandalf-firstboot: root file system on \S+ grown to the card/);
      expect(log).toMatch(/gandalf-firstboot: ssh key authorized for root/);
      expect(log).toMatch(/gandalf-firstboot: applied \/boot\/firmware\/gandalf\.conf/);
    } finally {
      vm.kill('SIGKILL');
    }
  }, BOOT_TIMEOUT_MS + 60_000);
});

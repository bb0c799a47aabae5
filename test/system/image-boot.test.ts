/**
 * SD-card images (scripts/build-image.mjs, from Debian's packages only), one
 * per board of images/boards.json, each built once for this file (two builds
 * at a time; every test waits for its own board's build only):
 *
 *  - rpi-arm64 and rpi-armhf boot under qemu's "virt" machine with the image's
 *    own kernel and initrd (qemu-system-aarch64 -cpu cortex-a53;
 *    qemu-system-arm -cpu cortex-a15: linux-image-armmp supports virt) until
 *    gandalf-node.service answers on its API.
 *  - cubietruck (Allwinner A20) is checked statically: the u-boot SPL at 8 KiB
 *    with a valid sunxi eGON header, the partitions after it, and
 *    extlinux/extlinux.conf naming files that are on the boot partition. The
 *    board and its u-boot stage cannot be emulated by this qemu (7.2): its only
 *    Allwinner machine, "cubieboard", is an A10 (one Cortex-A8) with no boot
 *    ROM emulation (with the card as SD card nothing runs; -bios is refused),
 *    and the card's A20 u-boot, put into its DRAM directly, prints "Model:
 *    Cubietech Cubietruck", "DRAM: 1 GiB" and hangs on the 64-bit (LPAE)
 *    Cortex-A7 system registers the A8 lacks. So the board's root file system
 *    (armhf userland, the same linux-image-armmp kernel) boots under "virt"
 *    from the very kernel and initrd its extlinux.conf names, until the API
 *    answers.
 *  - rpi-armel (Raspberry Pi Zero / 1, ARMv6) boots under qemu's raspi0
 *    machine (one ARM1176 core) with the card's own kernel, initrd and Pi Zero
 *    device tree (one qemu gap worked around: see its test), the card as SD
 *    card and a USB network device, until the API answers.
 *  - Every image is also checked statically: partition table, the FAT
 *    partition's boot files (config.txt or extlinux.conf names a kernel and an
 *    initrd that are there; the root is found by label), gandalf.conf, the
 *    installed gandalf-node package of the board's architecture, the enabled
 *    units, no SSH host keys and an empty machine-id.
 *
 * Before each boot the test writes the card's gandalf.conf into the FAT
 * partition, as a user would, and checks that first boot applied it, grew the
 * root file system and set a unique hostname. The guest's network is qemu's
 * user mode with restrict=on: it reaches nothing; only a port forward on
 * 127.0.0.1 reaches the guest's API.
 */
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, copyFileSync, openSync, readFileSync, readSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROOT, freePort, requireBuilt } from '../helpers/node-process';
import { runLong } from '../helpers/run';
import { tempDir } from '../helpers/tmp';

const VERSION = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version as string;
const BOARDS = JSON.parse(readFileSync(path.join(ROOT, 'images/boards.json'), 'utf8')) as Record<string, any>;
const BOOT_OFFSET = '4M'; // genimage puts the FAT partition at 4 MiB
const BUILD_TIMEOUT_MS = 30 * 60_000;
const BOOT_TIMEOUT_MS = 15 * 60_000;
/** A console silent this long means the emulated board hung. */
const CONSOLE_STALL_MS = 4 * 60_000;
// Build order: the boards booted first are built first.
const ORDER = ['rpi-arm64', 'rpi-armhf', 'cubietruck', 'rpi-armel'];
const PARALLEL_BUILDS = 2;

const image = (board: string) => path.join(ROOT, 'dist/images', `gandalf-node-${VERSION}-${board}.img`);
const builds = new Map<string, Promise<number>>();

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error('building an image needs root (CI runs as root); not skipped');
  expect(
    Object.keys(BOARDS)
      .filter((b) => b !== 'comment')
      .sort(),
  ).toEqual([...ORDER].sort());
  // The images install these .debs: a stale one (older than the unit it should carry) fails late and obscurely at boot.
  const unit = readFileSync(path.join(ROOT, 'platform/systemd/gandalf-node.service'), 'utf8');
  for (const board of ORDER) {
    const deb = requireBuilt(path.join(ROOT, 'dist', `gandalf-node_${VERSION}_${BOARDS[board].arch}.deb`));
    const debUnit = execFileSync('sh', ['-c', 'dpkg-deb --fsys-tarfile "$1" | tar -xO ./lib/systemd/system/gandalf-node.service', 'sh', deb]).toString();
    expect(debUnit, `${path.basename(deb)} is stale: run "node scripts/build-deb.mjs"`).toBe(unit);
  }
  // A small pool: each build waits for a slot, then for its mmdebstrap (qemu-user) run.
  let slots = PARALLEL_BUILDS;
  const waiting: (() => void)[] = [];
  const slot = () => (slots > 0 ? (slots--, Promise.resolve()) : new Promise<void>((r) => waiting.push(r)));
  const release = () => (waiting.length ? waiting.shift()!() : slots++);
  for (const board of ORDER) {
    const build = slot().then(async () => {
      const started = Date.now();
      try {
        await runLong(process.execPath, [path.join(ROOT, 'scripts/build-image.mjs'), board, '--no-compress'], { timeoutMs: BUILD_TIMEOUT_MS });
      } finally {
        release();
      }
      const seconds = (Date.now() - started) / 1000;
      console.log(`${board} image: built in ${seconds.toFixed(0)} s, ${(statSync(image(board)).size / 2 ** 20).toFixed(0)} MiB raw`);
      return seconds;
    });
    build.catch(() => {}); // reported by the board's test
    builds.set(board, build);
  }
});

/** The board's image, once its build (started by beforeAll) is done. */
async function built(board: string): Promise<string> {
  await builds.get(board);
  return requireBuilt(image(board));
}

interface Partition {
  start: number;
  size: number;
  type: string;
  bootable?: boolean;
}

/** Read-only views into an image: MBR, FAT boot partition (mtools), ext4 root (debugfs, no mount). */
function inspect(img: string) {
  const parts = (JSON.parse(execFileSync('sfdisk', ['--json', img]).toString()).partitiontable.partitions as Partition[]) ?? [];
  const boot = `${img}@@${BOOT_OFFSET}`;
  const rootfs = `${img}?offset=${parts[1].start * 512}`;
  const fatFiles = execFileSync('mdir', ['-/', '-b', '-i', boot, '::'])
    .toString()
    .split('\n')
    .map((l) => l.trim().replace(/^::\//, ''))
    .filter((l) => l && !l.endsWith('/'));
  const debugfs = (cmd: string) => execFileSync('debugfs', ['-R', cmd, rootfs], { stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 * 2 ** 20 }).toString();
  return {
    parts,
    boot,
    fatFiles,
    fatLabel: execFileSync('mlabel', ['-s', '-i', boot, '::']).toString().trim(),
    fat: (name: string) => execFileSync('mtype', ['-i', boot, `::${name}`]).toString(),
    rootFile: (p: string) => debugfs(`cat ${p}`),
    /** `stat` of a path in the root file system ("" when it does not exist). */
    rootStat: (p: string) => debugfs(`stat ${p}`),
    rootList: (dir: string) =>
      debugfs(`ls -p ${dir}`)
        .split('\n')
        .map((l) => l.split('/')[5])
        .filter((n) => n && n !== '.' && n !== '..'),
  };
}

/** What every board's image has, whatever its boot loader. */
function checkCommon(board: string, v: ReturnType<typeof inspect>) {
  const arch = BOARDS[board].arch as string;
  expect(v.parts).toHaveLength(2);
  expect(v.parts[0]).toMatchObject({ start: 8192, type: 'c', bootable: true }); // FAT32 LBA at 4 MiB
  expect(v.parts[1]).toMatchObject({ start: v.parts[0].start + v.parts[0].size, type: '83' });
  expect(v.fatLabel).toMatch(/GNDBOOT/);
  expect(v.fat('gandalf.conf')).toBe(readFileSync(path.join(ROOT, 'images/gandalf.conf'), 'utf8'));
  const status = v.rootFile('/var/lib/dpkg/status');
  const pkg = (name: string) => status.split('\n\n').find((s) => s.startsWith(`Package: ${name}\n`)) ?? '';
  expect(pkg('gandalf-node')).toMatch(/^Status: install ok installed$/m);
  expect(pkg('gandalf-node')).toMatch(new RegExp(`^Architecture: ${arch}$`, 'm'));
  expect(pkg('gandalf-node')).toMatch(new RegExp(`^Version: ${VERSION.replace(/\./g, '\\.')}$`, 'm'));
  expect(pkg('dpkg')).toMatch(new RegExp(`^Architecture: ${arch}$`, 'm'));
  for (const p of BOARDS[board].packages as string[]) expect(pkg(p), p).toMatch(/^Status: install ok installed$/m);
  for (const p of ['openssh-server', 'systemd-sysv', 'cloud-guest-utils']) expect(pkg(p), p).toMatch(/^Status: install ok installed$/m);
  // What the .deb installs.
  for (const f of ['/usr/bin/gandalf-node', '/lib/systemd/system/gandalf-node.service', '/etc/gandalf-node/gandalf.conf'])
    expect(v.rootStat(f), f).toMatch(/Type: regular/);
  expect(v.rootStat('/usr/bin/gandalf-node')).toMatch(/Mode:\s+0755/);
  expect(v.rootStat('/usr/local/sbin/gandalf-firstboot')).toMatch(/Mode:\s+0755/);
  expect(v.rootList('/etc/systemd/system/multi-user.target.wants')).toEqual(
    expect.arrayContaining(['gandalf-firstboot.service', 'gandalf-node.service', 'systemd-networkd.service', 'ssh.service']),
  );
  expect(v.rootFile('/etc/systemd/network/20-wired.network')).toMatch(/DHCP=yes/);
  expect(v.rootFile('/etc/fstab')).toMatch(/^LABEL=GNDBOOT \/boot\/firmware vfat/m);
  expect(v.rootFile('/etc/fstab')).toMatch(/^LABEL=gndroot \/ ext4/m);
  // Every card makes its own identity on first boot.
  expect(v.rootList('/etc/ssh').filter((f) => f.startsWith('ssh_host_'))).toEqual([]);
  expect(v.rootStat('/etc/machine-id')).toMatch(/Size: 0\b/);
  expect(v.rootStat('/boot/firmware')).toMatch(/Type: directory/);
  expect(v.rootList('/boot/firmware')).toEqual([]); // its files are on the FAT partition
}

/** config.txt of raspi-firmware: the kernel and initrd it names are on the FAT partition; cmdline.txt finds the root. */
function checkRaspiBoot(v: ReturnType<typeof inspect>) {
  const config = v.fat('config.txt');
  const kernel = /^kernel=(\S+)/m.exec(config)?.[1];
  const initrd = /^initramfs (\S+)/m.exec(config)?.[1];
  expect(kernel, config).toBeDefined();
  expect(initrd, config).toBeDefined();
  expect(v.fatFiles).toEqual(expect.arrayContaining([kernel, initrd, 'cmdline.txt', 'bootcode.bin', 'start.elf', 'fixup.dat']));
  expect(v.fat('cmdline.txt')).toMatch(/\broot=LABEL=gndroot\b/);
  return { kernel: kernel!, initrd: initrd!, config };
}

interface BootOptions {
  qemu: string;
  machine: string[]; // machine, CPU, vCPUs, memory
  console: string;
  arch: string; // process.arch inside the guest
  kernel?: string; // names on the FAT partition (default: the vmlinuz-* / initrd.img-* there)
  initrd?: string;
  /** raspi machines: the card is an SD card (a power of two in size), the network a USB device, the dtb from the card. */
  raspi?: { dtb: string; patchDtb?: (dtb: Buffer) => Buffer };
}

/** Boots a copy of the card under qemu, with gandalf.conf edited; returns power-on to API seconds. */
async function bootUntilApi(board: string, o: BootOptions): Promise<number> {
  const dir = tempDir('gandalf-boot-');
  const disk = path.join(dir, 'card.img');
  copyFileSync(await built(board), disk);
  const boot = `${disk}@@${BOOT_OFFSET}`;
  const files = execFileSync('mdir', ['-b', '-i', boot, '::'])
    .toString()
    .split('\n')
    .map((l) => l.replace(/^::\//, '').trim());
  const kernel = o.kernel ?? files.find((f) => /^vmlinuz-/.test(f));
  const initrd = o.initrd ?? files.find((f) => /^initrd\.img-/.test(f));
  expect(kernel, files.join(' ')).toBeDefined();
  expect(initrd, files.join(' ')).toBeDefined();
  const kernelFile = path.join(dir, 'vmlinuz');
  const initrdFile = path.join(dir, 'initrd.img');
  execFileSync('mcopy', ['-i', boot, `::${kernel}`, kernelFile]);
  execFileSync('mcopy', ['-i', boot, `::${initrd}`, initrdFile]);
  const conf = path.join(dir, 'gandalf.conf');
  writeFileSync(
    conf,
    'cluster-name = imagetest\ncluster-cookie = image-test-cookie-123\nhttp-bind = 0.0.0.0:8420\ndiscovery = none\nssh-key = ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTheImageTestOnly test@ci\n',
  );
  execFileSync('mcopy', ['-o', '-i', boot, conf, '::gandalf.conf']);
  // A bigger card: first boot grows the root (an emulated SD card's size is a power of two).
  const size = statSync(disk).size + 1024 * 1024 * 1024;
  truncateSync(disk, o.raspi ? 2 ** Math.ceil(Math.log2(size)) : size);
  const port = await freePort();
  const hostfwd = `user,id=net,restrict=on,hostfwd=tcp:127.0.0.1:${port}-:8420`;
  const hardware: string[] = [];
  if (o.raspi) {
    const dtbFile = path.join(dir, 'board.dtb');
    execFileSync('mcopy', ['-i', boot, `::${o.raspi.dtb}`, dtbFile]);
    if (o.raspi.patchDtb) writeFileSync(dtbFile, o.raspi.patchDtb(readFileSync(dtbFile)));
    hardware.push('-dtb', dtbFile, '-drive', `if=sd,file=${disk},format=raw`, '-netdev', hostfwd, '-device', 'usb-net,netdev=net');
  } else {
    hardware.push(
      '-drive',
      `if=none,file=${disk},format=raw,id=card`,
      '-device',
      'virtio-blk-device,drive=card',
      '-netdev',
      hostfwd,
      '-device',
      'virtio-net-device,netdev=net',
    );
  }
  const consoleLog: string[] = [];
  const started = Date.now();
  const args = [
    ...o.machine,
    '-nographic',
    '-no-reboot',
    '-kernel',
    kernelFile,
    '-initrd',
    initrdFile,
    '-append',
    `root=LABEL=gndroot rw rootwait console=${o.console} panic=10`,
    ...hardware,
  ];
  let lastOutput = Date.now();
  const powerOn = () => {
    const vm = spawn(o.qemu, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    // the guest's serial console is qemu's stdout; qemu's own messages (stderr) are kept for the
    // log but do not count as the board being alive (seen: a hung raspi0 guest whose USB network
    // stopped taking packets, with qemu printing "Slirp: Failed to send packet" for minutes)
    vm.stdout.on('data', (d: Buffer) => {
      consoleLog.push(d.toString());
      lastOutput = Date.now();
    });
    vm.stderr.on('data', (d: Buffer) => consoleLog.push(d.toString()));
    lastOutput = Date.now();
    return vm;
  };
  let vm = powerOn();
  let powerCycles = 0;
  try {
    let healthy = false;
    while (!healthy && Date.now() - started < BOOT_TIMEOUT_MS && vm.exitCode === null) {
      healthy = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(3000) }).then(
        (r) => r.status === 200,
        () => false,
      );
      // An emulated board whose console stays silent for minutes hung in the
      // emulator (seen twice on a loaded CI machine: raspi0 stopped mid-boot).
      // It is powered off and on once, as one would a real board; a second
      // hang fails the test.
      if (!healthy && Date.now() - lastOutput > CONSOLE_STALL_MS && powerCycles === 0) {
        powerCycles++;
        console.log(`${board} image: console silent for ${CONSOLE_STALL_MS / 1000} s; power-cycling the emulated board once`);
        consoleLog.push(`\n[test: console silent for ${CONSOLE_STALL_MS / 1000} s; power cycle]\n`);
        const gone = new Promise((r) => vm.once('exit', r));
        vm.kill('SIGKILL');
        await gone;
        vm = powerOn();
      }
      if (!healthy) await new Promise((r) => setTimeout(r, 2000));
    }
    const seconds = (Date.now() - started) / 1000;
    const log = consoleLog.join('');
    expect(healthy, `the node never answered; console:\n${log.slice(-6000)}`).toBe(true);
    console.log(
      `${board} image: power-on to gandalf-node API answering in ${seconds.toFixed(0)} s (${o.qemu} ${o.machine.join(' ')}, TCG)${powerCycles ? ', after one power cycle' : ''}`,
    );
    const status = (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as Record<string, any>;
    expect(status.hostname).toMatch(/^gandalf-[0-9a-f]{8}$/);
    expect(status.arch).toBe(o.arch);
    expect(status.cluster).toMatchObject({ name: 'imagetest', open: false });
    expect(status.data_dir).toBe('/var/lib/gandalf-node');
    const w = await fetch(`http://127.0.0.1:${port}/db/execute`, {
      method: 'POST',
      body: JSON.stringify(['CREATE TABLE boot(x)', "INSERT INTO boot VALUES('ok')"]),
    });
    expect(w.status).toBe(200);
    expect(log).toMatch(/gandalf-firstboot: root file system on \S+ grown to the card/);
    expect(log).toMatch(/gandalf-firstboot: ssh key authorized for root/);
    expect(log).toMatch(/gandalf-firstboot: applied \/boot\/firmware\/gandalf\.conf/);
    return seconds;
  } finally {
    vm.kill('SIGKILL');
  }
}

const WAIT_AND_BOOT_MS = BUILD_TIMEOUT_MS + BOOT_TIMEOUT_MS + 60_000;

describe('SD-card image', () => {
  it(
    'the rpi-arm64 image boots under qemu-system-aarch64 and serves its API',
    async () => {
      const v = inspect(await built('rpi-arm64'));
      checkCommon('rpi-arm64', v);
      checkRaspiBoot(v);
      await bootUntilApi('rpi-arm64', {
        qemu: 'qemu-system-aarch64',
        machine: ['-M', 'virt', '-cpu', 'cortex-a53', '-smp', '2', '-m', '1024'],
        console: 'ttyAMA0',
        arch: 'arm64',
      });
    },
    WAIT_AND_BOOT_MS,
  );

  it(
    'the rpi-armhf image boots under qemu-system-arm (virt, Cortex-A15) and serves its API',
    async () => {
      const v = inspect(await built('rpi-armhf'));
      checkCommon('rpi-armhf', v);
      const { kernel } = checkRaspiBoot(v);
      expect(kernel).toMatch(/-armmp$/);
      expect(v.fatFiles).toEqual(expect.arrayContaining(['bcm2836-rpi-2-b.dtb', 'bcm2837-rpi-3-b.dtb']));
      // highmem=off: linux-image-armmp is not an LPAE kernel.
      await bootUntilApi('rpi-armhf', {
        qemu: 'qemu-system-arm',
        machine: ['-M', 'virt,highmem=off', '-cpu', 'cortex-a15', '-smp', '2', '-m', '1024'],
        console: 'ttyAMA0',
        arch: 'arm',
      });
    },
    WAIT_AND_BOOT_MS,
  );

  it(
    'the cubietruck image carries u-boot at 8 KiB and a distro-boot extlinux.conf, and its system boots under qemu-system-arm',
    async () => {
      const img = await built('cubietruck');
      const spec = BOARDS.cubietruck;
      const v = inspect(img);
      checkCommon('cubietruck', v);
      // The sunxi boot ROM loads the SPL from sector 16 (8 KiB): an eGON header
      // (magic "eGON.BT0" after a 4-byte jump, checksum, length) whose checksum holds.
      const fd = openSync(img, 'r');
      const head = Buffer.alloc(64);
      readSync(fd, head, 0, 64, 8192);
      expect(head.subarray(4, 12).toString('latin1')).toBe('eGON.BT0');
      const length = head.readUInt32LE(16);
      expect(length % 4).toBe(0);
      expect(length).toBeGreaterThanOrEqual(8192);
      expect(length).toBeLessThanOrEqual(32 * 1024);
      const spl = Buffer.alloc(length);
      readSync(fd, spl, 0, length, 8192);
      const ubootBin = Buffer.alloc(4 * 2 ** 20 - 8192);
      readSync(fd, ubootBin, 0, ubootBin.length, 8192);
      closeSync(fd);
      const stored = spl.readUInt32LE(12);
      spl.writeUInt32LE(0x5f0a6c39, 12);
      let sum = 0;
      for (let i = 0; i < length; i += 4) sum = (sum + spl.readUInt32LE(i)) >>> 0;
      expect(sum, 'eGON checksum').toBe(stored);
      // The u-boot proper after the SPL (legacy image header or FIT), before the first partition at 4 MiB.
      expect(ubootBin.indexOf(Buffer.from('U-Boot SPL'))).toBeGreaterThan(0);
      expect(ubootBin.indexOf(Buffer.from('fdtfile=sun7i-a20-cubietruck.dtb'))).toBeGreaterThan(0);
      expect(v.parts[0].start * 512).toBeGreaterThanOrEqual(8192 + length);
      // distro boot: extlinux/extlinux.conf on the bootable FAT partition names files that are there.
      const extlinux = v.fat('extlinux/extlinux.conf');
      const entry = (key: string) => new RegExp(`^\\s*${key}\\s+/(\\S+)`, 'm').exec(extlinux)?.[1];
      const kernel = entry('kernel');
      const initrd = entry('initrd');
      const fdt = entry('fdt');
      expect([kernel, initrd, fdt], extlinux).not.toContain(undefined);
      expect(v.fatFiles).toEqual(expect.arrayContaining([kernel, initrd, fdt, 'extlinux/extlinux.conf', 'gandalf.conf']));
      expect(kernel).toMatch(/^vmlinuz-.*-armmp$/);
      expect(path.basename(fdt!)).toBe(spec.dtb);
      expect(extlinux).toMatch(/^\s*append .*\broot=LABEL=gndroot\b.*\bconsole=ttyS0,115200\b/m);
      const dtb = Buffer.from(execFileSync('mtype', ['-i', v.boot, `::${fdt}`]));
      expect(dtb.readUInt32BE(0)).toBe(0xd00dfeed); // a flattened device tree
      expect(dtb.indexOf(Buffer.from('cubietech,cubietruck\0allwinner,sun7i-a20'))).toBeGreaterThan(0);
      // The A20 board and its u-boot cannot be emulated here (see the top of this file):
      // the same root file system, kernel and initrd boot under "virt" instead.
      await bootUntilApi('cubietruck', {
        qemu: 'qemu-system-arm',
        machine: ['-M', 'virt,highmem=off', '-cpu', 'cortex-a15', '-smp', '2', '-m', '1024'],
        console: 'ttyAMA0',
        arch: 'arm',
        kernel,
        initrd,
      });
    },
    WAIT_AND_BOOT_MS,
  );

  it(
    'the rpi-armel image has the Pi 1 / Zero boot files and boots under qemu-system-arm -M raspi0 (ARM1176) and serves its API',
    async () => {
      const v = inspect(await built('rpi-armel'));
      checkCommon('rpi-armel', v);
      const { kernel, initrd } = checkRaspiBoot(v);
      expect(kernel).toMatch(/-rpi$/);
      expect(initrd).toMatch(/-rpi$/);
      // Pi 1 / Zero device trees, as the Pi's firmware looks them up.
      expect(v.fatFiles).toEqual(
        expect.arrayContaining(['bcm2835-rpi-zero.dtb', 'bcm2835-rpi-zero-w.dtb', 'bcm2835-rpi-b-plus.dtb', 'bcm2835-rpi-a-plus.dtb']),
      );
      // The kernel the firmware loads is an ARM zImage of the version the root file system has modules for.
      const version = kernel.replace(/^vmlinuz-/, '');
      expect(v.rootStat(`/lib/modules/${version}/modules.dep`)).toMatch(/Type: regular/);
      const zimage = Buffer.from(execFileSync('mtype', ['-i', v.boot, `::${kernel}`], { maxBuffer: 64 * 2 ** 20 }));
      expect(zimage.readUInt32LE(0x24)).toBe(0x016f2818); // zImage magic
      // linux-image-rpi is an ARMv6-only kernel (no Cortex-A support, no GIC or
      // architected timer) and cannot run on "virt"; qemu's raspi0 machine
      // (BCM2835, one ARM1176 core, 512 MiB) runs it with the card's own Pi Zero
      // device tree, the card as SD card (sdhost) and a USB network device on the
      // dwc2 host (the Zero has no Ethernet; the guest sees it as usb0). One
      // emulation gap is worked around: qemu 7.2 does not implement the BCM2835
      // AXI "ASB" registers, and the kernel's power-domain driver (started when
      // the PM node names an "asb" register range) dies on an external abort
      // reading them. The copy of the dtb given to qemu renames that range
      // (same length, so the blob stays valid); the card's own dtb is unchanged.
      const patchDtb = (dtb: Buffer) => {
        const names = Buffer.from('pm\0asb\0', 'latin1');
        const at = dtb.indexOf(names);
        expect(at, 'reg-names "pm", "asb" in bcm2835-rpi-zero.dtb').toBeGreaterThan(0);
        const copy = Buffer.from(dtb);
        copy.write('pm\0xxx\0', at, 'latin1');
        return copy;
      };
      await bootUntilApi('rpi-armel', {
        qemu: 'qemu-system-arm',
        machine: ['-M', 'raspi0', '-m', '512'],
        console: 'ttyAMA0',
        arch: 'arm',
        raspi: { dtb: 'bcm2835-rpi-zero.dtb', patchDtb },
      });
    },
    WAIT_AND_BOOT_MS,
  );
});

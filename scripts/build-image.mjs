#!/usr/bin/env node
// Builds a flashable SD-card image for a board (images/boards.json),
// only from Debian's packages and without loop mounts:
//   mmdebstrap (root file system with the kernel, firmware or u-boot, systemd
//   and the gandalf-node .deb, enabled) -> FAT boot partition (mtools) and ext4
//   root (mke2fs -d) -> genimage (MBR disk image, plus the raw u-boot image at
//   its offset for u-boot boards) -> xz, SHA-256 and a flashing note.
// Boot flavours ("boot" in boards.json): "raspi-firmware" (Raspberry Pi: the
// raspi-firmware package fills the FAT partition with config.txt, cmdline.txt,
// kernel, initrd and dtbs) and "u-boot" (e.g. Cubietruck: images/uboot-boot-partition
// writes kernel, initrd, dtb and extlinux/extlinux.conf there).
// Needs root, binfmt for the board's architecture (scripts/ensure-test-deps.sh)
// and dist/gandalf-node_<version>_<arch>.deb (npm run package && npm run deb).
// Usage: node scripts/build-image.mjs BOARD [--no-compress]
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { hostDebianSources } from './apt-sources.mjs';

const root = new URL('..', import.meta.url).pathname;
const boards = JSON.parse(readFileSync(path.join(root, 'images/boards.json'), 'utf8'));
const [board, ...flags] = process.argv.slice(2);
const BOOT_MIB = 256;
const BASE_PACKAGES = [
  'systemd-sysv',
  'udev',
  'kmod',
  'initramfs-tools',
  'e2fsprogs',
  'cloud-guest-utils',
  'fdisk',
  'dosfstools',
  'iproute2',
  'netbase',
  'openssh-server',
];
const started = Date.now();

function step(message) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${message}`);
}

function run(cmd, args, options = {}) {
  execFileSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'], ...options });
}

/** Runs a command with its output shown live and kept in `log`; returns the exit status and that output. */
function runLogged(log, cmd, args) {
  const r = spawnSync('bash', ['-c', 'set -o pipefail; log=$1; shift; "$@" 2>&1 | tee "$log"', 'run', log, cmd, ...args], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  return { status: r.status ?? 1, output: existsSync(log) ? readFileSync(log, 'utf8') : '' };
}

if (!board || !boards[board] || board === 'comment') {
  console.error(
    `usage: build-image.mjs BOARD [--no-compress]; boards: ${Object.keys(boards)
      .filter((b) => b !== 'comment')
      .join(', ')}`,
  );
  process.exit(2);
}
if (process.getuid?.() !== 0) {
  console.error('build-image: needs root (mmdebstrap runs maintainer scripts in the new root)');
  process.exit(1);
}
const spec = boards[board];
const bootKind = spec.boot ?? 'raspi-firmware';
if (!['raspi-firmware', 'u-boot'].includes(bootKind)) throw new Error(`board ${board}: unknown boot "${bootKind}"`);
if (bootKind === 'u-boot' && !(spec.uboot?.image && spec.uboot?.offset >= 512 && spec.dtb))
  throw new Error(`board ${board}: u-boot boards need uboot.image, uboot.offset and dtb`);
const version = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).version;
const deb = path.join(root, 'dist', `gandalf-node_${version}_${spec.arch}.deb`);
if (!existsSync(deb)) {
  console.error(`build-image: ${path.relative(root, deb)} is missing: run "npm run package && npm run deb"`);
  process.exit(1);
}
const outDir = path.join(root, 'dist/images');
mkdirSync(outDir, { recursive: true });
const work = mkdtempSync(path.join(os.tmpdir(), `gandalf-image-${board}-`));
try {
  const rootfs = path.join(work, 'rootfs');
  const sources = path.join(work, 'sources');
  let sourceText = hostDebianSources('bookworm', ['main', 'non-free-firmware']);
  const image = path.join(root, 'images');
  const bootHooks =
    bootKind === 'raspi-firmware'
      ? [
          // raspi-firmware writes cmdline.txt from this when the kernel is installed.
          `--setup-hook=mkdir -p "$1/etc/default" && echo 'ROOTPART=LABEL=gndroot' > "$1/etc/default/raspi-firmware"`,
        ]
      : [
          // The kernel and initramfs hooks fill /boot/firmware (the FAT partition) for u-boot.
          `--setup-hook=mkdir -p "$1/etc/default" && printf 'DTB=%s\\nCONSOLE=%s\\n' '${spec.dtb}' '${spec.console ?? 'ttyS0,115200'}' > "$1/etc/default/gandalf-boot"`,
          `--setup-hook=mkdir -p "$1/etc/kernel/postinst.d" "$1/etc/initramfs/post-update.d" "$1/boot/firmware" && install -m 755 ${path.join(image, 'uboot-boot-partition')} "$1/etc/kernel/postinst.d/zz-gandalf-boot-partition" && install -m 755 ${path.join(image, 'uboot-boot-partition')} "$1/etc/initramfs/post-update.d/zz-gandalf-boot-partition"`,
          '--customize-hook=chroot "$1" /etc/kernel/postinst.d/zz-gandalf-boot-partition',
        ];
  const mmdebstrapArgs = () => [
    `--arch=${spec.arch}`,
    '--variant=minbase',
    // Keep the configuration the setup hooks put in place (e.g. /etc/default/raspi-firmware).
    '--dpkgopt=force-confold',
    '--dpkgopt=force-confdef',
    `--include=${[...BASE_PACKAGES, ...spec.packages].join(',')}`,
    ...bootHooks,
    // A listed set of initramfs modules: "most" copies thousands with emulated processes (minutes each run).
    `--setup-hook=mkdir -p "$1/etc/initramfs-tools/conf.d" && echo MODULES=list > "$1/etc/initramfs-tools/conf.d/gandalf"`,
    `--setup-hook=cp ${path.join(image, 'initramfs-modules')} "$1/etc/initramfs-tools/modules"`,
    // Hooks run on this host with the new root in $1.
    `--customize-hook=cp ${deb} "$1/tmp/" && chroot "$1" dpkg -i /tmp/${path.basename(deb)} && rm "$1/tmp/${path.basename(deb)}"`,
    `--customize-hook=install -m 755 ${path.join(image, 'gandalf-firstboot')} "$1/usr/local/sbin/"`,
    `--customize-hook=install -m 644 ${path.join(image, 'gandalf-firstboot.service')} "$1/etc/systemd/system/"`,
    `--customize-hook=mkdir -p "$1/etc/systemd/network" && install -m 644 ${path.join(image, '20-wired.network')} "$1/etc/systemd/network/"`,
    '--customize-hook=chroot "$1" systemctl enable gandalf-firstboot.service gandalf-node.service systemd-networkd.service ssh.service',
    // Every card makes its own identity on first boot: machine-id and SSH host keys.
    '--customize-hook=rm -f "$1"/etc/ssh/ssh_host_* && : > "$1/etc/machine-id"',
    `--customize-hook=printf 'LABEL=gndroot / ext4 defaults,noatime 0 1\\nLABEL=GNDBOOT /boot/firmware vfat defaults 0 2\\n' > "$1/etc/fstab"`,
    '--customize-hook=echo gandalf > "$1/etc/hostname"',
    'bookworm',
    rootfs,
    sources,
  ];
  // A mirror can serve a foreign-architecture index that does not match its
  // Release file (a sync in progress, or a stale cache in front of it): retry;
  // if one suite's index stays broken, build without that suite, loudly (the
  // flashing note says so too), unless GANDALF_IMAGE_STRICT_SOURCES=1.
  const dropped = [];
  for (let attempt = 1; ; attempt++) {
    writeFileSync(sources, sourceText);
    rmSync(rootfs, { recursive: true, force: true });
    step(`root file system for ${board} (${spec.arch}) with mmdebstrap${attempt > 1 ? ` (attempt ${attempt})` : ''}`);
    const r = runLogged(path.join(work, 'mmdebstrap.log'), 'mmdebstrap', mmdebstrapArgs());
    if (r.status === 0) break;
    const broken = [
      ...new Set([...r.output.matchAll(/Failed to fetch \S+\/dists\/([^/\s]+)\/\S+\s+(?:File has unexpected size|Hash Sum mismatch)/g)].map((m) => m[1])),
    ];
    if (broken.length === 0 || attempt >= 3) throw new Error(`mmdebstrap failed (exit ${r.status})`);
    if (attempt < 2) {
      console.error(`build-image: the mirror's index of ${broken.join(', ')} (${spec.arch}) is inconsistent; retrying in 15 s`);
      spawnSync('sleep', ['15']);
      continue;
    }
    if (process.env.GANDALF_IMAGE_STRICT_SOURCES === '1' || broken.includes('bookworm'))
      throw new Error(`the mirror's index of ${broken.join(', ')} stays inconsistent`);
    console.error(
      `build-image: WARNING: the mirror's index of ${broken.join(', ')} (${spec.arch}) stays inconsistent: building WITHOUT ${broken.join(', ')}; run "apt update && apt upgrade" on the board`,
    );
    dropped.push(...broken);
    sourceText = sourceText
      .split('\n\n')
      .map((stanza) =>
        stanza.replace(
          /^Suites: (.*)$/m,
          (_, suites) =>
            `Suites: ${suites
              .split(' ')
              .filter((x) => !broken.includes(x))
              .join(' ')}`,
        ),
      )
      .filter((stanza) => !/^Suites: *$/m.test(stanza))
      .join('\n\n');
  }

  step('boot partition (FAT) from /boot/firmware, with gandalf.conf');
  const firmware = path.join(rootfs, 'boot/firmware');
  cpSync(path.join(image, 'gandalf.conf'), path.join(firmware, 'gandalf.conf'));
  const bootImg = path.join(work, 'boot.vfat');
  run('mkfs.vfat', ['-C', '-F', '32', '-n', 'GNDBOOT', bootImg, String(BOOT_MIB * 1024)], { stdio: ['ignore', 'ignore', 'inherit'] });
  const bootFiles = readdirSync(firmware).map((f) => path.join(firmware, f));
  run('mcopy', ['-s', '-i', bootImg, ...bootFiles, '::']);
  for (const f of readdirSync(firmware)) rmSync(path.join(firmware, f), { recursive: true, force: true });

  step('root partition (ext4, filled with mke2fs -d: no loop mount)');
  const usedMiB = Number(execFileSync('du', ['-sm', rootfs]).toString().split(/\s/)[0]);
  const rootMiB = Math.ceil(usedMiB * 1.3) + 256;
  const rootImg = path.join(work, 'root.ext4');
  run('mke2fs', ['-q', '-t', 'ext4', '-L', 'gndroot', '-d', rootfs, rootImg, `${rootMiB}M`]);

  step('disk image with genimage');
  const cfg = path.join(work, 'genimage.cfg');
  const name = `gandalf-node-${version}-${board}.img`;
  // u-boot boards: the SPL+u-boot image, raw, at its offset (sunxi: 8 KiB), before the first partition.
  const uboot = bootKind === 'u-boot' ? path.join(work, 'u-boot.bin') : undefined;
  if (uboot) {
    cpSync(path.join(rootfs, spec.uboot.image), uboot);
    if (spec.uboot.offset + statSync(uboot).size > 4 * 2 ** 20) throw new Error(`${spec.uboot.image} overlaps the boot partition at 4 MiB`);
  }
  writeFileSync(
    cfg,
    `image ${name} {
  hdimage { partition-table-type = "mbr" }
${uboot ? `  partition u-boot { in-partition-table = "no" image = "${uboot}" offset = ${spec.uboot.offset} }\n` : ''}  partition boot { partition-type = 0xC bootable = "true" image = "${bootImg}" offset = 4M }
  partition root { partition-type = 0x83 image = "${rootImg}" }
}
`,
  );
  const tmpOut = path.join(work, 'out');
  run(
    'genimage',
    ['--config', cfg, '--rootpath', path.join(work, 'empty'), '--tmppath', path.join(work, 'genimage-tmp'), '--inputpath', work, '--outputpath', tmpOut],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  const img = path.join(outDir, name);
  renameSync(path.join(tmpOut, name), img);

  let artifact = img;
  if (!flags.includes('--no-compress')) {
    step('compressing (xz)');
    for (const f of [`${img}.xz`, `${img}.sha256`]) rmSync(f, { force: true }); // the .sha256 of an older raw build
    run('xz', ['-T0', '-3', '-k', img]);
    artifact = `${img}.xz`;
  } else {
    // An older compressed image would no longer match the raw one.
    for (const f of [`${img}.xz`, `${img}.xz.sha256`]) rmSync(f, { force: true });
  }
  const sum = execFileSync('sha256sum', [path.basename(artifact)], { cwd: outDir }).toString();
  writeFileSync(`${artifact}.sha256`, sum);
  writeFileSync(
    path.join(outDir, `gandalf-node-${board}.FLASH.txt`),
    `${spec.description}: ${path.basename(artifact)}
Check:  sha256sum -c ${path.basename(artifact)}.sha256
Flash:  ${artifact.endsWith('.xz') ? `xzcat ${path.basename(artifact)} |` : `cat ${path.basename(artifact)} |`} sudo dd of=/dev/sdX bs=4M conv=fsync status=progress
        (or Raspberry Pi Imager / balenaEtcher: "Use custom" and pick the ${artifact.endsWith('.xz') ? '.img.xz' : '.img'})
${
  bootKind === 'u-boot'
    ? `The card carries its own boot loader (u-boot, at ${spec.uboot.offset} bytes): flash the whole image
to the card, not to a partition.
`
    : ''
}Then edit gandalf.conf on the card's boot partition (cluster-cookie, and
optionally static-ip, ssh-key) and boot. The root file system grows to the
card on first boot; the node starts as gandalf-node.service.
${
  dropped.length
    ? `WARNING: built without ${dropped.join(', ')} (the mirror's index was inconsistent): run
"apt update && apt upgrade" on the board once it is online.
`
    : ''
}`,
  );
  step(`done: ${path.relative(root, artifact)} ${(statSync(artifact).size / 2 ** 20).toFixed(0)} MiB (raw ${(statSync(img).size / 2 ** 20).toFixed(0)} MiB)`);
} finally {
  // A build killed half-way can leave mmdebstrap's mounts (proc, sys, dev/pts) in the root: never delete through them.
  const mounts = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1]?.replace(/\\040/g, ' '))
    .filter((m) => m && (m === work || m.startsWith(`${work}/`)))
    .sort()
    .reverse();
  for (const m of mounts) spawnSync('umount', ['-l', m], { stdio: 'inherit' });
  rmSync(work, { recursive: true, force: true });
}

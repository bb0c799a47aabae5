#!/usr/bin/env node
// Builds Debian packages from the single executables in dist/ (npm run package):
// dist/gandalf-node_<version>_<debian arch>.deb with /usr/bin/gandalf-node, the
// systemd unit and /etc/gandalf-node/gandalf.conf (a conffile).
// Usage: node scripts/build-deb.mjs [amd64 arm64 armhf armel i386]
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = new URL('..', import.meta.url).pathname;
/** Debian architecture -> executable built by scripts/package.mjs. */
export const TARGETS = {
  amd64: 'gandalf-node-linux-x64',
  arm64: 'gandalf-node-linux-arm64',
  armhf: 'gandalf-node-linux-armv7',
  armel: 'gandalf-node-linux-armv6',
  i386: 'gandalf-node-linux-x86',
};
const version = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).version;

function build(arch) {
  const exe = path.join(root, 'dist', TARGETS[arch]);
  if (!existsSync(exe)) throw new Error(`${path.relative(root, exe)} is missing: run "npm run package" first`);
  const stage = mkdtempSync(path.join(os.tmpdir(), `gandalf-deb-${arch}-`));
  chmodSync(stage, 0o755);
  try {
    const put = (rel, from, mode) => {
      const to = path.join(stage, rel);
      mkdirSync(path.dirname(to), { recursive: true });
      copyFileSync(from, to);
      chmodSync(to, mode);
    };
    put('usr/bin/gandalf-node', exe, 0o755);
    put('lib/systemd/system/gandalf-node.service', path.join(root, 'platform/systemd/gandalf-node.service'), 0o644);
    // Root-only: it will hold the cluster cookie (the unit passes it on with LoadCredential).
    put('etc/gandalf-node/gandalf.conf', path.join(root, 'platform/debian/gandalf.conf'), 0o600);
    for (const script of ['postinst', 'prerm', 'postrm']) put(`DEBIAN/${script}`, path.join(root, 'platform/debian', script), 0o755);
    writeFileSync(path.join(stage, 'DEBIAN/conffiles'), '/etc/gandalf-node/gandalf.conf\n');
    const installedKiB = Math.ceil(statSync(exe).size / 1024) + 8;
    writeFileSync(
      path.join(stage, 'DEBIAN/control'),
      [
        'Package: gandalf-node',
        `Version: ${version}`,
        `Architecture: ${arch}`,
        'Maintainer: gandalf-node developers <gandalf-node@localhost>',
        `Installed-Size: ${installedKiB}`,
        // The official armv7l Node runtime inside the ARMv7 executable links libatomic.
        `Depends: systemd${arch === 'armhf' ? ', libatomic1' : ''}`,
        'Section: net',
        'Priority: optional',
        'Description: zero-configuration edge cluster node for single-board computers',
        ' gandalf-node finds its peers on the LAN by mDNS, links to them over',
        ' authenticated WebRTC data channels, agrees on membership (SWIM) and',
        ' keeps SQL databases durably, with an rqlite-compatible HTTP API.',
        '',
      ].join('\n'),
    );
    const out = path.join(root, 'dist', `gandalf-node_${version}_${arch}.deb`);
    execFileSync('dpkg-deb', ['--root-owner-group', '-Zgzip', '-z6', '--build', stage, out], { stdio: ['ignore', 'ignore', 'inherit'] });
    return out;
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

const wanted = process.argv.slice(2).length > 0 ? process.argv.slice(2) : Object.keys(TARGETS);
for (const arch of wanted) {
  if (!TARGETS[arch]) {
    console.error(`build-deb: unknown architecture ${arch}; known: ${Object.keys(TARGETS).join(', ')}`);
    process.exit(2);
  }
  const out = build(arch);
  console.log(`deb: ${path.relative(root, out)} ${(statSync(out).size / 2 ** 20).toFixed(1)} MiB`);
}

/**
 * The .deb of every architecture: fields, files and modes, the conffile, the
 * maintainer scripts, the unit passing `systemd-analyze verify` against the
 * unpacked package, and (amd64) the packaged executable running.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROOT, requireBuilt } from '../helpers/node-process';
import { tempDir } from '../helpers/tmp';

const VERSION = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version as string;
const ARCHES: Record<string, string> = {
  amd64: 'gandalf-node-linux-x64',
  arm64: 'gandalf-node-linux-arm64',
  armhf: 'gandalf-node-linux-armv7',
  armel: 'gandalf-node-linux-armv6',
  i386: 'gandalf-node-linux-x86',
};

const deb = (arch: string) => path.join(ROOT, 'dist', `gandalf-node_${VERSION}_${arch}.deb`);
const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

beforeAll(() => {
  // scripts/test.sh builds the executables and the packages before the tests run.
  for (const arch of Object.keys(ARCHES)) requireBuilt(deb(arch));
});

describe('Debian packages', () => {
  for (const [arch, exe] of Object.entries(ARCHES)) {
    it(`gandalf-node_${arch}.deb installs the executable, the unit and the config`, () => {
      const file = deb(arch);
      expect(run('dpkg-deb', ['--field', file, 'Package', 'Version', 'Architecture'])).toBe(
        `Package: gandalf-node\nVersion: ${VERSION}\nArchitecture: ${arch}\n`,
      );
      const contents = run('dpkg-deb', ['--contents', file]);
      expect(contents).toMatch(/^drwxr-xr-x root\/root +0 .* \.\/$/m);
      expect(contents).toMatch(/^-rwxr-xr-x root\/root .* \.\/usr\/bin\/gandalf-node$/m);
      expect(contents).toMatch(/^-rw-r--r-- root\/root .* \.\/lib\/systemd\/system\/gandalf-node\.service$/m);
      expect(contents).toMatch(/^-rw------- root\/root .* \.\/etc\/gandalf-node\/gandalf\.conf$/m);

      const root = tempDir('gandalf-deb-');
      run('dpkg-deb', ['--extract', file, root]);
      run('dpkg-deb', ['--control', file, path.join(root, 'DEBIAN')]);
      expect(readFileSync(path.join(root, 'DEBIAN/conffiles'), 'utf8')).toBe('/etc/gandalf-node/gandalf.conf\n');
      for (const script of ['postinst', 'prerm', 'postrm']) {
        expect(statSync(path.join(root, 'DEBIAN', script)).mode & 0o777).toBe(0o755);
        run('sh', ['-n', path.join(root, 'DEBIAN', script)]);
      }
      // The packaged executable is byte-identical to the one built.
      expect(readFileSync(path.join(root, 'usr/bin/gandalf-node')).equals(readFileSync(path.join(ROOT, 'dist', exe)))).toBe(true);

      // systemd-analyze verify in the unpacked root (plus the host's own units, for the targets ours names).
      cpSync('/lib/systemd/system', path.join(root, 'lib/systemd/system'), { recursive: true, force: false });
      const unit = path.join(root, 'lib/systemd/system/gandalf-node.service');
      run('systemd-analyze', ['verify', `--root=${root}`, unit]);
      const text = readFileSync(unit, 'utf8');
      for (const line of [
        'LoadCredential=gandalf.conf:/etc/gandalf-node/gandalf.conf',
        'Type=notify',
        'Restart=on-failure',
        'DynamicUser=yes',
        'StateDirectory=gandalf-node',
        'ProtectSystem=strict',
        'NoNewPrivileges=yes',
        'PrivateTmp=yes',
      ]) {
        expect(text).toContain(`${line}\n`);
      }
      if (arch === 'amd64') {
        const version = JSON.parse(run(path.join(root, 'usr/bin/gandalf-node'), ['version', '--json']));
        expect(version).toMatchObject({ arch: 'x64', single_executable: true });
      }
    });
  }
});

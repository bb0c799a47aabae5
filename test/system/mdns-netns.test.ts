/**
 * Zero configuration: three namespaces on a private bridge, a node in each
 * started with no discovery flags. They find each other by mDNS and form the
 * mesh; a real mDNS client (avahi-browse, with its own avahi-daemon and
 * D-Bus) in a fourth namespace sees the three _gandalf._tcp services.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BUNDLE, requireBuilt } from '../helpers/node-process';
import { createLab } from '../helpers/netns';
import { tempDir } from '../helpers/tmp';

async function until(what: string, cond: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('zero-configuration discovery in network namespaces', () => {
  it('three nodes with no discovery flags find each other; avahi-browse sees them', async () => {
    requireBuilt(BUNDLE);
    const lab = createLab(4);
    const dir = tempDir();
    try {
      const nodes = lab.hosts.slice(0, 3).map((h, i) => {
        const logs: string[] = [];
        const p = lab.spawn(h.ns, [process.execPath, BUNDLE, 'start', '--data-dir', path.join(dir, `n${i}`), '--node-id', `zc${i}`, '--log-format', 'json']);
        p.stderr!.on('data', (d: Buffer) => logs.push(d.toString()));
        return { host: h, process: p, logs };
      });
      const view = (ns: string): { 'node-id': string; state: string }[] => {
        try {
          return JSON.parse(lab.exec(ns, [process.execPath, BUNDLE, 'nodes', '--json'])).nodes;
        } catch {
          return [];
        }
      };
      await until(
        'every node to see three alive members',
        () => nodes.every((n) => view(n.host.ns).filter((r) => r.state === 'alive').length === 3),
        45_000,
      ).catch((err: Error) => {
        throw new Error(`${err.message}\n${nodes.map((n) => n.logs.join('')).join('\n---\n')}`);
      });
      for (const n of nodes)
        expect(
          view(n.host.ns)
            .map((r) => r['node-id'])
            .sort(),
        ).toEqual(['zc0', 'zc1', 'zc2']);

      // A real mDNS client in the fourth namespace.
      const obs = lab.hosts[3]!.ns;
      const busDir = path.join(dir, 'dbus');
      mkdirSync(busDir);
      const busConf = path.join(busDir, 'bus.conf');
      writeFileSync(
        busConf,
        `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path=${busDir}/bus</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*"/><allow receive_sender="*"/></policy></busconfig>`,
      );
      const avahiConf = path.join(dir, 'avahi.conf');
      writeFileSync(avahiConf, '[server]\nuse-ipv4=yes\nuse-ipv6=no\nallow-interfaces=eth0\nenable-dbus=yes\n[publish]\ndisable-publishing=yes\n');
      const env = { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${busDir}/bus` };
      lab.spawn(obs, ['dbus-daemon', '--nofork', `--config-file=${busConf}`], { env });
      await until(
        'the observer D-Bus',
        () => {
          try {
            lab.exec(obs, ['test', '-S', `${busDir}/bus`]);
            return true;
          } catch {
            return false;
          }
        },
        10_000,
      );
      lab.spawn(obs, ['avahi-daemon', '--no-drop-root', '--no-chroot', '--no-rlimits', '-f', avahiConf, '--no-proc-title'], { env });
      let services: string[] = [];
      await until(
        'avahi-browse to list three gandalf services',
        () => {
          try {
            const out = lab.exec(obs, ['avahi-browse', '-prt', '_gandalf._tcp'], { env });
            services = out.split('\n').filter((l) => l.startsWith('='));
            return new Set(services.map((l) => l.split(';')[3])).size === 3;
          } catch {
            return false;
          }
        },
        30_000,
      );
      const names = [...new Set(services.map((l) => l.split(';')[3]))].sort();
      expect(names).toEqual(['zc0', 'zc1', 'zc2']);
      for (const line of services) {
        expect(line).toMatch(/"cluster=gandalf"/);
        expect(line).toMatch(/;8421;/);
      }
      for (const n of nodes) n.process.kill('SIGTERM');
      await Promise.all(nodes.map((n) => new Promise((r) => (n.process.exitCode !== null ? r(null) : n.process.once('exit', r)))));
      for (const n of nodes) expect(n.process.exitCode, n.logs.join('')).toBe(0);
    } finally {
      lab.destroy();
    }
  }, 120_000);
});

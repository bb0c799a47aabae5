/**
 * A private LAN made of network namespaces (as root): a "switch" namespace
 * holding a bridge, and hosts joined to it by veth pairs. Nothing is created
 * in the machine's own namespace, so no traffic can reach its interfaces.
 */
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

export interface Lab {
  prefix: string;
  hosts: { ns: string; address: string }[];
  exec(ns: string, cmd: string[], options?: { env?: NodeJS.ProcessEnv; input?: string }): string;
  spawn(ns: string, cmd: string[], options?: SpawnOptions): ChildProcess;
  destroy(): void;
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

export function createLab(hostCount: number, subnet = '10.213.0'): Lab {
  if (process.getuid?.() !== 0) throw new Error('network namespaces need root (CI runs as root); this test is not skipped');
  const prefix = `gnd${process.pid % 100000}`;
  const sw = `${prefix}-sw`;
  const hosts: { ns: string; address: string }[] = [];
  const processes: ChildProcess[] = [];
  const lab: Lab = {
    prefix,
    hosts,
    exec: (ns, cmd, options) =>
      execFileSync('ip', ['netns', 'exec', ns, ...cmd], {
        env: options?.env ?? process.env,
        input: options?.input,
        stdio: ['pipe', 'pipe', 'pipe'],
        timeout: 30_000,
      }).toString(),
    spawn: (ns, cmd, options) => {
      const p = spawn('ip', ['netns', 'exec', ns, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'], ...options });
      processes.push(p);
      return p;
    },
    destroy: () => {
      for (const p of processes) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
      for (const h of hosts) {
        try {
          execFileSync('ip', ['netns', 'pids', h.ns])
            .toString()
            .split('\n')
            .filter(Boolean)
            .forEach((pid) => {
              try {
                process.kill(Number(pid), 'SIGKILL');
              } catch {
                /* gone */
              }
            });
        } catch {
          /* namespace gone */
        }
      }
      for (const ns of [...hosts.map((h) => h.ns), sw]) {
        try {
          ip('netns', 'del', ns);
        } catch {
          /* already gone */
        }
      }
    },
  };
  try {
    ip('netns', 'add', sw);
    lab.exec(sw, ['ip', 'link', 'add', 'br0', 'type', 'bridge']);
    lab.exec(sw, ['ip', 'link', 'set', 'br0', 'up']);
    for (let i = 1; i <= hostCount; i++) {
      const ns = `${prefix}-h${i}`;
      const address = `${subnet}.${i}`;
      ip('netns', 'add', ns);
      hosts.push({ ns, address });
      // Create the pair inside the switch namespace, then move one end to the host.
      lab.exec(sw, ['ip', 'link', 'add', `p${i}`, 'type', 'veth', 'peer', 'name', 'eth0']);
      lab.exec(sw, ['ip', 'link', 'set', 'eth0', 'netns', ns]);
      lab.exec(sw, ['ip', 'link', 'set', `p${i}`, 'master', 'br0']);
      lab.exec(sw, ['ip', 'link', 'set', `p${i}`, 'up']);
      lab.exec(ns, ['ip', 'link', 'set', 'lo', 'up']);
      lab.exec(ns, ['ip', 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
      lab.exec(ns, ['ip', 'link', 'set', 'eth0', 'up', 'multicast', 'on']);
      lab.exec(ns, ['ip', 'route', 'add', '224.0.0.0/4', 'dev', 'eth0']);
    }
  } catch (err) {
    lab.destroy();
    throw err;
  }
  return lab;
}

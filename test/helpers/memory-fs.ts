/**
 * An in-memory DataFs for simulations: every operation completes as a resolved
 * promise (no real I/O, so a simulation stays deterministic). Appended bytes
 * become durable at `sync()`; `crash()` drops whatever was appended but not
 * synced, as a power cut would. `writeFileAtomic`, `unlink` and `removeTree`
 * are durable at once.
 */
import * as path from 'node:path';
import type { AppendFile, DataFs } from '../../src/store/data-fs';

interface MemFile {
  data: Buffer;
  synced: number;
}

function enoent(what: string): Error {
  return Object.assign(new Error(`ENOENT: no such file or directory, ${what}`), { code: 'ENOENT' });
}

export class MemoryFs implements DataFs {
  private readonly files = new Map<string, MemFile>();
  private readonly dirs = new Set<string>(['/']);

  /** A power cut: every file loses what was appended since its last sync. */
  crash(): void {
    for (const f of this.files.values()) f.data = f.data.subarray(0, f.synced);
  }

  async mkdirp(dir: string): Promise<void> {
    for (let d = path.resolve(dir); !this.dirs.has(d); d = path.dirname(d)) this.dirs.add(d);
  }

  async readdir(dir: string): Promise<string[]> {
    const d = path.resolve(dir);
    if (!this.dirs.has(d)) throw enoent(`scandir '${dir}'`);
    const names = new Set<string>();
    for (const p of [...this.dirs, ...this.files.keys()]) if (p !== d && path.dirname(p) === d) names.add(path.basename(p));
    return [...names].sort();
  }

  async readFile(file: string): Promise<Uint8Array> {
    const f = this.files.get(path.resolve(file));
    if (!f) throw enoent(`open '${file}'`);
    return Buffer.from(f.data);
  }

  async openAppend(file: string): Promise<AppendFile> {
    const p = path.resolve(file);
    if (!this.dirs.has(path.dirname(p))) throw enoent(`open '${file}'`);
    let f = this.files.get(p);
    if (!f) this.files.set(p, (f = { data: Buffer.alloc(0), synced: 0 }));
    const get = (): MemFile => this.files.get(p) ?? f!;
    return {
      get size() {
        return get().data.length;
      },
      append: async (buffers) => {
        const m = get();
        m.data = Buffer.concat([m.data, ...buffers]);
      },
      sync: async () => {
        const m = get();
        m.synced = m.data.length;
      },
      truncate: async (length) => {
        const m = get();
        m.data = m.data.subarray(0, length);
        m.synced = Math.min(m.synced, length);
      },
      close: async () => {},
    };
  }

  async writeFileAtomic(file: string, data: readonly Uint8Array[]): Promise<void> {
    const p = path.resolve(file);
    if (!this.dirs.has(path.dirname(p))) throw enoent(`open '${file}'`);
    const bytes = Buffer.concat(data);
    this.files.set(p, { data: bytes, synced: bytes.length });
  }

  async unlink(file: string): Promise<void> {
    if (!this.files.delete(path.resolve(file))) throw enoent(`unlink '${file}'`);
  }

  async removeTree(dir: string): Promise<void> {
    const d = path.resolve(dir);
    const inside = (p: string) => p === d || p.startsWith(d + path.sep);
    for (const p of [...this.files.keys()]) if (inside(p)) this.files.delete(p);
    for (const p of [...this.dirs]) if (inside(p)) this.dirs.delete(p);
  }

  async syncDir(): Promise<void> {}
}

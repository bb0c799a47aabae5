/** A DataFs over the real one that counts syncs and injects faults on demand. */
import type { AppendFile, DataFs } from '../../src/store/data-fs';
import { nodeDataFs } from '../../src/store/data-fs';

export type Fault = { op: 'append' | 'sync' | 'writeFileAtomic' | 'truncate'; code: string; partialBytes?: number };

export class FaultyFs implements DataFs {
  syncs = 0;
  appends = 0;
  /** Faults consumed in order as matching operations happen. */
  faults: Fault[] = [];

  private take(op: Fault['op']): Fault | undefined {
    const i = this.faults.findIndex((f) => f.op === op);
    return i < 0 ? undefined : this.faults.splice(i, 1)[0];
  }

  private error(f: Fault): Error {
    return Object.assign(new Error(`${f.code}: injected fault on ${f.op}`), { code: f.code });
  }

  mkdirp = nodeDataFs.mkdirp;
  readdir = nodeDataFs.readdir;
  readFile = nodeDataFs.readFile;
  unlink = nodeDataFs.unlink;
  removeTree = nodeDataFs.removeTree;
  syncDir = nodeDataFs.syncDir;

  async writeFileAtomic(file: string, data: readonly Uint8Array[]): Promise<void> {
    const f = this.take('writeFileAtomic');
    if (f) throw this.error(f);
    return nodeDataFs.writeFileAtomic(file, data);
  }

  async openAppend(file: string): Promise<AppendFile> {
    const inner = await nodeDataFs.openAppend(file);
    const outer: AppendFile = {
      get size() {
        return inner.size;
      },
      append: async (buffers) => {
        this.appends++;
        const f = this.take('append');
        if (f) {
          if (f.partialBytes) {
            const all = Buffer.concat(buffers.map((b) => Buffer.from(b)));
            await inner.append([all.subarray(0, f.partialBytes)]);
          }
          throw this.error(f);
        }
        return inner.append(buffers);
      },
      sync: async () => {
        this.syncs++;
        const f = this.take('sync');
        if (f) throw this.error(f);
        return inner.sync();
      },
      truncate: async (len) => {
        const f = this.take('truncate');
        if (f) throw this.error(f);
        return inner.truncate(len);
      },
      close: () => inner.close(),
    };
    return outer;
  }
}

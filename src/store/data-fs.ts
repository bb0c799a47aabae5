/**
 * The few file operations the store needs, behind an interface so tests can
 * inject faults (ENOSPC, EIO, torn writes) without a real full disk.
 * Every method is a real system call in `nodeDataFs`; none buffers in user space.
 */
import { promises as fsp, constants as fsc } from 'node:fs';
import * as path from 'node:path';

export interface AppendFile {
  /** Current size in bytes (what has been written, synced or not). */
  readonly size: number;
  /** Appends all buffers at the end of the file (one writev when possible). */
  append(buffers: readonly Uint8Array[]): Promise<void>;
  /** fdatasync: returns once everything appended is on stable storage. */
  sync(): Promise<void>;
  truncate(length: number): Promise<void>;
  close(): Promise<void>;
}

export interface DataFs {
  mkdirp(dir: string): Promise<void>;
  readdir(dir: string): Promise<string[]>;
  readFile(file: string): Promise<Uint8Array>;
  /** Opens (creating if missing) a file for appending at its end. */
  openAppend(file: string): Promise<AppendFile>;
  /** Writes a whole file durably: temp file, fsync, rename over `file`, fsync of the directory. */
  writeFileAtomic(file: string, data: readonly Uint8Array[]): Promise<void>;
  unlink(file: string): Promise<void>;
  /** Removes a directory and everything in it (missing: nothing to do), durably for its parent. */
  removeTree(dir: string): Promise<void>;
  /** fsync of a directory, so creations, renames and unlinks in it are durable. */
  syncDir(dir: string): Promise<void>;
}

class NodeAppendFile implements AppendFile {
  constructor(
    private readonly handle: fsp.FileHandle,
    public size: number,
  ) {}

  async append(buffers: readonly Uint8Array[]): Promise<void> {
    let position = this.size;
    let pending = buffers.filter((b) => b.length > 0);
    while (pending.length > 0) {
      const { bytesWritten } = await this.handle.writev(pending as Uint8Array[], position);
      position += bytesWritten;
      this.size = position;
      pending = dropBytes(pending, bytesWritten);
    }
  }

  async sync(): Promise<void> {
    await this.handle.datasync();
  }

  async truncate(length: number): Promise<void> {
    await this.handle.truncate(length);
    this.size = length;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

/** Removes the first `count` bytes from a list of buffers (after a short writev). */
function dropBytes(buffers: Uint8Array[], count: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let skip = count;
  for (const b of buffers) {
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    out.push(skip > 0 ? b.subarray(skip) : b);
    skip = 0;
  }
  return out;
}

export const nodeDataFs: DataFs = {
  async mkdirp(dir) {
    await fsp.mkdir(dir, { recursive: true });
  },
  readdir: (dir) => fsp.readdir(dir),
  async readFile(file) {
    return fsp.readFile(file);
  },
  async openAppend(file) {
    const handle = await fsp.open(file, fsc.O_RDWR | fsc.O_CREAT, 0o644);
    const { size } = await handle.stat();
    return new NodeAppendFile(handle, size);
  },
  async writeFileAtomic(file, data) {
    const tmp = `${file}.tmp`;
    const handle = await fsp.open(tmp, 'w', 0o644);
    try {
      const f = new NodeAppendFile(handle, 0);
      await f.append(data);
      await handle.sync();
    } catch (err) {
      await handle.close().catch(() => {});
      await fsp.unlink(tmp).catch(() => {});
      throw err;
    }
    await handle.close();
    await fsp.rename(tmp, file);
    await nodeDataFs.syncDir(path.dirname(file));
  },
  async unlink(file) {
    await fsp.unlink(file);
  },
  async removeTree(dir) {
    await fsp.rm(dir, { recursive: true, force: true });
    await nodeDataFs.syncDir(path.dirname(dir));
  },
  async syncDir(dir) {
    const handle = await fsp.open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
};

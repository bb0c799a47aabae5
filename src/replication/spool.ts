/**
 * Where the wire keeps a large incoming message (a database snapshot of
 * hundreds of MiB) while it arrives: chunks are appended to a file in the
 * data directory in order, in batches, so memory holds only what waits for
 * the disk (the sender keeps that under its window: wire.ts). The file is
 * read back once, when the message is complete, and deleted. Nothing here is
 * durable on purpose: a spool outlives neither its message nor the process
 * (leftovers are deleted when the directory is opened).
 */
import * as path from 'node:path';
import type { Logger } from '../core/logger';
import type { AppendFile, DataFs } from '../store/data-fs';

const SUFFIX = '.part';

export class SpoolDir {
  private readonly ready: Promise<void>;
  private next = 1;

  constructor(
    private readonly dir: string,
    private readonly fs: DataFs,
    logger: Logger,
  ) {
    this.ready = (async () => {
      await fs.mkdirp(dir);
      for (const name of await fs.readdir(dir)) if (name.endsWith(SUFFIX)) await fs.unlink(path.join(dir, name));
    })().catch((err: unknown) => logger.warn('could not clear the spool directory', { dir, err: err as Error }));
  }

  /** A new spool file; `onWritten` hears how many chunks are on disk after each batch. */
  create(onWritten: (chunks: number) => void): SpoolFile {
    const file = path.join(this.dir, `message-${this.next++}${SUFFIX}`);
    return new SpoolFile(
      file,
      this.ready.then(() => this.fs.openAppend(file)),
      this.fs,
      onWritten,
    );
  }
}

export class SpoolFile {
  private queue: Uint8Array[] = [];
  private flushing: Promise<void> | undefined;
  private failure: Error | undefined;
  private discarded = false;
  /** Chunks on disk. */
  private written = 0;

  constructor(
    readonly file: string,
    private readonly handle: Promise<AppendFile>,
    private readonly fs: DataFs,
    private readonly onWritten: (chunks: number) => void,
  ) {
    // a failure to open is reported by finish(); never an unhandled rejection
    handle.catch((err: unknown) => (this.failure ??= err as Error));
  }

  /** Appends `chunk` after every chunk written before it. */
  write(chunk: Uint8Array): void {
    if (this.discarded || this.failure) return;
    this.queue.push(chunk);
    this.flushing ??= this.flush();
  }

  private async flush(): Promise<void> {
    try {
      const file = await this.handle;
      while (this.queue.length > 0 && !this.discarded) {
        const batch = this.queue;
        this.queue = [];
        await file.append(batch);
        this.written += batch.length;
        if (!this.discarded) this.onWritten(this.written);
      }
    } catch (err) {
      this.failure ??= err as Error;
      this.queue = [];
    } finally {
      this.flushing = undefined;
    }
  }

  /** Every chunk written, then the whole file read back; the file is deleted either way. */
  async finish(): Promise<Uint8Array> {
    while (this.flushing) await this.flushing;
    try {
      await (await this.handle).close();
      if (this.failure) throw this.failure;
      return await this.fs.readFile(this.file);
    } finally {
      await this.fs.unlink(this.file).catch(() => undefined);
    }
  }

  /** The message will not be completed: stop writing and delete the file. */
  discard(): void {
    if (this.discarded) return;
    this.discarded = true;
    this.queue = [];
    void (async () => {
      while (this.flushing) await this.flushing;
      await (await this.handle).close();
    })()
      .catch(() => undefined)
      .then(() => this.fs.unlink(this.file))
      .catch(() => undefined);
  }
}

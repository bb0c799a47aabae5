/**
 * Takes files that may change while the node runs (the cookie keyring, TLS
 * certificates): looked at every POLL_MS, and at once on SIGHUP; `apply` is
 * called with their new contents when any changed. Contents that cannot be
 * read or that `apply` refuses keep what was taken before, with a warning.
 */
import { readFileSync } from 'node:fs';
import type { Clock, TimerHandle } from '../core/clock';
import type { Logger } from '../core/logger';

export const POLL_MS = 2_000;

export class FileWatch {
  private timer: TimerHandle | undefined;
  private last: string;
  private readonly onHup = () => this.check();

  /** `what`: named in the log ("cluster cookie file", "TLS certificate"). */
  constructor(
    private readonly files: string[],
    private readonly apply: (contents: Buffer[]) => void,
    private readonly what: string,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {
    this.last = this.read()?.join('\0') ?? '';
    process.on('SIGHUP', this.onHup);
    this.schedule();
  }

  private read(): Buffer[] | undefined {
    try {
      return this.files.map((f) => readFileSync(f));
    } catch (err) {
      this.logger.warn(`the ${this.what} cannot be read; keeping what was read before`, { files: this.files, err: err as Error });
      return undefined;
    }
  }

  private schedule(): void {
    this.timer = this.clock.setTimeout(() => {
      this.check();
      this.schedule();
    }, POLL_MS);
    this.timer.unref?.();
  }

  private check(): void {
    const contents = this.read();
    if (!contents) return;
    const joined = contents.join('\0');
    if (joined === this.last) return;
    try {
      this.apply(contents);
    } catch (err) {
      this.logger.warn(`the new ${this.what} was not taken; keeping what was taken before`, { files: this.files, err: err as Error });
      return;
    }
    this.last = joined;
    this.logger.info(`${this.what} reloaded`, { files: this.files });
  }

  stop(): void {
    if (this.timer) this.clock.clearTimeout(this.timer);
    process.off('SIGHUP', this.onHup);
  }
}

/**
 * One node per data dir. The lock file `<data-dir>/LOCK` holds the owner's
 * pid and process start time (from /proc), created with O_EXCL. A lock whose
 * owner is gone, or whose pid now belongs to another process (pid reuse after
 * a crash or reboot), is stale and taken over.
 */
import { openSync, readFileSync, unlinkSync, writeSync, closeSync, fsyncSync } from 'node:fs';
import * as path from 'node:path';
import { GandalfError } from '../core/errors';

function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime); fields after the ")" that closes the command name.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === 'EPERM';
  }
}

export interface DataDirLock {
  release(): void;
}

export function lockDataDir(dataDir: string): DataDirLock {
  const file = path.join(dataDir, 'LOCK');
  const me = `${process.pid} ${startTime(process.pid) ?? '?'}\n`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o644);
      writeSync(fd, me);
      fsyncSync(fd);
      closeSync(fd);
      return {
        release: () => {
          try {
            if (readFileSync(file, 'utf8') === me) unlinkSync(file);
          } catch {
            /* already gone */
          }
        },
      };
    } catch (err) {
      if ((err as { code?: string }).code !== 'EEXIST') {
        throw new GandalfError('data_dir_locked', `cannot create lock file ${file}: ${(err as Error).message}`, err);
      }
    }
    let content: string;
    try {
      content = readFileSync(file, 'utf8');
    } catch {
      continue; // removed meanwhile: try again
    }
    const [pidText, started] = content.trim().split(' ');
    const pid = Number(pidText);
    const holderRuns = Number.isInteger(pid) && pid > 0 && alive(pid) && (started === '?' || startTime(pid) === started);
    if (holderRuns) {
      throw new GandalfError('data_dir_locked', `data dir ${dataDir} is in use by another gandalf-node (pid ${pid}); stop it or choose another --data-dir`);
    }
    unlinkSync(file); // stale: its owner is gone
  }
  throw new GandalfError('data_dir_locked', `could not take the lock ${file}`);
}

/**
 * systemd readiness and watchdog (sd_notify). Node cannot send unix datagrams,
 * so messages go through `systemd-notify`, which waits until systemd has
 * processed them (so it can still attribute them to this service; the unit
 * sets NotifyAccess=all). Without NOTIFY_SOCKET every call is a no-op.
 */
import { execFile } from 'node:child_process';
import type { Clock, TimerHandle } from '../core/clock';
import type { Logger } from '../core/logger';

export interface Notifier {
  ready(): void;
  stopping(): void;
  /** Starts WATCHDOG=1 pings at half of WATCHDOG_USEC, if systemd asked for them. */
  startWatchdog(): void;
  close(): void;
}

export function createNotifier(env: NodeJS.ProcessEnv, logger: Logger, clock: Clock): Notifier {
  const socket = env.NOTIFY_SOCKET;
  let timer: TimerHandle | undefined;
  let stopped = false;
  let warned = false;
  const send = (...fields: string[]) => {
    if (!socket) return;
    execFile('systemd-notify', fields, { env: { ...env, NOTIFY_SOCKET: socket }, timeout: 10_000 }, (err) => {
      if (err && !warned) {
        warned = true;
        logger.warn('systemd-notify failed; systemd may not see readiness or watchdog pings', { err });
      }
    });
  };
  return {
    ready: () => send('READY=1', `MAINPID=${process.pid}`, 'STATUS=serving'),
    stopping: () => send('STOPPING=1', 'STATUS=stopping'),
    startWatchdog() {
      const usec = Number(env.WATCHDOG_USEC);
      const pid = env.WATCHDOG_PID ? Number(env.WATCHDOG_PID) : process.pid;
      if (!socket || !Number.isFinite(usec) || usec <= 0 || pid !== process.pid) return;
      const everyMs = Math.max(100, Math.floor(usec / 2000));
      const ping = () => {
        if (stopped) return;
        send('WATCHDOG=1');
        timer = clock.setTimeout(ping, everyMs);
        timer.unref?.();
      };
      ping();
    },
    close() {
      stopped = true;
      if (timer) clock.clearTimeout(timer);
    },
  };
}

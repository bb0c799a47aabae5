/**
 * The nemesis's faults on a Rack of real boards, each injected now and healed
 * by the returned Fault. Targets and shapes come from the run's seeded PRNG,
 * so a seed names the same schedule (the processes' own timing still varies).
 *   partition  a random majority | minority split
 *   isolate    one board cut from all the others
 *   bridge     two pairs cut from each other, a fifth board seeing both
 *   pause      SIGSTOP of a board (a leader, mostly) for longer than an election timeout, then SIGCONT
 *   kill       SIGKILL of a board, restarted when healed
 *   clock      the clock board's wall clock jumps minutes forwards or backwards (libfaketime), and back when healed
 *   disk-full  a board's data dir (its own tmpfs) filled to the last byte, freed when healed
 */
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Board, Rack } from '../netns-rack';

export const NETWORK_FAULTS = ['partition', 'isolate', 'bridge'] as const;
export const NODE_FAULTS = ['pause', 'kill', 'clock', 'disk-full'] as const;
export type FaultKind = (typeof NETWORK_FAULTS)[number] | (typeof NODE_FAULTS)[number];

export interface Fault {
  kind: FaultKind;
  /** What was done, to whom: "isolate c (leader of db.nem)". */
  what: string;
  heal(): Promise<void> | void;
}

export interface FaultContext {
  rack: Rack;
  random: () => number;
  /** The board started under libfaketime, and the file that sets its offset. */
  clockBoard: Board;
  clockFile: string;
  /** Called with a board restarted after a kill. */
  restart(b: Board): void;
}

const FILLER = 'nemesis-fill';

export function shuffle<T>(xs: readonly T[], random: () => number): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** A leader of db.nem or of the system group, or any board (a third each). */
function victim(ctx: FaultContext): { board: Board; why: string } {
  const x = ctx.random();
  const group = x < 1 / 3 ? 'db.nem' : x < 2 / 3 ? 'system' : undefined;
  const leader = group ? ctx.rack.leaderOf(group) : undefined;
  if (leader) return { board: leader, why: `leader of ${group}` };
  const boards = ctx.rack.boards;
  return { board: boards[Math.floor(ctx.random() * boards.length)]!, why: group ? `no leader of ${group} found` : 'any board' };
}

export function inject(kind: FaultKind, ctx: FaultContext): Fault {
  const { rack, random } = ctx;
  const ids = rack.boards.map((b) => b.id);
  switch (kind) {
    case 'partition': {
      const s = shuffle(ids, random);
      const minority = s.slice(0, 2);
      const majority = s.slice(2);
      rack.partition(minority, majority);
      return { kind, what: `partition ${minority.join('')} | ${majority.join('')}`, heal: () => rack.heal() };
    }
    case 'isolate': {
      const { board, why } = victim(ctx);
      rack.partition(
        [board.id],
        ids.filter((x) => x !== board.id),
      );
      return { kind, what: `isolate ${board.id} (${why})`, heal: () => rack.heal() };
    }
    case 'bridge': {
      const s = shuffle(ids, random);
      const [bridge, ...rest] = s;
      rack.partition(rest.slice(0, 2), rest.slice(2));
      return { kind, what: `bridge ${bridge} between ${rest.slice(0, 2).join('')} | ${rest.slice(2).join('')}`, heal: () => rack.heal() };
    }
    case 'pause': {
      const { board, why } = victim(ctx);
      board.proc!.kill('SIGSTOP');
      return { kind, what: `SIGSTOP ${board.id} (${why})`, heal: () => void board.proc!.kill('SIGCONT') };
    }
    case 'kill': {
      const { board, why } = victim(ctx);
      board.proc!.kill('SIGKILL');
      return { kind, what: `SIGKILL ${board.id} (${why}), restarted when healed`, heal: () => ctx.restart(board) };
    }
    case 'clock': {
      const offset = random() < 0.5 ? '+300s' : '-300s';
      writeFileSync(ctx.clockFile, `${offset}\n`);
      return {
        kind,
        what: `clock of ${ctx.clockBoard.id} jumps ${offset === '+300s' ? 'forwards' : 'backwards'} 5 min (and back when healed)`,
        heal: () => writeFileSync(ctx.clockFile, '+0\n'),
      };
    }
    case 'disk-full': {
      const { board, why } = victim(ctx);
      const file = path.join(board.dir, FILLER);
      try {
        execFileSync('dd', ['if=/dev/zero', `of=${file}`, 'bs=1M'], { stdio: 'ignore' });
      } catch {
        /* dd stops at ENOSPC: the disk is full */
      }
      return { kind, what: `disk of ${board.id} full (${why})`, heal: () => rmSync(file, { force: true }) };
    }
  }
}

/** One fault, or (with probability `combine`) a network fault and a node fault on another board at once. */
export function chooseFaults(random: () => number, combine: number): [FaultKind] | [FaultKind, FaultKind] {
  const all = [...NETWORK_FAULTS, ...NODE_FAULTS];
  if (random() >= combine) return [all[Math.floor(random() * all.length)]!];
  return [NETWORK_FAULTS[Math.floor(random() * NETWORK_FAULTS.length)]!, NODE_FAULTS[Math.floor(random() * NODE_FAULTS.length)]!];
}

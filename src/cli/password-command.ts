/**
 * `gandalf-node hash-password`: reads a password (asked twice without echo on
 * a terminal, else the first line of stdin, so it never shows in `ps` or the
 * shell's history) and prints its scrypt hash for an --auth-file entry.
 */
import { hashPassword } from '../api/auth';
import type { CliIo } from './coordination-commands';
import { CommandFailed } from './errors';

/** One line typed on the terminal without echo; Ctrl-C or Ctrl-D abandons it. */
function askHidden(question: string, io: CliIo): Promise<string> {
  const stdin = process.stdin;
  io.err(question);
  return new Promise((resolve, reject) => {
    let typed = '';
    stdin.setRawMode(true);
    stdin.resume();
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done(() => resolve(typed));
        if (ch === '\u0003' || ch === '\u0004') return done(() => reject(new CommandFailed('no password given')));
        if (ch === '\u007f' || ch === '\b') typed = typed.slice(0, -1);
        else typed += ch;
      }
    };
    const done = (fn: () => void) => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      io.err('\n');
      fn();
    };
    stdin.on('data', onData);
  });
}

async function firstLine(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
}

export async function runHashPassword(io: CliIo): Promise<number> {
  let password: string;
  if (process.stdin.isTTY) {
    password = await askHidden('password: ', io);
    if ((await askHidden('again: ', io)) !== password) throw new CommandFailed('the two passwords differ');
  } else {
    password = await firstLine();
  }
  if (password.length === 0) throw new CommandFailed('an empty password');
  io.out(`${await hashPassword(password)}\n`);
  return 0;
}

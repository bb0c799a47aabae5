/** Process entry point of gandalf-node (the bundle's and the single executable's main). */
import { runCli } from './cli/cli';

runCli(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  isTTY: Boolean(process.stdout.isTTY),
  env: process.env,
}).then(
  (code) => {
    process.exitCode = code;
    // A stopped node leaves no work behind (its log lines are written synchronously to files,
    // pipes and terminals on Linux): exit now, whatever native handles (WebRTC, sockets) linger.
    if (process.argv[2] === 'start') process.exit(code);
  },
  (err: unknown) => {
    process.stderr.write(`gandalf-node: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);

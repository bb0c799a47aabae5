/** Process entry point of gandalf-node (the bundle's and the single executable's main). */
import { runCli } from './cli/cli';

runCli(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  isTTY: Boolean(process.stdout.isTTY),
  env: process.env,
}).then(
  (code) => {
    // A finished command leaves no work behind (output is written synchronously to files, pipes
    // and terminals on Linux): exit now, whatever lingers (a stopped node's WebRTC handles, a lock
    // client's keepalive still waiting on a stalled node).
    process.exit(code);
  },
  (err: unknown) => {
    process.stderr.write(`gandalf-node: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);

/**
 * The worker thread of one database replica's SQL (the entry point of the
 * worker bundle, see scripts/bundle.mjs): it holds a SqlMachine and carries out
 * requests one at a time, in the order they arrive. A statement that runs long
 * keeps only this thread busy; the node's main thread goes on with membership,
 * Raft, the mesh and HTTP. This thread never decides anything on its own.
 */
import { parentPort } from 'node:worker_threads';
import { loadSqlEngine } from '../store/sql-engine';
import { SqlMachine } from './sql-machine';
import { isWorkerEnvelope, type WorkerEnvelope, type WorkerReply } from './sql-worker-protocol';

const port = parentPort;
if (!port) throw new Error('sql-worker runs only as a worker thread');

let tail: Promise<SqlMachine> = loadSqlEngine().then((engine) => new SqlMachine(engine));

function carryOut(machine: SqlMachine, { id, request }: WorkerEnvelope): void {
  let reply: WorkerReply;
  const transfer: ArrayBuffer[] = [];
  try {
    let value: unknown = null;
    switch (request.op) {
      case 'restore':
        machine.restore(request.image);
        break;
      case 'apply':
        value = request.data.map((d) => machine.apply(d));
        break;
      case 'snapshot': {
        const image = machine.snapshot();
        transfer.push(image.buffer as ArrayBuffer); // the image owns its buffer (SqlMachine.snapshot)
        value = image;
        break;
      }
      case 'query':
        value = machine.queryAllNow(request.statements);
        break;
      case 'trial':
        machine.trialNow(request.entry);
        break;
    }
    reply = { id, ok: true, value, stats: { lastTs: machine.lastTs, sizeBytes: machine.sizeBytes(), triggers: machine.hasTriggers } };
  } catch (err) {
    reply = { id, ok: false, error: err instanceof Error ? err.message : String(err), stats: null };
  }
  port!.postMessage(reply, transfer);
}

port.on('message', (message: unknown) => {
  if (!isWorkerEnvelope(message)) {
    port.postMessage({ id: -1, ok: false, error: 'malformed request', stats: null } satisfies WorkerReply);
    return;
  }
  tail = tail.then((machine) => {
    carryOut(machine, message);
    return machine;
  });
});

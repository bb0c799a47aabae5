/**
 * A worker thread running SQL (the entry point of the worker bundle, see
 * scripts/bundle.mjs): it holds one SqlMachine per database it is asked about
 * (a board's writer thread holds all of them, a reader thread one copy) and
 * carries out requests one at a time, in the order they arrive. A statement that runs long
 * keeps only this thread busy; the node's main thread goes on with membership,
 * Raft, the mesh and HTTP. This thread never decides anything on its own.
 */
import { parentPort } from 'node:worker_threads';
import { GandalfError } from '../core/errors';
import { loadSqlEngine, type SqlEngine } from '../store/sql-engine';
import { SqlMachine } from './sql-machine';
import { isWorkerEnvelope, type WorkerEnvelope, type WorkerReply } from './sql-worker-protocol';

const port = parentPort;
if (!port) throw new Error('sql-worker runs only as a worker thread');

const machines = new Map<string, SqlMachine>();
let tail: Promise<SqlEngine> = loadSqlEngine();

function carryOut(engine: SqlEngine, { id, db, request }: WorkerEnvelope): void {
  let reply: WorkerReply;
  const transfer: ArrayBuffer[] = [];
  try {
    if (request.op === 'drop') {
      machines.get(db)?.close();
      machines.delete(db);
      port!.postMessage({ id, ok: true, value: null, stats: { lastTs: 0, sizeBytes: 0, triggers: false } } satisfies WorkerReply);
      return;
    }
    let machine = machines.get(db);
    if (!machine) machines.set(db, (machine = new SqlMachine(engine)));
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
      case 'backup':
        value = machine.backupNow(request.format);
        break;
      case 'prepare-load': {
        const image = machine.prepareLoadNow(request.bytes);
        transfer.push(image.buffer as ArrayBuffer); // exported for this answer alone
        value = image;
        break;
      }
    }
    reply = { id, ok: true, value, stats: { lastTs: machine.lastTs, sizeBytes: machine.sizeBytes(), triggers: machine.hasTriggers } };
  } catch (err) {
    reply = { id, ok: false, error: err instanceof Error ? err.message : String(err), ...(err instanceof GandalfError ? { code: err.code } : {}), stats: null };
  }
  port!.postMessage(reply, transfer);
}

port.on('message', (message: unknown) => {
  if (!isWorkerEnvelope(message)) {
    port.postMessage({ id: -1, ok: false, error: 'malformed request', stats: null } satisfies WorkerReply);
    return;
  }
  tail = tail.then((engine) => {
    carryOut(engine, message);
    return engine;
  });
});

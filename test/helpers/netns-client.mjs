#!/usr/bin/env node
// A client that runs inside a test's network namespace and talks to the node there on
// 127.0.0.1 (each namespace has its own loopback). Bounded in count and time.
//   write <port> <db> <prefix> <max-seconds>   writes unique values one at a time; prints "ack <value>" or "err <code>"
//                                              until stdin closes or the time bound; a value is never resent
//   read <port> <db> <level>                   prints the values as a JSON array (or "error <status> <body>"), exit 1 on error
//   first-answer <port> <path> <max-ms>        prints the ms until <path> first answers 200 (polled every 20 ms)
//   get <port> <path>                          prints the JSON body
//   exec <port> <db> <sql>                     runs one statement on /db/execute, prints the JSON body
const [cmd, port, a, b, c] = process.argv.slice(2);
const base = `http://127.0.0.1:${port}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function write(db, prefix, maxSeconds) {
  let stop = false;
  process.stdin
    .on('end', () => (stop = true))
    .on('close', () => (stop = true))
    .resume();
  const until = Date.now() + Number(maxSeconds) * 1000;
  for (let k = 0; !stop && Date.now() < until && k < 200_000; k++) {
    const value = `${prefix}-${k}`;
    try {
      const r = await fetch(`${base}/db/execute?db=${db}`, {
        method: 'POST',
        body: JSON.stringify([['INSERT INTO t(v) VALUES (?)', value]]),
        signal: AbortSignal.timeout(30_000),
      });
      const body = await r.json();
      if (r.status === 200 && body.results?.[0] && !body.results[0].error) process.stdout.write(`ack ${value}\n`);
      else process.stdout.write(`err ${r.status} ${body.code ?? body.results?.[0]?.error ?? ''}\n`);
    } catch (err) {
      process.stdout.write(`err fetch ${err.name}\n`);
      await sleep(100);
    }
    await sleep(10);
  }
}

async function read(db, level) {
  const r = await fetch(`${base}/db/query?db=${db}&level=${level}&q=${encodeURIComponent('SELECT v FROM t')}`, { signal: AbortSignal.timeout(30_000) });
  const body = await r.json();
  const res = body.results?.[0];
  if (r.status !== 200 || !res || res.error) {
    process.stdout.write(`error ${r.status} ${JSON.stringify(body).slice(0, 500)}\n`);
    process.exit(1);
  }
  process.stdout.write(JSON.stringify((res.values ?? []).map((row) => row[0])));
}

async function firstAnswer(path, maxMs) {
  const started = Date.now();
  while (Date.now() - started < Number(maxMs)) {
    try {
      const r = await fetch(base + path, { signal: AbortSignal.timeout(500) });
      if (r.status === 200) {
        process.stdout.write(String(Date.now() - started));
        return;
      }
    } catch {
      /* not answering yet */
    }
    await sleep(20);
  }
  process.stdout.write('never');
}

async function get(path) {
  const r = await fetch(base + path, { signal: AbortSignal.timeout(10_000) });
  process.stdout.write(await r.text());
}

async function exec(db, sql) {
  const r = await fetch(`${base}/db/execute?db=${db}`, { method: 'POST', body: JSON.stringify([sql]), signal: AbortSignal.timeout(30_000) });
  process.stdout.write(await r.text());
  if (r.status !== 200) process.exit(1);
}

if (cmd === 'get') await get(a);
else if (cmd === 'exec') await exec(a, b);
else if (cmd === 'write') await write(a, b, c);
else if (cmd === 'read') await read(a, b);
else if (cmd === 'first-answer') await firstAnswer(a, b);
else {
  process.stderr.write(`unknown command ${cmd}\n`);
  process.exit(2);
}

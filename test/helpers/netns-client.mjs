#!/usr/bin/env node
// A client that runs inside a test's network namespace and talks to the node there on
// 127.0.0.1 (each namespace has its own loopback). Bounded in count and time.
//   write <port> <db> <prefix> <max-seconds>   writes unique values one at a time; prints "ack <value> <call> <ret>" or
//                                              "err <status> <code> <value> <call>" until stdin closes or the time
//                                              bound; a value is never resent
//   count <port> <db> <max-seconds>            strong SELECT count(*) every 200 ms: prints {"n", "call", "ret"} per answer
//   kv <port> <prefix> <keys> <max-seconds>    on random keys of the comma-separated list: a strong get, then a CAS
//                                              (PUT with prev_revision) of a unique value; prints each operation as
//                                              JSON ("ret": null for a CAS whose outcome is unknown)
//   mutex <port> <lock> <max-seconds>          a session (TTL 4 s, kept alive before each try) takes the lock, holds it
//                                              ~100 ms and releases it; prints each hold the client could rely on as
//                                              {"token", "session", "from", "to"}: from the grant's answer to the
//                                              release call, cut at the session's lease (last keepalive call + TTL)
// Times are this host's milliseconds (performance.timeOrigin + performance.now()), shared by every namespace.
//   read <port> <db> <level>                   prints the values as a JSON array (or "error <status> <body>"), exit 1 on error
//   first-answer <port> <path> <max-ms>        prints the ms until <path> first answers 200 (polled every 20 ms)
//   get <port> <path>                          prints the JSON body
//   exec <port> <db> <sql>                     runs one statement on /db/execute, prints the JSON body
const [cmd, port, a, b, c] = process.argv.slice(2);
const base = `http://127.0.0.1:${port}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.timeOrigin + performance.now();
const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n');

/** A loop bound: until stdin closes, `maxSeconds` pass or `maxCount` rounds ran. */
function bounded(maxSeconds, maxCount = 200_000) {
  let stop = false;
  process.stdin
    .on('end', () => (stop = true))
    .on('close', () => (stop = true))
    .resume();
  const until = Date.now() + Number(maxSeconds) * 1000;
  let k = 0;
  return () => !stop && Date.now() < until && k++ < maxCount;
}

async function call(method, path, body, ms = 30_000) {
  const r = await fetch(base + path, { method, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(ms) });
  return { status: r.status, body: await r.json().catch(() => ({})) };
}

async function write(db, prefix, maxSeconds) {
  const more = bounded(maxSeconds);
  for (let k = 0; more(); k++) {
    const value = `${prefix}-${k}`;
    const t = now();
    try {
      const r = await call('POST', `/db/execute?db=${db}`, [['INSERT INTO t(v) VALUES (?)', value]]);
      if (r.status === 200 && r.body.results?.[0] && !r.body.results[0].error) process.stdout.write(`ack ${value} ${t} ${now()}\n`);
      else process.stdout.write(`err ${r.status} ${r.body.code ?? r.body.results?.[0]?.error ?? ''} ${value} ${t}\n`);
    } catch (err) {
      process.stdout.write(`err fetch ${err.name} ${value} ${t}\n`);
      await sleep(100);
    }
    await sleep(10);
  }
}

async function count(db, maxSeconds) {
  const more = bounded(maxSeconds);
  const q = encodeURIComponent('SELECT count(*) FROM t');
  while (more()) {
    const t = now();
    try {
      const r = await call('GET', `/db/query?db=${db}&level=strong&q=${q}`, undefined, 10_000);
      const n = r.body.results?.[0]?.values?.[0]?.[0];
      if (r.status === 200 && typeof n === 'number') emit({ n, call: t, ret: now() });
    } catch {
      /* no answer: a read has no effect */
    }
    await sleep(200);
  }
}

async function kv(prefix, keys, maxSeconds) {
  const more = bounded(maxSeconds);
  const names = keys.split(',');
  for (let k = 0; more(); k++) {
    const key = names[Math.floor(Math.random() * names.length)];
    let rev;
    const t = now();
    try {
      const r = await call('GET', `/kv/${key}?level=strong`, undefined, 10_000);
      if (r.status === 200) emit({ op: 'get', key, value: r.body.value, rev: (rev = r.body.mod_revision), call: t, ret: now() });
      else if (r.status === 404 && r.body.code === 'key_not_found') emit({ op: 'get', key, value: null, rev: (rev = 0), call: t, ret: now() });
    } catch {
      /* no answer */
    }
    if (rev === undefined) {
      await sleep(200);
      continue;
    }
    const value = `${prefix}-${k}`;
    const t2 = now();
    let out = { op: 'cas', key, prev: rev, value, call: t2, ret: null };
    try {
      const r = await call('PUT', `/kv/${key}`, { value, prev_revision: rev }, 10_000);
      const current = /is at revision (\d+)/.exec(r.body.message ?? '');
      if (r.status === 200) out = { ...out, ok: true, rev: r.body.revision, ret: now() };
      else if (r.status === 409 && r.body.code === 'revision_mismatch' && current) out = { ...out, ok: false, current: Number(current[1]), ret: now() };
    } catch {
      /* the outcome is unknown */
    }
    emit(out);
    await sleep(20);
  }
}

async function mutex(lock, maxSeconds) {
  const more = bounded(maxSeconds);
  const TTL = 4000;
  let session;
  let lease = 0;
  while (more()) {
    try {
      if (!session) {
        const t = now();
        const r = await call('POST', `/session?ttl=${TTL}ms`, undefined, 10_000);
        if (r.status !== 200) throw new Error(`session ${r.status}`);
        session = r.body.session;
        lease = t + TTL;
      }
      const t = now();
      const k = await call('POST', `/session/${session}/keepalive`, undefined, 10_000);
      if (k.status === 200) lease = t + TTL;
      else if (k.body.code === 'unknown_session') {
        session = undefined;
        continue;
      }
      const r = await call('POST', `/lock/${lock}/acquire?timeout=2s&session=${session}`, undefined, 10_000).catch(() => undefined);
      if (r?.status === 200) {
        const from = now();
        if (from < lease) {
          await sleep(50 + Math.random() * 100);
          emit({ token: r.body.token, session, from, to: Math.min(now(), lease) });
        }
      } else if (r?.body.code === 'unknown_session') session = undefined;
      // the hold's own token when the grant's answer came; without one, whatever the session holds (the answer was lost)
      const token = r?.status === 200 ? `&token=${r.body.token}` : '';
      if (r === undefined || r.status === 200) await call('POST', `/lock/${lock}/release?session=${session}${token}`, undefined, 10_000).catch(() => undefined);
    } catch {
      await sleep(200);
    }
    await sleep(20);
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
else if (cmd === 'count') await count(a, b);
else if (cmd === 'kv') await kv(a, b, c);
else if (cmd === 'mutex') await mutex(a, b);
else if (cmd === 'read') await read(a, b);
else if (cmd === 'first-answer') await firstAnswer(a, b);
else {
  process.stderr.write(`unknown command ${cmd}\n`);
  process.exit(2);
}

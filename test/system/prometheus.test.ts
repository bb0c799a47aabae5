/**
 * GET /metrics as Prometheus sees it: a real Prometheus server (Debian's
 * package) scrapes a 3-node cluster on 127.0.0.1 every second, and PromQL
 * queries return the expected series and values after a known number of
 * writes: one leader of the database, every replica applied exactly those
 * writes, the HTTP counter counted them, three members alive on each board,
 * log fsyncs observed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, startNode, type NodeProcess } from '../helpers/node-process';
import { tempDir } from '../helpers/tmp';
import { until } from '../helpers/until';

const COOKIE = 'prometheus-test-cookie';
const WRITES = 25;
let nodes: NodeProcess[] = [];
let prometheus: ChildProcess | undefined;
let promLog = '';

afterAll(async () => {
  prometheus?.kill('SIGKILL');
  await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
  nodes = [];
});

type Sample = { metric: Record<string, string>; value: [number, string] };

describe('Prometheus scrapes a 3-node cluster', () => {
  it('PromQL returns the leader, the applied writes, HTTP requests, members and fsyncs', async () => {
    const args = (i: number, join?: string) => ['--node-id', `p${i}`, '--discovery', 'manual', '--cluster-cookie', COOKIE, ...(join ? ['--join', join] : [])];
    nodes.push(await startNode({ dataDir: tempDir(), args: args(0) }));
    const seed = `http://127.0.0.1:${nodes[0]!.mgmtPort}`;
    for (let i = 1; i < 3; i++) nodes.push(await startNode({ dataDir: tempDir(), args: args(i, seed) }));
    await until(
      'a system group of 3 voters',
      async () => (await nodes[0]!.get('/status')).body.replicas.find((r: { group: string }) => r.group === 'system')?.voters.length === 3,
      40_000,
    );
    expect((await nodes[0]!.post('/db/execute?db=m', ['CREATE TABLE t(v)'])).status).toBe(200);
    await until(
      'db.m on three boards, one leader known to all',
      async () => {
        const views = await Promise.all(nodes.map(async (n) => (await n.get('/status')).body.replicas.find((r: { group: string }) => r.group === 'db.m')));
        return views.every((v) => v && v.leader && v.leader === views[0].leader && v.applied_index === views[0].applied_index);
      },
      30_000,
    );

    // the scrape targets: every node's client API (with a cookie, the mgmt endpoint shows strangers only probes)
    const dir = tempDir('gandalf-prom-');
    const promPort = await freePort();
    expect((await fetch(`http://127.0.0.1:${nodes[0]!.mgmtPort}/metrics`)).status).toBe(404);
    const targets = nodes.map((n) => `127.0.0.1:${n.httpPort}`);
    writeFileSync(
      path.join(dir, 'prometheus.yml'),
      [
        'global:',
        '  scrape_interval: 1s',
        '  scrape_timeout: 900ms',
        'scrape_configs:',
        '  - job_name: gandalf',
        '    static_configs:',
        `      - targets: [${targets.map((t) => `'${t}'`).join(', ')}]`,
        '',
      ].join('\n'),
    );
    prometheus = spawn(
      'prometheus',
      [
        `--config.file=${path.join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${path.join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    prometheus.stderr?.on('data', (d: Buffer) => (promLog += d.toString()));
    const promql = async (q: string): Promise<Sample[]> => {
      const r = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(q)}`);
      const body = (await r.json()) as { status: string; data: { resultType: string; result: Sample[] }; error?: string };
      if (body.status !== 'success') throw new Error(`${q}: ${body.error}`);
      return body.data.result;
    };
    const scalar = async (q: string): Promise<number | undefined> => {
      const r = await promql(q);
      return r.length === 1 ? Number(r[0]!.value[1]) : undefined;
    };
    await until(
      `Prometheus scraping all ${targets.length} targets\n${promLog}`,
      async () => (await scalar('sum(up{job="gandalf"})')) === targets.length,
      60_000,
    );

    // a known number of writes, counted from what Prometheus saw before them
    const appliedBefore = await promql('gandalf_server_proposals_applied_total{group="db.m"}');
    const requestsBefore = (await scalar('sum(gandalf_http_requests_total{route="POST /db/execute",code="200"})')) ?? 0;
    expect(appliedBefore.length).toBe(targets.length);
    for (let i = 0; i < WRITES; i++) expect((await nodes[i % 3]!.post('/db/execute?db=m', [['INSERT INTO t VALUES(?)', i]])).status).toBe(200);
    // a scrape that started after the last write: every replica applied all of them
    const base = Number(appliedBefore[0]!.value[1]);
    await until(
      'every replica applied the writes, as scraped',
      async () => {
        const now = await promql('gandalf_server_proposals_applied_total{group="db.m"}');
        return now.length === targets.length && now.every((s) => Number(s.value[1]) >= base + WRITES);
      },
      30_000,
    );

    for (const s of await promql('gandalf_server_proposals_applied_total{group="db.m"}')) expect(Number(s.value[1])).toBe(base + WRITES);
    expect(await scalar('count(count by (node) (gandalf_server_is_leader{group="db.m"} == 1))')).toBe(1);
    expect(await scalar('count(count by (node) (gandalf_server_has_leader{group="db.m"} == 1))')).toBe(3);
    const requests = 'sum(gandalf_http_requests_total{route="POST /db/execute",code="200"})';
    await until('the HTTP counter counted the writes', async () => (await scalar(requests)) === requestsBefore + WRITES, 10_000);
    expect(await scalar('min(gandalf_membership_members{state="alive"})')).toBe(3);
    expect(await scalar('max(gandalf_membership_members{state="dead"})')).toBe(0);
    expect(await scalar('min(gandalf_disk_wal_fsync_duration_seconds_count{group="db.m"})')).toBeGreaterThanOrEqual(WRITES / 3);
    expect(await scalar('count(count by (node) (gandalf_network_peer_round_trip_time_seconds))')).toBe(3);
    expect(await scalar('min(gandalf_mesh_sent_bytes_total)')).toBeGreaterThan(0);
    expect(await scalar('max(gandalf_mesh_signals_refused_total)')).toBe(0);
    expect(await scalar('min(gandalf_process_resident_memory_bytes)')).toBeGreaterThan(10 * 1024 * 1024);
    expect(await scalar('min(gandalf_db_size_bytes{group="db.m"})')).toBeGreaterThan(0);
    expect(await scalar('max(gandalf_server_proposals_failed_total{group="db.m"})')).toBe(0);
  }, 180_000);
});

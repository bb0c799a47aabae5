/**
 * The dashboard in a real headless Chromium (Debian's package, driven by
 * playwright-core): on a 3-node cluster the page shows three boards alive,
 * its write rate moves after writes, a board shows as dead within the SWIM
 * bound after SIGKILL, and the page fits a phone's screen. A screenshot is
 * kept as test-results/dashboard.png. Chromium is kept to loopback.
 */
import { mkdirSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, startNode, type NodeProcess } from '../helpers/node-process';
import { tempDir } from '../helpers/tmp';
import { until } from '../helpers/until';

/** SWIM here: suspect after a few missed probes, dead 6 s later (the member list's suspicion timeout). */
const DEAD_WITHIN_MS = 20_000;
const nodes: NodeProcess[] = [];
let browser: Browser | undefined;
afterAll(async () => {
  await browser?.close();
  await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
});

describe('dashboard in headless Chromium', () => {
  it('shows three boards, a moving write rate, a dead board after SIGKILL, and fits a phone', async () => {
    const args = (i: number, join?: string) => [
      '--node-id',
      `ui${i}`,
      '--discovery',
      'manual',
      '--cluster-cookie',
      'dashboard-test-cookie',
      ...(join ? ['--join', join] : []),
    ];
    nodes.push(await startNode({ dataDir: tempDir(), args: args(0) }));
    const seed = `http://127.0.0.1:${nodes[0]!.mgmtPort}`;
    for (const i of [1, 2]) nodes.push(await startNode({ dataDir: tempDir(), args: args(i, seed) }));
    await until(
      'three members alive',
      async () => ((await nodes[0]!.get('/cluster/nodes')).body.nodes as { state: string }[]).filter((m) => m.state === 'alive').length === 3,
      40_000,
    );
    expect((await nodes[0]!.post('/db/execute', ['CREATE TABLE t(v)'])).status).toBe(200);

    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      // root in CI needs --no-sandbox; every name but loopback fails to resolve, so nothing leaves this machine
      args: [
        '--no-sandbox',
        '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
        '--disable-component-update',
        '--disable-domain-reliability',
        '--no-pings',
      ],
    });
    const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${nodes[0]!.url}/ui`);
    expect(page.url()).toBe(`${nodes[0]!.url}/ui/`);
    const boards = async () => {
      const rows = page.locator('#boards .board');
      const out: string[] = [];
      for (let i = 0; i < (await rows.count()); i++) out.push(`${await rows.nth(i).getAttribute('data-node')}=${await rows.nth(i).getAttribute('data-state')}`);
      return out.sort();
    };
    await until('three boards alive on the page', async () => (await boards()).join(' ') === 'ui0=alive ui1=alive ui2=alive', 20_000);
    expect(await page.locator('#mesh circle').count()).toBe(3);
    expect(await page.textContent('#groups')).toContain('db.main');

    // writes through this board: the rate moves off zero
    const rate = async () => Number(await page.textContent('#write-rate'));
    expect(await rate()).toBe(0);
    let seen = 0;
    for (let i = 0; i < 60 && seen === 0; i++) {
      expect((await nodes[0]!.post('/db/execute', [['INSERT INTO t VALUES(?)', i]])).status).toBe(200);
      if (i % 10 === 9) seen = await rate();
    }
    await until('the write rate moved', async () => (seen = await rate()) > 0, 10_000);
    expect(seen).toBeGreaterThan(0);

    // a board killed: dead on the page within the SWIM bound
    const killedAt = Date.now();
    await nodes[2]!.stop('SIGKILL');
    await until('ui2 dead on the page', async () => (await boards()).includes('ui2=dead'), DEAD_WITHIN_MS);
    console.log(`dashboard: ui2 shown dead ${Date.now() - killedAt} ms after SIGKILL`);
    const dir = path.join(ROOT, 'test-results');
    mkdirSync(dir, { recursive: true });
    const shot = path.join(dir, 'dashboard.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect(statSync(shot).size).toBeGreaterThan(10_000);

    // a phone: nothing wider than the screen
    await page.setViewportSize({ width: 375, height: 740 });
    await page.waitForTimeout(300);
    expect(Number(await page.evaluate('document.documentElement.scrollWidth'))).toBeLessThanOrEqual(375);
    expect(errors).toEqual([]);
  }, 180_000);
});

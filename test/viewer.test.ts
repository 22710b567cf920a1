import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { BatchingManager } from '../host/batching/batching-manager.js';
import { FileExporter } from '../host/export/otlp-json.js';
import { PipelineCollector } from '../host/pipeline/pipeline-collector.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';
import { startViewer, type Viewer } from '../host/viewer/view-server.js';
import type { TraceSummary } from '../host/viewer/trace-store.js';
import { textMatching } from './helpers/page-text.js';

const CHROMIUM = '/usr/bin/chromium';
let folder = '';
let viewer: Viewer;

before(async () => {
  folder = await mkdtemp(join(tmpdir(), 'sandtrace-view-'));
  const batching = new BatchingManager(new FileExporter(folder));
  const collector = new PipelineCollector({ eventsAs: 'both', handlers: batching.handlers() });
  await runQuickJS(`tracing.inSpan('checkout', { cart: 3 }, () => { tracing.info('priced', { total: 42 }); tracing.counter('orders', 1); });`, { collector, executionId: 'view-ok' });
  // Flushed before it spins, and 1 s rather than 50 ms: a worker starved of CPU may reach its first
  // line late, or miss the grace and be terminated, losing what it had not handed over.
  await runQuickJS(`tracing.inSpan('resize images', { count: 3 }, () => { tracing.info('resizing'); tracing.flush(); for (;;) {} });`, { collector, executionId: 'view-crash', deadlineMs: 1_000 });
  await batching.shutdown();
  viewer = await startViewer({ folder, port: 0 });
});
after(async () => {
  await viewer.close();
  await rm(folder, { recursive: true });
});

describe('sandtrace view', () => {
  test('the API lists the traces of the store with their status and force-close causes', async () => {
    const traces = (await (await fetch(`${viewer.url}api/traces`)).json()) as TraceSummary[];
    assert.equal(traces.length, 2);
    const crash = traces.find((t) => t.executionIds.includes('view-crash'))!;
    assert.deepEqual(crash.forced, ['deadline']);
    assert.equal(crash.root, 'resize images · guest.js', 'named by the guest root span and its source');
    const detail = await (await fetch(`${viewer.url}api/traces/${crash.traceId}`)).json();
    assert.ok(detail.spans.some((s: { name: string; forcedCause?: string }) => s.name === 'resize images' && s.forcedCause === 'deadline'));
    assert.equal((await fetch(`${viewer.url}api/traces/${'0'.repeat(32)}`)).status, 404);
    assert.match(await (await fetch(viewer.url)).text(), /<title>sandtrace/);
  });

  test('in Chromium: the page lists the traces, shows the crashed span with its cause, and filters work', { skip: existsSync(CHROMIUM) ? false : `needs ${CHROMIUM} (.ci/run installs Debian's chromium)` }, async () => {
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1200, height: 700 } });
      const external: string[] = [];
      page.on('request', (r) => {
        if (!r.url().startsWith(viewer.url)) external.push(r.url());
      });
      await page.goto(viewer.url);
      await page.waitForSelector('.trace');
      assert.equal(await page.locator('.trace').count(), 2);

      await page.locator('.trace', { hasText: 'deadline' }).click();
      const crashed = page.locator('.row', { hasText: 'resize images' });
      await crashed.waitFor();
      assert.match(await textMatching(crashed, /✖ deadline/), /✖ deadline/);
      await crashed.click();
      assert.match(await textMatching(page.locator('#details'), /deadline exceeded/), /deadline exceeded/);

      await page.fill('#filter-execution', 'view-ok');
      assert.equal(await page.locator('.trace').count(), 1);
      await page.fill('#filter-execution', '');
      await page.selectOption('#filter-status', 'forced');
      assert.equal(await page.locator('.trace').count(), 1);
      assert.match(await textMatching(page.locator('.trace'), /deadline/), /deadline/);

      await page.selectOption('#filter-status', 'all');
      await page.locator('.trace', { hasText: 'deadline' }).click();
      const shots = fileURLToPath(new URL('../test-artifacts/', import.meta.url));
      await mkdir(shots, { recursive: true });
      await page.screenshot({ path: join(shots, 'viewer.png'), fullPage: true });
      assert.deepEqual(external, [], 'the page loads nothing from elsewhere');
    } finally {
      await browser.close();
    }
  });
});

/**
 * The README's UI walkthrough, done by a real browser: start `migrateWorkload` from the Temporal
 * Web UI's "Start a Workflow" form (UI 2.42.1, served by the dev server of CLI v1.5.1), watch the
 * run reach Completed in the UI, and refresh docs/ui-migration.png from the completed run's page.
 *
 * Uses Debian's Chromium (/usr/bin/chromium) through playwright-core; never downloads a browser.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';
import { deploySampleWorkload } from '../../worker/deploy-sample';
import type { MigrationResult } from '../../core/migration';
import { startTestServer } from '../helpers/temporal';
import { startTestFederation, type TestFederation } from '../helpers/federation';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const SCREENSHOT = join(__dirname, '..', '..', 'docs', 'ui-migration.png');
const WORKFLOW_ID = 'migrate-kv-demo';
const KEYS = 50;
const INPUT = { workloadId: 'kv-demo', targetSite: 'dc:frankfurt' };
const INPUT_TEXT = '{"workloadId": "kv-demo", "targetSite": "dc:frankfurt"}';
const COMPLETED_TIMEOUT_MS = 90_000;

/** A port that was free a moment ago: listen on 0, note the port, close. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

describe('starting a migration from the Temporal Web UI', () => {
  let env: TestWorkflowEnvironment | undefined;
  let fed: TestFederation | undefined;
  let browser: Browser | undefined;
  let uiUrl: string;

  before(async () => {
    const uiPort = await freePort();
    env = await startTestServer({ ui: true, uiPort });
    uiUrl = `http://127.0.0.1:${uiPort}`;
    fed = await startTestFederation(env);
    const sample = await deploySampleWorkload({ client: env.client, config: fed.config, home: fed.home, keys: KEYS, valueBytes: 64 });
    assert.equal(sample.site, 'dc:paris');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  });

  after(async () => {
    await browser?.close().catch((e: unknown) => console.error('closing the browser:', e));
    await fed?.stop().catch((e: unknown) => console.error('stopping the federation:', e));
    await env?.teardown().catch((e: unknown) => console.error('stopping the dev server:', e));
  });

  it('Start Workflow form -> run Completed in the UI, kv-demo on dc:frankfurt', { timeout: 180_000 }, async () => {
    const page = await browser!.newPage({ viewport: { width: 1400, height: 900 } });

    // Workflows page of the default namespace -> "Start Workflow".
    await openStartWorkflow(page, `${uiUrl}/namespaces/default/workflows`);
    await page.getByRole('heading', { name: 'Start a Workflow' }).waitFor();
    assert.match(page.url(), /\/namespaces\/default\/workflows\/start-workflow/);

    // The form, as a user fills it.
    await page.getByLabel('Workflow ID').fill(WORKFLOW_ID);
    await page.getByLabel('Task Queue').fill('fedflow');
    await page.getByLabel('Workflow Type').fill('migrateWorkload');
    // Input > Data is a CodeMirror editor: the "Data" label points at the editor's container.
    const dataId = await page.locator('label').filter({ hasText: /^\s*Data\s*$/ }).getAttribute('for');
    assert.ok(dataId, 'the Input section has a "Data" label');
    const editor = page.locator(`[id="${dataId}"]`).getByRole('textbox');
    await editor.click();
    await page.keyboard.type(INPUT_TEXT);
    // Click away: the editor re-formats the JSON on blur (and grows), which moves the submit
    // button; clicking it while the editor still has focus would miss it.
    await page.getByRole('heading', { name: 'Start a Workflow' }).click();
    // The UI checks the task queue: our control worker must be polling it.
    await page.getByText('Task Queue is Active').waitFor();
    assert.deepEqual(JSON.parse(await editor.innerText()), INPUT);
    assert.equal(await page.getByRole('radio', { name: 'json/plain' }).isChecked(), true);

    await page.getByTestId('start-workflow-button').click();

    // The UI answers with a toast linking to the run; if it is already gone, use the list.
    const toast = page.getByRole('link', { name: 'Workflow started successfully' });
    const toastShown = await toast.waitFor({ timeout: 10_000 }).then(() => true, () => false);
    if (toastShown) {
      await toast.click();
    } else {
      await page.goto(`${uiUrl}/namespaces/default/workflows`, { waitUntil: 'networkidle' });
      await page.getByRole('link', { name: WORKFLOW_ID, exact: true }).first().click();
    }
    await page.getByTestId('workflow-id-heading').filter({ hasText: WORKFLOW_ID }).waitFor();
    assert.match(page.url(), new RegExp(`/namespaces/default/workflows/${WORKFLOW_ID}/[0-9a-f-]{36}`));

    await waitForCompletedInUi(page);

    // The page shows the outcome: the Result panel holds the migration result.
    const io = page.getByTestId('input-and-result');
    await io.getByText('"status": "completed"').waitFor();
    // The result is long (rounds, the mode decision, the federation's certificates) and the UI's
    // code view renders only the lines in view: scroll it until these lines come into view.
    for (const text of ['"keys": 50', '"placement"']) await scrollIntoViewWithin(page, io, text);

    await page.screenshot({ path: SCREENSHOT });

    // And the same run through the Temporal client.
    const result = (await env!.client.workflow.getHandle(WORKFLOW_ID).result()) as MigrationResult;
    assert.equal(result.status, 'completed');
    assert.equal(result.source, 'dc:paris');
    assert.equal(result.target, 'dc:frankfurt');
    assert.equal(result.keys, KEYS);
    assert.equal(result.verified, true);
    assert.equal((await fed!.workload('kv-demo'))!.site, 'dc:frankfurt');
  });
});

/**
 * Opens the workflows page and clicks "Start Workflow". The UI shows the button once its settings
 * and the namespace have loaded from the server; a first load that has not shown it in 30 s is
 * loaded once more (a slow server at the first request is not what this test is about), and a
 * page that still lacks it fails with what the page shows instead.
 */
async function openStartWorkflow(page: Page, url: string): Promise<void> {
  const button = page.getByRole('button', { name: 'Start Workflow' });
  for (let load = 1; ; load++) {
    await page.goto(url, { waitUntil: 'networkidle' });
    const shown = await button.waitFor({ timeout: 30_000 }).then(() => true, () => false);
    if (shown) break;
    if (load === 2) {
      const text = (await page.locator('body').innerText().catch(() => '(no body)')).replace(/\s+/g, ' ').slice(0, 600);
      assert.fail(`no "Start Workflow" button on ${page.url()} after two loads of 30 s; the page shows: ${text}`);
    }
  }
  await button.click();
}

/** Scrolls the scrollable parts of `within` down step by step until `text` is visible. */
async function scrollIntoViewWithin(page: Page, within: Locator, text: string): Promise<void> {
  const target = within.getByText(text).first();
  for (let step = 0; step < 60; step++) {
    if (await target.isVisible()) return;
    await within.evaluate((root) => {
      for (const el of [root, ...root.querySelectorAll('*')]) if (el.scrollHeight > el.clientHeight + 4) el.scrollTop += 150;
    });
    await page.waitForTimeout(100);
  }
  await target.waitFor({ timeout: 1_000 });
}

/** Polls the workflow page (reloading it) until the run's status badge reads Completed. */
async function waitForCompletedInUi(page: Page): Promise<void> {
  const badge = page.locator('header').getByText(/^\s*(Running|Completed|Failed|Terminated|Canceled|Timed Out|Continued as New)\s*$/).first();
  const deadline = Date.now() + COMPLETED_TIMEOUT_MS;
  let last = '(no status badge)';
  for (;;) {
    last = ((await badge.textContent({ timeout: 5_000 }).catch(() => null)) ?? '(no status badge)').trim();
    if (last === 'Completed') return;
    if (last !== 'Running' && last !== '(no status badge)') assert.fail(`the UI shows the run as ${last}`);
    if (Date.now() > deadline) assert.fail(`the UI did not show the run as Completed within ${COMPLETED_TIMEOUT_MS / 1000} s (last: ${last}, ${page.url()})`);
    await page.waitForTimeout(2_000);
    await page.reload({ waitUntil: 'networkidle' });
  }
}

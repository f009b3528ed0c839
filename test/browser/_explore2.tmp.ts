import { createServer } from 'node:net';
import { writeFileSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { startTestServer } from '../helpers/temporal';
import { startTestFederation } from '../helpers/federation';
import { deploySampleWorkload } from '../../agent/sample-workload';

async function freePort(): Promise<number> {
  return new Promise((res, rej) => { const s = createServer(); s.once('error', rej); s.listen(0, '127.0.0.1', () => { const p = (s.address() as any).port; s.close(() => res(p)); }); });
}
(async () => {
  const uiPort = await freePort();
  const env = await startTestServer({ ui: true, uiPort });
  const fed = await startTestFederation(env);
  await deploySampleWorkload({ config: fed.config, home: fed.home, keys: 50, valueBytes: 64 });
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await page.goto(`http://127.0.0.1:${uiPort}/namespaces/default/workflows`, { waitUntil: 'networkidle' });
    await page.getByRole('button', { name: 'Start Workflow' }).click();
    await page.getByRole('heading', { name: 'Start a Workflow' }).waitFor(); console.log('url', page.url());
    await page.getByLabel('Workflow ID').fill('migrate-kv-demo');
    await page.getByLabel('Task Queue').fill('fedflow');
    await page.getByLabel('Workflow Type').fill('migrateWorkload');
    const ed = page.locator('.cm-content[role="textbox"]');
    await ed.click();
    await page.keyboard.type('{"workloadId": "kv-demo", "targetSite": "dc:frankfurt"}');
    await page.getByRole('heading', { name: 'Start a Workflow' }).click();
    await page.getByText('Task Queue is Active').waitFor();
    console.log('editor text:', JSON.stringify(await ed.innerText()));
    await page.screenshot({ path: '/tmp/ui-filled.png', fullPage: true });
    page.on('response', async (r) => { if (r.url().includes('/api/')) console.log('resp', r.request().method(), r.url().slice(0,150), r.status(), r.request().method()==='POST' ? (await r.text().catch(()=>'')).slice(0,400) + ' REQ ' + (r.request().postData()??'').slice(0,600) : ''); });
    page.on('console', (m) => console.log('console:', m.type(), m.text().slice(0, 300)));
    const btn = page.getByTestId('start-workflow-button');
    console.log('btn disabled', await btn.isDisabled());
    await btn.click();
    await page.waitForTimeout(1500);
    await page.screenshot({ path: '/tmp/ui-after0.png' });
    for (const a of await page.getByRole('alert').all()) console.log('alert:', await a.innerText());
    await page.getByRole('link', { name: 'Workflow started successfully' }).click();
    await page.waitForTimeout(6000);
    console.log('url after toast', page.url());
    await page.screenshot({ path: '/tmp/ui-wf.png' });
    writeFileSync('/tmp/ui-wf.html', await page.content());
    for (const b of await page.locator('[data-testid]').all()) { const t = await b.getAttribute('data-testid'); if (!/nav|timezone|mode|button$/.test(t!)) console.log('tid:', t, JSON.stringify((await b.innerText().catch(() => '')).slice(0, 80))); }
    console.log('result', JSON.stringify(await env.client.workflow.getHandle('migrate-kv-demo').result()));
  } finally {
    await browser.close();
    await fed.stop();
    await env.teardown();
  }
})().catch((e) => { console.error(e); process.exit(1); });

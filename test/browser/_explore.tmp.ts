import { createServer } from 'node:net';
import { chromium } from 'playwright-core';
import { startTestServer } from '../helpers/temporal';

async function freePort(): Promise<number> {
  return new Promise((res, rej) => { const s = createServer(); s.once('error', rej); s.listen(0, '127.0.0.1', () => { const p = (s.address() as any).port; s.close(() => res(p)); }); });
}
(async () => {
  const uiPort = await freePort();
  const env = await startTestServer({ ui: true, uiPort });
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    page.on('console', (m) => console.log('console:', m.type(), m.text().slice(0, 200)));
    await page.goto(`http://127.0.0.1:${uiPort}/namespaces/default/workflows`);
    await page.waitForTimeout(4000);
    await page.screenshot({ path: '/tmp/ui-list.png' });
    const btns = await page.getByRole('button').all();
    for (const b of btns) console.log('button:', JSON.stringify(await b.innerText().catch(() => '')), await b.getAttribute('data-testid'), await b.isDisabled());
    const links = await page.getByRole('link').all();
    for (const b of links) console.log('link:', JSON.stringify((await b.innerText().catch(() => '')).slice(0, 60)), await b.getAttribute('href'), await b.getAttribute('data-testid'));
    await page.goto(`http://127.0.0.1:${uiPort}/namespaces/default/workflows/start-workflow`);
    await page.waitForTimeout(4000);
    await page.screenshot({ path: '/tmp/ui-start.png', fullPage: true });
    const html = await page.content();
    require('node:fs').writeFileSync('/tmp/ui-start.html', html);
    for (const i of await page.locator('input, textarea, [contenteditable], button, label').all()) {
      console.log('el:', await i.evaluate((e: any) => e.tagName + ' id=' + e.id + ' name=' + e.getAttribute('name') + ' testid=' + e.getAttribute('data-testid') + ' type=' + e.getAttribute('type') + ' aria=' + e.getAttribute('aria-label') + ' for=' + e.getAttribute('for') + ' text=' + JSON.stringify((e.innerText || '').slice(0, 50)) + ' disabled=' + e.disabled));
    }
  } finally {
    await browser.close();
    await env.teardown();
  }
})().catch((e) => { console.error(e); process.exit(1); });

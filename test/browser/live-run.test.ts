/**
 * examples/live-run in a real browser, as `npm run example` serves it (vite's build and
 * preview, /graphql passed on to Runway): a click starts a run of the scripted model, and
 * the page shows its status and its answer while it is being written, up to COMPLETED.
 * The screenshot is the one in the example's README.
 */
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { build, preview, type PreviewServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, noChromium, screenshot } from '../support/browser.js';
import { startTestApp, type TestApp } from '../support/test-app.js';

const root = fileURLToPath(new URL('../../examples/live-run/', import.meta.url));

describe.skipIf(noChromium)(noChromium ?? 'examples/live-run in Chromium', { timeout: 120_000 }, () => {
  let t: TestApp;
  let site: PreviewServer;
  let browser: Browser;
  beforeAll(async () => {
    t = await startTestApp({ worker: true });
    await build({ root, logLevel: 'warn' });
    const runway = new URL(t.url).origin;
    site = await preview({ root, logLevel: 'warn', preview: { port: 0, proxy: { '/graphql': { target: runway, ws: true } } } });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await site?.close();
    await t?.close();
  });

  it('starts a run and shows its text as it is written, then COMPLETED', async () => {
    const page = await browser.newPage({ viewport: { width: 1000, height: 640 } });
    const failures: string[] = [];
    page.on('pageerror', (error) => failures.push(error.message));
    await page.goto(site.resolvedUrls!.local[0]!);

    const message = 'pace 40\nTell me a story about octopuses, the ones that live in the deep sea.';
    await page.getByLabel('Message').fill(message);
    await page.getByRole('button', { name: 'Start a run' }).click();

    const status = page.getByTestId('status');
    const text = page.getByTestId('text');
    // Mid-answer: in progress, with part of the text on the page.
    await page.waitForFunction(
      () => {
        const shown = document.querySelector('[data-testid="text"]')?.textContent ?? '';
        return document.querySelector('[data-testid="status"]')?.textContent === 'IN_PROGRESS' && shown.length > 10;
      },
      undefined,
      { timeout: 30_000, polling: 'raf' },
    );
    const partial = await text.textContent();
    await status.getByText('COMPLETED').waitFor({ timeout: 30_000 });
    const final = await text.textContent();
    expect(final).toBe(`echo: ${message}`);
    expect(final!.startsWith(partial!)).toBe(true);
    expect(partial!.length).toBeLessThan(final!.length);
    await page.screenshot({ path: screenshot('live-run.png') });
    expect(failures).toEqual([]);
  });
});

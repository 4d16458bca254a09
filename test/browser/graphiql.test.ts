/**
 * GraphiQL in a real browser: the page loads with its files, opens with the first run as
 * tabs, and running the first tab shows its answer. The screenshot is the one in the README.
 */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, noChromium, screenshot } from '../support/browser.js';
import { startTestApp, type TestApp } from '../support/test-app.js';

describe.skipIf(noChromium)(noChromium ?? 'GraphiQL in Chromium', { timeout: 120_000 }, () => {
  let t: TestApp;
  let browser: Browser;
  beforeAll(async () => {
    t = await startTestApp();
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await t?.close();
  });

  it('opens with the first run as tabs, and runs the first one', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const failures: string[] = [];
    page.on('pageerror', (error) => failures.push(error.message));
    page.on('requestfailed', (request) => failures.push(`${request.url()}: ${request.failure()?.errorText}`));
    await page.goto(t.url);

    const tabs = page.locator('.graphiql-tab');
    await tabs.first().waitFor({ timeout: 60_000 });
    expect(await tabs.allInnerTexts()).toEqual(['Start', 'CreateRun', 'WatchRuns', 'WatchThread', 'AddPacedMessage']);

    await page.locator('.graphiql-execute-button').click();
    const response = page.locator('.graphiql-response');
    await response
      .getByText(/asst_\w+/)
      .first()
      .waitFor({ timeout: 30_000 });
    // The editor lays text out with non-breaking spaces.
    const text = (await response.innerText()).replace(/\s+/g, ' ');
    expect(text).toContain('"model": "scripted"');
    expect(text).toMatch(/"id": "thread_\w+"/);
    await page.screenshot({ path: screenshot('graphiql.png') });
    expect(failures).toEqual([]);
  });
});

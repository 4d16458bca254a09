/**
 * Headless Chromium for the browser specs, through playwright-core with the system's
 * Chromium (Debian's `chromium` package; `.ci/run` installs it when it is missing), so
 * that no browser is downloaded at install.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM_PATH = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';

/** Why the browser specs cannot run here, if they cannot. */
export const noChromium = existsSync(CHROMIUM_PATH)
  ? undefined
  : `skipped: no Chromium at ${CHROMIUM_PATH} (apt-get install -y chromium, or set CHROMIUM_PATH)`;

export function launchChromium(): Promise<Browser> {
  // As root in a container, Chromium's sandbox cannot start.
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: ['--no-sandbox'] });
}

/** Where the specs save their screenshots: the docs show them. */
export const screenshot = (name: string) => new URL(`../../docs/images/${name}`, import.meta.url).pathname;

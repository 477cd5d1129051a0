/**
 * Headless Chromium for what opens a page, the report test and support/screenshot.ts
 * (playwright-core, no browser download): Debian's `chromium` at /usr/bin/chromium, or whatever
 * CHROME_PATH names. Chromium is a prerequisite like Python with moto (README): without it the
 * test fails with the install command.
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { type BrowserContext, chromium } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROME_PATH ?? '/usr/bin/chromium';

/**
 * Headless, and nothing in the background: the test machines' closed network refuses Chromium's
 * own connections (updates, sync, QUIC probes), which would otherwise show as errors or delays.
 */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A browser with a fresh profile under `dir` (playwright passes it as --user-data-dir). */
export async function launchChromium(dir: string, executablePath = CHROMIUM_PATH): Promise<BrowserContext> {
  if (!existsSync(executablePath))
    throw new Error(
      `Chromium not found at ${executablePath}: install it with \`sudo apt-get install -y chromium\` ` +
        '(Debian/Ubuntu), or set CHROME_PATH to a Chrome or Chromium executable',
    );
  return chromium.launchPersistentContext(mkdtempSync(join(dir, 'profile-')), {
    executablePath,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1400, height: 900 },
  });
}

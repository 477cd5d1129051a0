/**
 * `npm run demo:report`'s second half: opens an HTML report from disk in headless Chromium
 * (support/chromium.ts: Debian's chromium, or CHROME_PATH) and saves a full-page screenshot.
 *
 *   tsx support/screenshot.ts [report.html] [screenshot.png]
 *
 * Defaults: ./rekey-report.html (what `rekey demo` writes) and ./rekey-report.png. Fails, naming the
 * file, when the report is missing or the page logs a console error.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { launchChromium } from './chromium.ts';

const [htmlArg = 'rekey-report.html', pngArg = 'rekey-report.png'] = process.argv.slice(2);
const html = resolve(htmlArg);
const png = resolve(pngArg);
if (!existsSync(html)) {
  console.error(`no report at ${html}: run \`npm run demo\` first, or name the report to open`);
  process.exit(1);
}
const dir = mkdtempSync(join(tmpdir(), 'rekey-screenshot-'));
const browser = await launchChromium(dir);
try {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(pathToFileURL(html).href);
  await page.screenshot({ path: png, fullPage: true });
  if (errors.length > 0) {
    console.error(`the report logged console errors:\n${errors.join('\n')}`);
    process.exitCode = 1;
  }
  console.log(`screenshot of ${html}: ${png}`);
} finally {
  await browser.close();
  rmSync(dir, { recursive: true, force: true });
}

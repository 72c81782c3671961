import { existsSync } from 'node:fs';
import type { Page } from 'playwright-core';

/** Debian's package (apt-get install -y chromium), driven by playwright-core: no browser download. */
export const CHROMIUM = '/usr/bin/chromium';

/** Headless, quiet, and nothing fetched from the network the tests did not ask for. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-quic',
  '--no-first-run',
  '--disable-component-update',
  '--disable-sync',
];

/** Why the browser tests are skipped on this machine, or false. */
export const NO_CHROMIUM: string | false = existsSync(CHROMIUM)
  ? false
  : `${CHROMIUM} is missing: install Debian's chromium package (apt-get install -y chromium) to run the browser tests`;

/** Collects the page's uncaught errors and console errors (those `ignore` does not excuse) into `errors`. */
export function collectPageErrors(page: Page, errors: string[], ignore: (text: string) => boolean = () => false): Page {
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !ignore(msg.text())) errors.push(`console: ${msg.text()}`);
  });
  return page;
}

/** Reading a page's text in Chromium tests while the page may redraw. */
import type { Locator } from 'playwright-core';

/**
 * The text of `locator` once it matches `re`, else its last text after 10 s. The viewer draws the
 * open trace again when the store changes and, while the store is first indexed, every second; a
 * row read in the middle of that can come back empty (seen once in CI).
 */
export async function textMatching(locator: Locator, re: RegExp): Promise<string> {
  const until = Date.now() + 10_000;
  for (;;) {
    const text = await locator.innerText();
    if (re.test(text) || Date.now() > until) return text;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Private helper for the browser test and the screenshot task: where Debian's
 * Chromium lives and the flags it needs on an offline, sandboxed machine.
 *
 * @module
 */

/** Debian's Chromium (`apt-get install chromium`, as `.ci/setup` does). */
export const CHROMIUM = "/usr/bin/chromium";

/** Headless flags: no sandbox (root), no GPU, no network chatter. */
export const CHROMIUM_ARGS: readonly string[] = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

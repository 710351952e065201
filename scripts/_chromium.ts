/**
 * Private helper for the browser test and the screenshot task: where Debian's
 * Chromium lives and the flags it needs on an offline, sandboxed machine.
 *
 * @module
 */
import { type BrowserContext, chromium } from "playwright-core";

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

/**
 * Launches headless Chromium with a fresh profile, removed on dispose.
 *
 * @param options More flags and the viewport.
 * @returns The browser context; `await using` it.
 * @throws {Error} Naming the install command when Chromium is missing.
 */
export async function launchChromium(
  options: {
    args?: readonly string[];
    viewport?: { width: number; height: number };
  } = {},
): Promise<{ context: BrowserContext } & AsyncDisposable> {
  await Deno.stat(CHROMIUM).catch(() => {
    throw new Error(
      `Cannot run the browser test: no Chromium at ${CHROMIUM} (install it with "apt-get install chromium", as .ci/setup does)`,
    );
  });
  const profile = await Deno.makeTempDir({ prefix: "shoal-chromium-" });
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_ARGS, ...(options.args ?? [])],
    viewport: options.viewport ?? { width: 1280, height: 860 },
  });
  return {
    context,
    async [Symbol.asyncDispose]() {
      await context.close();
      await Deno.remove(profile, { recursive: true });
    },
  };
}

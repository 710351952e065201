/**
 * Takes the README's dashboard screenshots: starts a tracker and three peers
 * on loopback with a few files, runs real (rate-capped) transfers so the page
 * has live progress, and photographs peer A's dashboard with Chromium.
 *
 * Run with `deno task screenshot`; writes `docs/dashboard.png` (laptop width)
 * and `docs/dashboard-phone.png` (phone width).
 *
 * @module
 */
import { dirname, join } from "node:path";
import { chromium } from "playwright-core";
import { startDashboard } from "../lib/dashboard/dashboard.ts";
import { startPeer } from "../lib/peer/node.ts";
import { startTracker } from "../lib/tracker/server.ts";
import { CHROMIUM, CHROMIUM_ARGS } from "./_chromium.ts";

const MiB = 1024 * 1024;
const docs = new URL("../docs/", import.meta.url).pathname;

/** Writes `size` random bytes to `root/name`. */
async function writeRandom(root: string, name: string, size: number) {
  const path = join(root, name);
  await Deno.mkdir(dirname(path), { recursive: true });
  using file = await Deno.open(path, {
    write: true,
    create: true,
    truncate: true,
  });
  const block = new Uint8Array(MiB);
  for (let left = size; left > 0; left -= block.length) {
    for (let i = 0; i < block.length; i += 65536) {
      crypto.getRandomValues(block.subarray(i, i + 65536));
    }
    const part = block.subarray(0, Math.min(left, block.length));
    for (let done = 0; done < part.length;) {
      done += await file.write(part.subarray(done));
    }
  }
}

/** Polls `probe` until true, or throws after `ms` saying `what`. */
async function until(
  what: string,
  probe: () => boolean | Promise<boolean>,
  ms = 30_000,
) {
  const deadline = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const root = await Deno.makeTempDir({ prefix: "shoal-screenshot-" });
const dirs = { a: join(root, "a"), b: join(root, "b"), c: join(root, "c") };
for (const dir of Object.values(dirs)) await Deno.mkdir(dir);

// B and C hold the network's files; some on both, so they have two holders.
const both: [string, number][] = [
  ["photos/2026-06-lisbon.tar", 64 * MiB],
  ["papers/shoal-design.pdf", 1.4 * MiB],
];
for (const [name, size] of both) {
  await writeRandom(dirs.b, name, Math.round(size));
  await Deno.mkdir(dirname(join(dirs.c, name)), { recursive: true });
  await Deno.copyFile(join(dirs.b, name), join(dirs.c, name));
}
await writeRandom(dirs.b, "datasets/tide-gauges-2025.csv", 6.3 * MiB);
await writeRandom(dirs.b, "field-recordings/harbour-dawn.flac", 23.8 * MiB);
await writeRandom(dirs.c, "talks/p2p-in-deno-slides.pdf", 3.1 * MiB);
await writeRandom(dirs.a, "music/live-session.wav", 48 * MiB);
await Deno.mkdir(join(dirs.a, "notes"));
await Deno.writeTextFile(join(dirs.a, "notes/todo.md"), "- share more\n");

const tracker = await startTracker({ port: 0, hostname: "127.0.0.1" });
const common = {
  tracker: tracker.address,
  hostname: "127.0.0.1",
  chunkSize: 256 * 1024,
  heartbeatIntervalMs: 1000,
};
const peerB = await startPeer({ ...common, shared: dirs.b });
const peerC = await startPeer({
  ...common,
  shared: dirs.c,
  maxDownloadRate: 2.5 * MiB,
});
const peerA = await startPeer({
  ...common,
  shared: dirs.a,
  maxDownloadRate: 3.2 * MiB,
});
const dashboard = await startDashboard(peerA, { port: 0 });
const api = dashboard.url + "api/";
const post = async (target: string) => {
  const response = await fetch(api + "downloads", {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-shoal-token": dashboard.token,
    },
    body: JSON.stringify({ target }),
  });
  if (!response.ok) throw new Error((await response.json()).error);
};

await until(
  "the network to list every file",
  async () => (await peerA.list()).length === 7,
);

const profile = await Deno.makeTempDir({ prefix: "shoal-chromium-" });
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  args: [...CHROMIUM_ARGS],
  viewport: { width: 1280, height: 860 },
  colorScheme: "light",
});
try {
  // A finished download, a running one, and C fetching from A (an upload).
  await post("papers/shoal-design.pdf");
  await until(
    "the first download",
    () =>
      peerA.shares.files().some((f) => f.name === "papers/shoal-design.pdf"),
  );
  await post("photos/2026-06-lisbon.tar");
  void peerC.download("music/live-session.wav").catch(() => {});

  const page = context.pages()[0] ?? await context.newPage();
  // The address the peer prints: the page takes the token from it.
  await page.goto(dashboard.pageUrl);
  await page.locator('#tracker-pill[data-state="connected"]').waitFor();
  await page.locator("#files-body tr[data-name]").nth(6).waitFor();
  await page.locator("#peers-list li").nth(2).waitFor();
  await until("the transfers to be under way", async () => {
    const text = await page.locator("#downloads-list .transfer").first()
      .locator(".pct").textContent();
    return Number.parseInt(text ?? "0") >= 38 &&
      await page.locator("#uploads-list li").count() > 0;
  });
  // Open one file's detail to show the content id and its holders.
  await page.locator(
    '#files-body tr[data-name="photos/2026-06-lisbon.tar"] .holders',
  )
    .click();
  await page.locator("#files-body tr.detail:not([hidden]) dd").nth(1).waitFor();
  await page.waitForTimeout(400); // Let the progress bar's transition settle.
  await Deno.mkdir(docs, { recursive: true });
  await page.screenshot({ path: join(docs, "dashboard.png") });

  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(300);
  await page.screenshot({ path: join(docs, "dashboard-phone.png") });
  console.log(`Wrote ${join(docs, "dashboard.png")} and dashboard-phone.png`);
} finally {
  await context.close();
  await dashboard.close();
  await peerC.close();
  await peerA.close();
  await peerB.close();
  await tracker.close();
  await Deno.remove(profile, { recursive: true });
  await Deno.remove(root, { recursive: true });
}

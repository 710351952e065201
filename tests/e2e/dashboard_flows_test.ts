/**
 * Browser test of what a dashboard user does past the first download, in
 * Debian's Chromium driven by playwright-core: a folder at once, a cancelled
 * download resumed in its row, a clash with a local file said in the page's
 * terms and replaced, a peer that never uses itself as a source, and a
 * tracker pill that follows the tracker as soon as any panel does.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { startDashboard } from "../../lib/dashboard/dashboard.ts";
import { startPeer } from "../../lib/peer/node.ts";
import { startTracker } from "../../lib/tracker/server.ts";
import { TrackerClient } from "../../lib/tracker/client.ts";
import { tcpTransport, type Transport } from "../../lib/net/transport.ts";
import { launchChromium } from "../../scripts/_chromium.ts";
import { pollUntil, randomBytes } from "../_helpers.ts";

const CHUNK = 64 * 1024;
const WAIT = { timeout: 20_000 };

/**
 * Dials `*.test` host names on loopback: the peers advertise names the
 * tracker hands out as they are, as a peer behind a LAN address is listed
 * under an address that is not loopback.
 */
const namedLoopback: Transport = {
  dial: (address, options) =>
    tcpTransport.dial(
      address.replace(/^[a-z-]+\.test:/, "127.0.0.1:"),
      options,
    ),
  listen: (options) => tcpTransport.listen(options),
};

async function openPage(
  context: BrowserContext,
  url: string,
): Promise<{ page: Page; errors: string[] }> {
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(url);
  return { page, errors };
}

Deno.test("Dashboard downloads folders, resumes, replaces, and agrees with itself", async (t) => {
  await using browser = await launchChromium({
    viewport: { width: 1280, height: 900 },
  });
  const dirs = {
    a: await Deno.makeTempDir({ prefix: "shoal-e2e-flows-a-" }),
    b: await Deno.makeTempDir({ prefix: "shoal-e2e-flows-b-" }),
    c: await Deno.makeTempDir({ prefix: "shoal-e2e-flows-c-" }),
  };
  await Deno.mkdir(join(dirs.b, "docs/sub"), { recursive: true });
  const content = {
    "docs/a.bin": randomBytes(300 * 1024 + 17),
    "docs/sub/b.txt": randomBytes(1234),
    "big.bin": randomBytes(2 * 1024 * 1024),
    "notes.txt": randomBytes(999),
  };
  for (const [name, bytes] of Object.entries(content)) {
    await Deno.writeFile(join(dirs.b, name), bytes);
  }
  // A has a different notes.txt of its own.
  await Deno.writeTextFile(join(dirs.a, "notes.txt"), "mine, not B's");

  await using tracker = await startTracker({
    port: 0,
    hostname: "127.0.0.1",
    trustAdvertisedAddress: true,
  });
  const common = {
    tracker: tracker.address,
    hostname: "127.0.0.1",
    heartbeatIntervalMs: 200,
    transport: namedLoopback,
  };
  await using peerB = await startPeer({
    ...common,
    shared: dirs.b,
    chunkSize: CHUNK,
    advertiseHost: "peer-b.test",
  });
  // A's downloads are capped so that each lasts a few seconds.
  await using peerA = await startPeer({
    ...common,
    shared: dirs.a,
    advertiseHost: "peer-a.test",
    maxDownloadRate: 512 * 1024,
  });
  await peerB.refresh();
  await using dashboard = await startDashboard(peerA, { port: 0 });
  const addressB = `peer-b.test:${peerB.port}`;
  const addressA = `peer-a.test:${peerA.port}`;
  const { page, errors } = await openPage(browser.context, dashboard.pageUrl);
  await page.locator('#tracker-pill[data-state="connected"]').waitFor(WAIT);
  const search = page.getByRole("searchbox", { name: "Search network files" });
  const rowOf = (name: string) =>
    page.locator("#downloads-list .transfer").filter({
      has: page.locator(".fname", { hasText: name }),
    });

  await t.step(
    "a folder downloads at once, with a summary per file",
    async () => {
      await search.fill("docs/");
      const all = page.locator("#download-all");
      await all.filter({ hasText: "Download all 2 matching docs/" }).waitFor(
        WAIT,
      );
      await all.click();
      const row = rowOf("docs/");
      await row.and(page.locator('[data-state="done"]')).waitFor(WAIT);
      assert.match(
        String(await row.locator(".meta").textContent()),
        /2\/2 files/,
      );
      assert.deepEqual(
        await row.locator(".batch-files li.ok .fname").allTextContents(),
        ["docs/a.bin", "docs/sub/b.txt"],
      );
      for (const name of ["docs/a.bin", "docs/sub/b.txt"] as const) {
        assert.deepEqual(
          await Deno.readFile(join(dirs.a, name)),
          content[name],
        );
      }
    },
  );

  await t.step("a cancelled download resumes in the same row", async () => {
    await search.fill("big.bin");
    // What A reports while it downloads: its sources and uploads.
    const uploadsSeen = new Set<string>();
    let mostSources = 0;
    const watchUploads = setInterval(() => {
      const status = peerA.status();
      for (const u of status.uploads) uploadsSeen.add(u.remote);
      for (const d of status.downloads) {
        mostSources = Math.max(mostSources, d.sources);
      }
    }, 20);
    try {
      await page.getByRole("button", { name: "Download big.bin" }).click();
      const row = rowOf("big.bin");
      await row.and(page.locator('[data-state="active"]')).waitFor(WAIT);
      await row.getByRole("button", { name: "Cancel big.bin" }).click();
      await row.and(page.locator('[data-state="cancelled"]')).waitFor(WAIT);
      await row.getByRole("button", { name: "Resume big.bin" }).click();
      await row.and(page.locator('[data-state="active"]')).waitFor(WAIT);
      assert.equal(await rowOf("big.bin").count(), 1);
      // While it runs, the tracker lists A itself among the holders (its
      // verified chunks are served): A must still not ask itself.
      const client = new TrackerClient(tracker.address);
      await pollUntil(
        async () =>
          (await client.getPeers({ name: "big.bin" })).some((p) =>
            p.address === addressA
          ),
        "A listed as a holder of big.bin",
        { timeoutMs: 10_000 },
      );
      await row.and(page.locator('[data-state="done"]')).waitFor(WAIT);
      assert.equal(await rowOf("big.bin").count(), 1);
      assert.deepEqual(
        await Deno.readFile(join(dirs.a, "big.bin")),
        content["big.bin"],
      );
      assert.deepEqual(
        await row.locator(".swarm .sources li .addr.mono").allTextContents(),
        [addressB],
      );
    } finally {
      clearInterval(watchUploads);
    }
    assert.deepEqual([...uploadsSeen], [], "A uploaded to itself");
    assert.equal(mostSources, 1, "A counted itself as a source");
    assert.equal(await page.locator("#uploads-list li").count(), 0);
  });

  await t.step(
    "a clash says what to do in the page's terms, once",
    async () => {
      const idB = peerB.shares.byName("notes.txt")!.id;
      await search.fill("notes.txt");
      const fileRow = page.locator(`#files-body tr[data-id="${idB}"]`);
      await fileRow.waitFor(WAIT);
      const row = rowOf("notes.txt");
      const keys = new Set<string>();
      for (let attempt = 0; attempt < 2; attempt++) {
        const [response] = await Promise.all([
          page.waitForResponse((r) =>
            r.url().endsWith("/api/downloads") &&
            r.request().method() === "POST"
          ),
          fileRow.getByRole("button", { name: "Download notes.txt" }).click(),
        ]);
        const { download } = await response.json();
        keys.add(download.key);
        // The attempt ended (asked of the API: the row looks the same).
        await pollUntil(async () => {
          const { downloads } = await (await fetch(
            `${dashboard.url}api/downloads`,
            { headers: { "x-shoal-token": dashboard.token } },
          )).json();
          const notes = downloads.filter((d: { name: string }) =>
            d.name === "notes.txt"
          );
          // Download again replaced the failed row instead of adding one.
          assert.equal(notes.length, 1);
          return notes[0].state === "failed";
        }, "the notes.txt download to fail");
      }
      assert.equal(keys.size, 1, "Download again made a new row");
      await row.locator(".error").filter({ hasText: "A different file" })
        .waitFor(WAIT);
      assert.equal(await row.count(), 1);
      const error = String(await row.locator(".error").textContent());
      assert.equal(
        error,
        "A different file named notes.txt is already in the download folder: choose Replace to overwrite it, or move it away and choose Retry",
      );
      assert.doesNotMatch(error, /--overwrite|Cannot download [^:]*: Cannot/);
      await row.getByRole("button", { name: "Replace notes.txt" }).click();
      await row.and(page.locator('[data-state="done"]')).waitFor(WAIT);
      assert.deepEqual(
        await Deno.readFile(join(dirs.a, "notes.txt")),
        content["notes.txt"],
      );
    },
  );
  assert.deepEqual(errors, []);
  await page.close();

  await t.step(
    "the pill turns red as soon as a panel finds the tracker gone",
    async () => {
      // A peer that would not notice by itself for a minute (its heartbeat).
      const lonelyTracker = await startTracker({
        port: 0,
        hostname: "127.0.0.1",
      });
      await using peerC = await startPeer({
        tracker: lonelyTracker.address,
        hostname: "127.0.0.1",
        shared: dirs.c,
        heartbeatIntervalMs: 60_000,
      });
      await using dashboardC = await startDashboard(peerC, { port: 0 });
      const c = await openPage(browser.context, dashboardC.pageUrl);
      await c.page.locator('#tracker-pill[data-state="connected"]').waitFor(
        WAIT,
      );
      await lonelyTracker.close();
      await c.page.getByRole("searchbox", { name: "Search network files" })
        .fill("anything");
      await c.page.locator("#files-error").filter({
        hasText: "the tracker is unreachable",
      }).waitFor(WAIT);
      // Within seconds, not at the next heartbeat a minute away.
      await c.page.locator('#tracker-pill[data-state="unreachable"]').waitFor({
        timeout: 10_000,
      });
      assert.equal(
        (await c.page.locator("#tracker-text").textContent())?.trim(),
        "Tracker unreachable",
      );
      await c.page.close();
    },
  );

  await dashboard.close();
  await peerA.close();
  await peerB.close();
  for (const dir of Object.values(dirs)) {
    await Deno.remove(dir, { recursive: true });
  }
});

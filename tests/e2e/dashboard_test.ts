/**
 * Browser end-to-end test of the peer dashboard: Debian's Chromium, driven by
 * playwright-core, clicks through a real tracker and two real peers.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { startDashboard } from "../../lib/dashboard/dashboard.ts";
import { startPeer } from "../../lib/peer/node.ts";
import { startTracker } from "../../lib/tracker/server.ts";
import { launchChromium } from "../../scripts/_chromium.ts";

const CHUNK = 64 * 1024;
/** A host name the browser resolves to 127.0.0.1, as a rebinding attack would. */
const REBIND_HOST = "rebind.test";

/** Opens a page that records script errors. */
async function openPage(
  context: BrowserContext,
): Promise<{ page: Page; errors: string[] }> {
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(error.message));
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text());
  });
  return { page, errors };
}

/** What the tests use of a page's window (Deno's types have no DOM). */
interface BrowserWindow {
  getComputedStyle(element: unknown): { backgroundColor: string };
}

function randomBytes(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i += 65536) {
    crypto.getRandomValues(bytes.subarray(i, Math.min(length, i + 65536)));
  }
  return bytes;
}

Deno.test("Peer dashboard works in a real browser", async (t) => {
  await using browser = await launchChromium({
    args: [`--host-resolver-rules=MAP ${REBIND_HOST} 127.0.0.1`],
  });
  const dirs = {
    a: await Deno.makeTempDir({ prefix: "shoal-e2e-dash-a-" }),
    b: await Deno.makeTempDir({ prefix: "shoal-e2e-dash-b-" }),
    c: await Deno.makeTempDir({ prefix: "shoal-e2e-dash-c-" }),
  };
  const content = randomBytes(2 * 1024 * 1024 + 4321);
  await Deno.writeFile(join(dirs.b, "holiday-video.bin"), content);
  await Deno.writeTextFile(join(dirs.b, "readme.txt"), "not this one");

  await using tracker = await startTracker({ port: 0, hostname: "127.0.0.1" });
  const peerOptions = {
    tracker: tracker.address,
    hostname: "127.0.0.1",
    heartbeatIntervalMs: 500,
  };
  await using peerB = await startPeer({
    ...peerOptions,
    shared: dirs.b,
    chunkSize: CHUNK,
  });
  await using peerA = await startPeer({ ...peerOptions, shared: dirs.a });
  await using dashboard = await startDashboard(peerA, { port: 0 });

  await t.step(
    "a click downloads a multi-chunk file to 100 %, byte-exact",
    async () => {
      const { page, errors } = await openPage(browser.context);
      await page.goto(dashboard.pageUrl);
      await page.locator('#tracker-pill[data-state="connected"]').waitFor({
        timeout: 10_000,
      });
      // The page keeps the token for its tab and takes it out of the address.
      assert.equal(page.url(), dashboard.url);
      const search = page.getByRole("searchbox", {
        name: "Search network files",
      });
      // Both of B's files show once B has registered; the search narrows them.
      await page.locator('#files-body tr[data-name="readme.txt"]').waitFor({
        timeout: 10_000,
      });
      await search.fill("video");
      await page.locator('#files-body tr[data-name="readme.txt"]').waitFor({
        state: "detached",
      });
      const row = page.locator('#files-body tr[data-name="holiday-video.bin"]');
      assert.equal(
        (await row.locator(".num").first().textContent())?.trim(),
        "2.00 MiB",
      );
      assert.equal((await row.locator(".holders").textContent())?.trim(), "1");
      assert.match(
        String(await row.locator(".fid").getAttribute("title")),
        /^Content id [0-9a-f]{64}$/,
      );

      await page.getByRole("button", { name: "Download holiday-video.bin" })
        .click();
      const item = page.locator("#downloads-list .transfer").filter({
        hasText: "holiday-video.bin",
      });
      await item.and(page.locator('[data-state="done"]')).waitFor({
        timeout: 15_000,
      });
      assert.equal((await item.locator(".pct").textContent())?.trim(), "100 %");
      assert.equal(
        await item.locator(".bar").getAttribute("aria-valuenow"),
        "100",
      );
      assert.match(
        String(await item.locator(".meta").textContent()),
        /33\/33 chunks/,
      );
      assert.deepEqual(
        await Deno.readFile(join(dirs.a, "holiday-video.bin")),
        content,
      );
      // Its swarm view: every chunk coloured by the seeder, named in the
      // legend; nothing missing.
      const swarm = item.locator(".swarm");
      await swarm.locator(".chunkmap .cell.c1").first().waitFor({
        timeout: 10_000,
      });
      assert.equal(await swarm.locator(".chunkmap .cell").count(), 33);
      assert.equal(await swarm.locator(".chunkmap .cell.c1").count(), 33);
      const colour = await swarm.locator(".chunkmap .cell").first().evaluate(
        (cell) =>
          (globalThis as unknown as BrowserWindow).getComputedStyle(cell)
            .backgroundColor,
      );
      const legendColour = await swarm.locator(".sources .swatch.c1")
        .evaluate((swatch) =>
          (globalThis as unknown as BrowserWindow).getComputedStyle(swatch)
            .backgroundColor
        );
      assert.equal(colour, legendColour);
      assert.equal(colour, "rgb(31, 119, 180)");
      assert.equal(
        (await swarm.locator(".sources li .addr").allTextContents()).join(),
        `127.0.0.1:${peerB.port}`,
      );
      assert.match(
        String(await swarm.locator(".swarm-summary").textContent()),
        /Swarm · 1 source/,
      );
      // The finished file is now shared by A, and the page says so live.
      await page.locator("#shared-body tr").filter({
        hasText: "holiday-video.bin",
      })
        .waitFor({ timeout: 10_000 });
      // A reload keeps working: the tab still holds the token.
      await page.reload();
      await page.locator('#files-body tr[data-name="readme.txt"]').waitFor({
        timeout: 10_000,
      });
      assert.deepEqual(errors, []);
      await page.close();
    },
  );

  await t.step(
    "a page opened without the token says how to get in and shows nothing",
    async () => {
      const { page, errors } = await openPage(browser.context);
      await page.goto(dashboard.url);
      await page.locator('#tracker-pill[data-state="locked"]').waitFor({
        timeout: 10_000,
      });
      assert.match(
        String(await page.locator("#notice-text").textContent()),
        /open the address the peer printed, which ends in #token=/,
      );
      assert.equal(await page.locator("#files-body tr").count(), 0);
      assert.equal(await page.locator("#shared-body tr").count(), 0);
      assert.deepEqual(errors, []);
      await page.close();
      // A wrong token is refused by the API, and the page says the same.
      const wrong = await openPage(browser.context);
      await wrong.page.goto(`${dashboard.url}#token=${"0".repeat(64)}`);
      await wrong.page.locator('#tracker-pill[data-state="locked"]').waitFor({
        timeout: 10_000,
      });
      assert.equal(await wrong.page.locator("#files-body tr").count(), 0);
      assert.ok(
        wrong.errors.every((e) => /status of 403/.test(e)),
        `unexpected page errors: ${wrong.errors.join("; ")}`,
      );
      await wrong.page.close();
    },
  );

  await t.step("a missing tracker shows a readable error", async () => {
    const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const deadAddress = `127.0.0.1:${closed.addr.port}`;
    closed.close();
    await using lonely = await startPeer({
      tracker: deadAddress,
      hostname: "127.0.0.1",
      shared: dirs.c,
    });
    await using lonelyDashboard = await startDashboard(lonely, { port: 0 });
    const { page, errors } = await openPage(browser.context);
    await page.goto(lonelyDashboard.pageUrl);
    await page.locator('#tracker-pill[data-state="unreachable"]').waitFor({
      timeout: 10_000,
    });
    assert.equal(
      (await page.locator("#tracker-text").textContent())?.trim(),
      "Tracker unreachable",
    );
    // The list reloads when the peer reports the tracker down; wait for it.
    const error = page.locator("#files-error");
    await error.waitFor({ state: "visible", timeout: 10_000 });
    const text = String(await error.textContent());
    assert.match(text, /^Cannot list files: the tracker is unreachable/);
    assert.ok(!/\bat .*:\d+:\d+/.test(text), `a stack trace leaked: ${text}`);
    // The failed /api/files call is the only console error allowed.
    assert.ok(
      errors.every((e) => /status of 502/.test(e)),
      `unexpected page errors: ${errors.join("; ")}`,
    );
    await page.close();
  });

  await t.step(
    "a page loaded under a foreign host name is refused",
    async () => {
      const { page } = await openPage(browser.context);
      const response = await page.goto(
        `http://${REBIND_HOST}:${dashboard.port}/`,
      );
      assert.equal(response?.status(), 403);
      const body = String(await page.textContent("body"));
      assert.match(JSON.parse(body).error, /^Refused Host "rebind\.test:\d+"/);
      assert.ok(!body.includes("app.js"), "served the page anyway");
      await page.close();
    },
  );

  await dashboard.close();
  await peerA.close();
  await peerB.close();
  for (const dir of Object.values(dirs)) {
    await Deno.remove(dir, { recursive: true });
  }
});

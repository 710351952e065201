/**
 * Unit tests of the upload-slot policy (`lib/peer/upload_slots.ts`) with
 * synthetic peers and a fake clock: a few peers served at once, rotation,
 * the optimistic slot for newcomers, reciprocity, and idle slots freed.
 *
 * @module
 */
import assert from "node:assert/strict";
import { UploadSlots } from "../lib/peer/upload_slots.ts";

function fakeClock() {
  const clock = { t: 0, now: () => clock.t };
  return clock;
}

/** Every peer asks once; returns those served. */
function round(slots: UploadSlots, peers: string[]): string[] {
  return peers.filter((p) => slots.request(p).unchoked);
}

const names = (n: number) => Array.from({ length: n }, (_, i) => `p${i}`);

Deno.test("A lone peer is always served: one downloader gets the whole capped rate", () => {
  const clock = fakeClock();
  const slots = new UploadSlots({ clock });
  for (let i = 0; i < 100; i++) {
    assert.equal(slots.request("only").unchoked, true);
    clock.t += 700;
  }
});

Deno.test("At most `slots` peers are served at once; the others are told when to ask again", () => {
  const clock = fakeClock();
  const slots = new UploadSlots({ slots: 4, clock, maxRetryAfterMs: 1000 });
  const peers = names(10);
  const served = round(slots, peers);
  assert.equal(served.length, 4);
  for (const p of peers.filter((p) => !served.includes(p))) {
    const d = slots.request(p);
    assert.equal(d.unchoked, false);
    if (!d.unchoked) {
      assert.ok(
        d.retryAfterMs > 0 && d.retryAfterMs <= 1000,
        `${d.retryAfterMs}`,
      );
    }
  }
  // Asking again within the period changes nothing.
  clock.t += 500;
  assert.deepEqual(round(slots, peers), served);
});

Deno.test("Slots rotate: within a few periods every interested peer is served", () => {
  const clock = fakeClock();
  const slots = new UploadSlots({ slots: 4, rotateMs: 5000, clock });
  const peers = names(12);
  const everServed = new Set<string>();
  for (let t = 0; t < 3 * 5000; t += 250) {
    clock.t = t;
    for (const p of round(slots, peers)) everServed.add(p);
    assert.ok(slots.unchoked().length <= 4);
  }
  assert.equal(everServed.size, 12);
});

Deno.test("A newcomer gets the optimistic slot at the next rotation", () => {
  const clock = fakeClock();
  const slots = new UploadSlots({ slots: 2, rotateMs: 5000, clock });
  const first = ["a", "b", "c"];
  for (let t = 0; t < 5000; t += 250) {
    clock.t = t;
    round(slots, first);
  }
  clock.t = 5000;
  // The newcomer asks first after the rotation is due.
  assert.equal(slots.request("new").unchoked, true);
  assert.equal(round(slots, first).length, 1);
});

Deno.test("Peers that upload to us keep the regular slots; the rest share the optimistic one", () => {
  const clock = fakeClock();
  const uploaders = new Set(["u1", "u2", "u3"]);
  const slots = new UploadSlots({
    slots: 4,
    rotateMs: 5000,
    clock,
    reciprocity: (p) => uploaders.has(p) ? 1_000_000 : 0,
  });
  const peers = [...names(6), ...uploaders];
  const servedCount = new Map<string, number>();
  for (let t = 0; t < 60_000; t += 500) {
    clock.t = t;
    for (const p of round(slots, peers)) {
      servedCount.set(p, (servedCount.get(p) ?? 0) + 1);
    }
    // From the first rotation after they asked, the uploaders hold the
    // regular slots (before it, slots went first come, first served).
    if (t < 5000) continue;
    for (const u of uploaders) assert.ok(slots.unchoked().includes(u), `${t}`);
  }
  const others = names(6).map((p) => servedCount.get(p) ?? 0);
  assert.ok(
    others.every((n) => n > 0),
    `every other peer had a turn: ${others}`,
  );
});

Deno.test("A slot whose holder went quiet goes to a waiting peer before the rotation", () => {
  const clock = fakeClock();
  const slots = new UploadSlots({
    slots: 2,
    rotateMs: 5000,
    idleMs: 1000,
    clock,
  });
  assert.deepEqual(round(slots, ["a", "b", "c"]), ["a", "b"]);
  clock.t = 600;
  assert.deepEqual(round(slots, ["a", "c"]), ["a"]); // b is quiet
  clock.t = 1700;
  assert.equal(slots.request("a").unchoked, true);
  assert.equal(slots.request("c").unchoked, true, "b's slot went to c");
  assert.equal(slots.request("b").unchoked, false);
});

Deno.test("A peer that left frees its slot at once", () => {
  const clock = fakeClock();
  const slots = new UploadSlots({ slots: 1, clock });
  assert.equal(slots.request("a").unchoked, true);
  assert.equal(slots.request("b").unchoked, false);
  slots.leave("a");
  clock.t = 10;
  assert.equal(slots.request("b").unchoked, true);
});

/**
 * Unit tests of a seeder's chunk spreading (`lib/peer/seed_spread.ts`) with
 * synthetic requesters and a fake clock, and of the change feed of a
 * download in progress (`lib/peer/_chunk_news.ts`).
 *
 * @module
 */
import assert from "node:assert/strict";
import { SeedSpread } from "../lib/peer/seed_spread.ts";
import { ChunkNews } from "../lib/peer/_chunk_news.ts";

const ID = "a".repeat(64);

function fakeClock() {
  const clock = { t: 0, now: () => clock.t };
  return clock;
}

Deno.test("A seeder refuses a chunk handed out already while others never were, when the swarm has other sources", () => {
  const clock = fakeClock();
  const spread = new SeedSpread({ clock, retryAfterMs: 200 });
  const a = { peer: "a", serves: true };
  const b = { peer: "b", serves: true };
  assert.equal(spread.request(ID, 4, 0, a).unchoked, true);
  spread.uploaded(ID, 4, 0);
  assert.equal(spread.neverUploaded(ID), 3);
  assert.deepEqual(spread.request(ID, 4, 0, b), {
    unchoked: false,
    retryAfterMs: 200,
  });
  assert.equal(
    spread.request(ID, 4, 1, b).unchoked,
    true,
    "a new chunk is served",
  );
});

Deno.test("A seeder never refuses the same requester twice in a row", () => {
  const spread = new SeedSpread({ clock: fakeClock() });
  const a = { peer: "a", serves: true };
  const b = { peer: "b", serves: true };
  spread.request(ID, 8, 0, a);
  spread.uploaded(ID, 8, 0);
  const answers = [];
  for (let i = 0; i < 6; i++) {
    answers.push(spread.request(ID, 8, 0, b).unchoked);
  }
  assert.deepEqual(answers, [false, true, false, true, false, true]);
});

Deno.test("A requester with no other source is never refused", () => {
  const clock = fakeClock();
  const spread = new SeedSpread({ clock, activeMs: 5000 });
  const lone = { peer: "lone", serves: true };
  const silent = { peer: "silent", serves: false };
  for (let i = 0; i < 4; i++) {
    assert.equal(spread.request(ID, 4, i % 2, lone).unchoked, true);
    spread.uploaded(ID, 4, i % 2);
  }
  // Another requester that does not serve (no hello): never refused.
  assert.equal(spread.request(ID, 4, 0, silent).unchoked, true);
  spread.uploaded(ID, 4, 0);
  // The other requester went quiet long ago: the lone one is alone again.
  clock.t = 10_000;
  assert.equal(spread.request(ID, 4, 0, lone).unchoked, true);
});

Deno.test("Once every chunk went out, nothing is refused; counts fade so a later crowd is spread again", () => {
  const clock = fakeClock();
  const spread = new SeedSpread({ clock, decayMs: 60_000 });
  const a = { peer: "a", serves: true };
  const b = { peer: "b", serves: true };
  for (let i = 0; i < 3; i++) {
    spread.request(ID, 3, i, a);
    spread.uploaded(ID, 3, i);
  }
  assert.equal(spread.neverUploaded(ID), 0);
  assert.equal(spread.request(ID, 3, 0, b).unchoked, true);
  clock.t = 60_000;
  spread.request(ID, 3, 1, a);
  assert.equal(spread.neverUploaded(ID), 3);
});

Deno.test("A chunk feed lists the chunks verified since a version, and forgets old ones", () => {
  const news = new ChunkNews(10, 4);
  for (const i of [5, 6, 7]) news.verified(i);
  assert.equal(news.version, 13);
  assert.deepEqual(news.since(10), [5, 6, 7]);
  assert.deepEqual(news.since(12), [7]);
  assert.deepEqual(news.since(13), []);
  assert.equal(news.since(14), undefined, "a version from elsewhere");
  for (let i = 0; i < 10; i++) news.verified(100 + i);
  assert.equal(news.since(10), undefined, "forgotten");
  assert.deepEqual(news.since(news.version - 2), [108, 109]);
});

Deno.test("A chunk feed wakes its waiters on the next chunk, at the end, or on abort", async () => {
  const news = new ChunkNews();
  const first = news.changed(0, new AbortController().signal);
  assert.equal(news.waiting, 1);
  news.verified(3);
  await first;
  assert.equal(news.waiting, 0);
  const abort = new AbortController();
  const second = news.changed(1, abort.signal);
  abort.abort();
  await second;
  const third = news.changed(1, new AbortController().signal);
  news.end();
  await third;
  assert.equal(news.waiting, 0);
});

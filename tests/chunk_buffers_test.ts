/**
 * Tests of the shared upload buffer pool: buffers are lent per chunk, the
 * bytes lent out are bounded, borrowers wait in order, and only a few free
 * buffers are kept.
 *
 * @module
 */
import assert from "node:assert/strict";
import { UploadBuffers } from "../lib/download/_chunk_buffers.ts";

const KIB = 1024;

/** Whether `promise` settled once pending callbacks ran. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  promise.then(() => done = true, () => done = true);
  await new Promise((resolve) => setTimeout(resolve, 0));
  return done;
}

Deno.test("UploadBuffers lends a buffer per chunk and holds none once all are back", async () => {
  const pool = new UploadBuffers({ maxBytes: 64 * KIB, keep: 2 });
  const lent = await Promise.all(
    Array.from({ length: 8 }, () => pool.acquire(8 * KIB)),
  );
  assert.equal(pool.lent, 8);
  assert.equal(pool.lentBytes, 64 * KIB);
  assert.ok(lent.every((b) => b.length === 8 * KIB));
  assert.equal(new Set(lent.map((b) => b.buffer)).size, 8, "shared memory");
  for (const bytes of lent) pool.release(bytes);
  assert.equal(pool.lent, 0);
  assert.equal(pool.lentBytes, 0);
  assert.equal(pool.keptBytes, 2 * 8 * KIB, "only `keep` free buffers");
});

Deno.test("UploadBuffers reuses a released buffer instead of allocating", async () => {
  const pool = new UploadBuffers();
  const first = await pool.acquire(4 * KIB + 9);
  first.fill(7);
  pool.release(first);
  const again = await pool.acquire(4 * KIB + 9);
  assert.equal(again.buffer, first.buffer);
  // A shorter chunk (the last one of a file) fits in the same memory.
  pool.release(again);
  const short = await pool.acquire(100);
  assert.equal(short.length, 100);
  assert.equal(short.buffer, first.buffer);
  pool.release(short);
  // A longer one needs new memory; the kept buffers stay bounded.
  const long = await pool.acquire(8 * KIB);
  assert.notEqual(long.buffer, first.buffer);
  pool.release(long);
  assert.equal(pool.keptBytes, 4 * KIB + 9 + 8 * KIB);
});

Deno.test("UploadBuffers makes borrowers past maxBytes wait, in order", async () => {
  const pool = new UploadBuffers({ maxBytes: 3 * KIB });
  const held = [
    await pool.acquire(KIB),
    await pool.acquire(KIB),
    await pool.acquire(KIB),
  ];
  const fourth = pool.acquire(KIB);
  const fifth = pool.acquire(KIB);
  assert.equal(await settled(fourth), false, "fourth waits");
  assert.equal(await settled(fifth), false, "fifth waits");
  assert.equal(pool.lentBytes, 3 * KIB);

  pool.release(held.pop()!);
  assert.equal(await settled(fourth), true, "fourth goes first");
  assert.equal(await settled(fifth), false, "fifth still waits");
  // A small request does not overtake the one waiting in front of it.
  const sixth = pool.acquire(1);
  assert.equal(await settled(sixth), false);

  pool.release(held.pop()!);
  assert.equal(await settled(fifth), true);
  pool.release(held.pop()!);
  assert.equal(await settled(sixth), true);
  for (const bytes of await Promise.all([fourth, fifth, sixth])) {
    pool.release(bytes);
  }
  assert.equal(pool.lent, 0);
  assert.equal(pool.lentBytes, 0);
});

Deno.test("UploadBuffers lends one buffer larger than maxBytes when none is lent", async () => {
  const pool = new UploadBuffers({ maxBytes: KIB });
  const big = await pool.acquire(4 * KIB);
  assert.equal(big.length, 4 * KIB);
  const next = pool.acquire(1);
  assert.equal(await settled(next), false);
  pool.release(big);
  pool.release(await next);
});

Deno.test("UploadBuffers stops a wait when its signal aborts and serves the next", async () => {
  const pool = new UploadBuffers({ maxBytes: KIB });
  const held = await pool.acquire(KIB);
  const controller = new AbortController();
  const aborted = pool.acquire(KIB, controller.signal);
  const behind = pool.acquire(KIB);
  controller.abort(new Error("Connection closed"));
  await assert.rejects(aborted, /Connection closed/);
  assert.equal(await settled(behind), false);
  pool.release(held);
  pool.release(await behind);
  assert.equal(pool.lent, 0);
  await assert.rejects(
    pool.acquire(1, AbortSignal.abort(new Error("Already gone"))),
    /Already gone/,
  );
  assert.equal(pool.lent, 0);
});

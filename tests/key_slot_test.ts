/**
 * Tests of the Redis Cluster hash slot the Redis store routes by: Redis's
 * own examples, and agreement with the `cluster-key-slot` package on keys
 * with and without hash tags, ASCII or not.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import oracle from "cluster-key-slot";
import { keySlot } from "../lib/tracker/_key_slot.ts";

Deno.test("keySlot matches Redis's examples", () => {
  // CRC16/XMODEM check value 0x31C3 of "123456789".
  assert.equal(keySlot("123456789"), 0x31c3 & 16383);
  // Keys sharing a hash tag share a slot; an empty tag hashes the whole key.
  assert.equal(keySlot("{user1000}.following"), keySlot("user1000"));
  assert.equal(keySlot("{user1000}.followers"), keySlot("user1000"));
  assert.notEqual(keySlot("foo{}{bar}"), keySlot("bar"));
  assert.equal(keySlot("foo{{bar}}zap"), keySlot("{bar"));
  assert.equal(keySlot("foo{bar}{zap}"), keySlot("bar"));
});

Deno.test("keySlot agrees with cluster-key-slot on any key", () => {
  const part = fc.string({ unit: "binary", maxLength: 12 });
  const key = fc.oneof(
    fc.string({ unit: "binary", maxLength: 40 }),
    fc.tuple(part, part, part).map(([a, b, c]) => `${a}{${b}}${c}`),
    fc.tuple(fc.string({ maxLength: 30 }), fc.string({ maxLength: 30 })).map((
      [name, id],
    ) => `shoal:{f:${name}}:${id}`),
  );
  fc.assert(
    fc.property(key, (k) => keySlot(k) === oracle(k)),
    { numRuns: 20_000, seed: 20261130 },
  );
});

/**
 * Tests of the registry's holder sets: network keys for IPv4 and IPv6, and
 * samples that are fair across networks, random, complete and free of
 * duplicates, against a model under random adds and deletes.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { HolderSet, networkOf } from "../lib/tracker/_holder_set.ts";

const SEED = 20240611;

/** A seeded random generator (mulberry32), so samples are reproducible. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("networkOf keys IPv4 by address and IPv6 by its /64", () => {
  assert.equal(networkOf("10.1.2.3"), "10.1.2.3");
  assert.equal(networkOf("2001:db8::1"), "2001:db8:0:0::/64");
  assert.equal(networkOf("2001:DB8:0:0:ffff::9"), "2001:db8:0:0::/64");
  assert.equal(networkOf("[2001:db8::7]"), "2001:db8:0:0::/64");
  assert.equal(networkOf("fe80::1%eth0"), "fe80:0:0:0::/64");
  assert.notEqual(networkOf("2001:db8:0:1::1"), networkOf("2001:db8::1"));
  assert.equal(networkOf("::ffff:10.1.2.3"), "10.1.2.3");
  assert.equal(networkOf("::1"), "0:0:0:0::/64");
  // Anything else is its own key.
  assert.equal(networkOf("example.org"), "example.org");
  assert.equal(networkOf("1:2:3"), "1:2:3");
  assert.equal(networkOf("1::2::3"), "1::2::3");
});

Deno.test("HolderSet samples round-robin across networks before repeating one", () => {
  const set = new HolderSet();
  for (let port = 1; port <= 100; port++) set.add(`10.0.0.9:${port}`, "big");
  for (let port = 1; port <= 5; port++) set.add(`10.0.0.5:${port}`, "mid");
  set.add("10.0.0.1:1", "one");
  const random = seededRandom(1);
  for (let round = 0; round < 200; round++) {
    const sample = set.sample(10, random);
    const networks = sample.map((address) => address.split(":")[0]);
    assert.equal(new Set(sample).size, 10);
    // The first three come from three different networks.
    assert.equal(new Set(networks.slice(0, 3)).size, 3);
    const count = (ip: string) => networks.filter((n) => n === ip).length;
    assert.equal(count("10.0.0.1"), 1);
    assert.ok(count("10.0.0.5") >= 4 && count("10.0.0.9") >= 4);
  }
});

Deno.test("HolderSet puts every holder first sometimes: no fixed order", () => {
  const set = new HolderSet();
  for (let port = 1; port <= 9; port++) set.add(`127.0.0.1:${port}`, "lo");
  const random = seededRandom(2);
  const first = new Set<string>();
  for (let round = 0; round < 500; round++) {
    first.add(set.sample(9, random)[0]!);
  }
  assert.equal(first.size, 9);
});

Deno.test("HolderSet matches a model under random adds, deletes and samples", () => {
  const holder = fc.tuple(
    fc.integer({ min: 1, max: 4 }),
    fc.integer({ min: 1, max: 6 }),
  ).map(([ip, port]) => ({
    address: `10.0.0.${ip}:${port}`,
    network: `${ip}`,
  }));
  const op = fc.tuple(
    fc.constantFrom("add", "delete", "sample"),
    holder,
    fc.integer({ min: 0, max: 30 }),
  );
  fc.assert(
    fc.property(
      fc.array(op, { minLength: 50, maxLength: 300 }),
      fc.integer(),
      (ops, seed) => {
        const set = new HolderSet();
        const model = new Set<string>();
        const random = seededRandom(seed);
        for (const [kind, { address, network }, limit] of ops) {
          assert.equal(set.has(address, network), model.has(address));
          if (kind === "add") {
            if (!model.has(address)) set.add(address, network);
            model.add(address);
          } else if (kind === "delete") {
            assert.equal(set.delete(address, network), model.delete(address));
          } else {
            const accept = (a: string) => !a.endsWith(":1");
            const sample = set.sample(limit, random, accept);
            const eligible = [...model].filter(accept);
            assert.equal(sample.length, Math.min(limit, eligible.length));
            assert.equal(new Set(sample).size, sample.length);
            assert.ok(sample.every((a) => model.has(a) && accept(a)));
          }
          assert.equal(set.size, model.size);
        }
      },
    ),
    { seed: SEED, numRuns: 300 },
  );
});

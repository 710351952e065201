/**
 * Tests of the tracker's name index: the chunked sorted list against a plain
 * sorted array, glob and substring matches against a brute-force matcher,
 * and the bound on the names a query examines.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  globMatch,
  NameIndex,
  SortedStrings,
} from "../lib/tracker/_name_index.ts";

const SEED = 20240611;

/** What `list` has always matched: a glob on the path or base name, or a substring. */
function bruteForce(query: string, name: string): boolean {
  const needle = query.toLowerCase();
  const lower = name.toLowerCase();
  if (!/[*?]/.test(query)) return lower.includes(needle);
  if (globMatch(needle, lower)) return true;
  const slash = lower.lastIndexOf("/");
  return slash >= 0 && globMatch(needle, lower.slice(slash + 1));
}

Deno.test("SortedStrings keeps adds and deletes in order across chunk splits", () => {
  const op = fc.tuple(
    fc.boolean(),
    fc.string({ unit: fc.constantFrom("a", "b", "c", "A", "é"), maxLength: 6 }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 3000 }), fc.string(), (ops, from) => {
      const list = new SortedStrings();
      const model = new Set<string>();
      for (const [add, value] of ops) {
        assert.equal(
          add ? list.add(value) : list.delete(value),
          add ? !model.has(value) : model.has(value),
        );
        if (add) model.add(value);
        else model.delete(value);
      }
      const sorted = [...model].sort((x, y) => x < y ? -1 : x > y ? 1 : 0);
      assert.equal(list.size, model.size);
      assert.deepEqual([...list.from()], sorted);
      assert.deepEqual([...list.from(from)], sorted.filter((s) => s >= from));
    }),
    { seed: SEED, numRuns: 200 },
  );
  // Enough strings for many chunks (512–1024 each) to split and empty.
  const list = new SortedStrings();
  const model = new Set<string>();
  let state = 7;
  const next = () => (state = (state * 48271) % 2147483647);
  for (let i = 0; i < 20_000; i++) {
    const value = next().toString(36);
    list.add(value);
    model.add(value);
  }
  for (const value of [...model].filter((_, i) => i % 3 !== 0)) {
    assert.ok(list.delete(value));
    model.delete(value);
  }
  const sorted = [...model].sort((x, y) => x < y ? -1 : x > y ? 1 : 0);
  assert.deepEqual([...list.from()], sorted);
  assert.deepEqual([...list.from("k")], sorted.filter((s) => s >= "k"));
});

Deno.test("NameIndex finds exactly the names a brute-force matcher finds", () => {
  const name = fc.string({
    unit: fc.constantFrom("a", "B", "b", "/", ".", "x", "İ"),
    minLength: 1,
    maxLength: 8,
  });
  const query = fc.string({
    unit: fc.constantFrom("a", "b", "B", "/", ".", "*", "?", "x"),
    minLength: 1,
    maxLength: 5,
  });
  fc.assert(
    fc.property(
      fc.uniqueArray(name, { maxLength: 60 }),
      fc.array(query, { minLength: 1, maxLength: 10 }),
      (names, queries) => {
        const index = new NameIndex();
        for (const n of names) index.add(n);
        for (const n of names.slice(0, names.length / 3)) index.delete(n);
        const live = names.slice(names.length / 3);
        for (const q of queries) {
          const found: string[] = [];
          const result = index.match(q, Infinity, (n) => found.push(n) > 0);
          assert.equal(result.complete, true);
          assert.deepEqual(
            found.sort(),
            live.filter((n) => bruteForce(q, n)).sort(),
            `query ${JSON.stringify(q)}`,
          );
        }
      },
    ),
    { seed: SEED, numRuns: 500 },
  );
});

Deno.test("NameIndex reads only a glob's literal range and caps every other scan", () => {
  const index = new NameIndex();
  for (let peer = 0; peer < 2000; peer++) {
    for (let file = 0; file < 10; file++) {
      index.add(`peer-${peer}/file-${file}.bin`);
    }
  }
  const found: string[] = [];
  // `peer-42/*` can only match names starting with "peer-42/".
  const ranged = index.match("peer-42/*", 1000, (n) => found.push(n) > 0);
  assert.deepEqual(ranged, { examined: 10, complete: true });
  assert.equal(found.length, 10);
  // A base-name glob reads the base-name range: 2000 names start "file-3".
  const base = index.match("FILE-3.*", 5000, () => true);
  assert.equal(base.complete, true);
  assert.ok(base.examined <= 2000, `examined ${base.examined}`);
  // A substring or a leading wildcard scans, but never past the cap.
  for (const query of ["zzz", "*.iso"]) {
    assert.deepEqual(index.match(query, 500, () => true), {
      examined: 500,
      complete: false,
    });
  }
  // The visitor can stop a match.
  let visits = 0;
  const stopped = index.match("peer-1*", 1e6, () => ++visits < 3);
  assert.equal(visits, 3);
  assert.equal(stopped.complete, false);
});

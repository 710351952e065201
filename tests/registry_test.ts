/**
 * Tests of the tracker registry with a fake clock: expiry to the millisecond,
 * file lists replaced by heartbeats, content grouped by id, queries, and
 * seed-protocol peers beside Shoal peers.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { Registry } from "../lib/tracker/registry.ts";
import type { FileAnnouncement, ListedFile } from "../lib/protocol/messages.ts";

const ID_A = "a".repeat(64);
const ID_B = "b".repeat(64);
const ID_C = "c".repeat(64);
const PEER_1 = "127.0.0.1:10001";
const PEER_2 = "127.0.0.1:10002";
const PEER_3 = "127.0.0.1:10003";

/** A registry on a clock the test moves by hand. */
function fakeClockRegistry(expiryMs = 1000): {
  registry: Registry;
  clock: { now: number };
  expired: string[];
} {
  const clock = { now: 1_000_000 };
  const expired: string[] = [];
  const registry = new Registry({
    expiryMs,
    now: () => clock.now,
    onExpire: (address) => expired.push(address),
  });
  return { registry, clock, expired };
}

function file(name: string, id: string, size = 10): FileAnnouncement {
  return { name, id, size };
}

Deno.test("Registry keeps a peer until exactly its expiry, then forgets it", () => {
  const { registry, clock, expired } = fakeClockRegistry(1000);
  const start = clock.now;
  registry.upsert(PEER_1, "shoal", [file("a.txt", ID_A)]);

  clock.now = start + 999;
  assert.ok(registry.get(PEER_1), "peer gone 1 ms before its expiry");
  assert.equal(registry.list().length, 1);
  assert.equal(registry.getPeers({ id: ID_A }).length, 1);
  assert.deepEqual(registry.filemap(), { "a.txt": [PEER_1] });
  assert.equal(registry.sweep(), 0);

  clock.now = start + 1000;
  assert.equal(registry.get(PEER_1), undefined, "peer alive at its expiry");
  assert.deepEqual(registry.list(), []);
  assert.deepEqual(registry.getPeers({ id: ID_A }), []);
  assert.deepEqual(registry.getPeers({ name: "a.txt" }), []);
  assert.deepEqual(registry.filemap(), {});
  // The first query after its expiry dropped it, and said so once.
  assert.deepEqual(expired, [PEER_1]);
  assert.equal(registry.size, 0);
  assert.equal(registry.sweep(), 0);
  assert.deepEqual(expired, [PEER_1]);
});

Deno.test("Registry expires each peer at its own time after the oldest one was refreshed", () => {
  const { registry, clock, expired } = fakeClockRegistry(1000);
  const start = clock.now;
  registry.upsert(PEER_1, "shoal", [file("a.txt", ID_A)]);
  clock.now = start + 100;
  registry.upsert(PEER_2, "shoal", [file("b.txt", ID_B)]);
  clock.now = start + 200;
  registry.upsert(PEER_3, "shoal", [file("c.txt", ID_C)]);
  assert.equal(registry.list().length, 3);
  clock.now = start + 500;
  assert.equal(registry.touch(PEER_1), true);
  const names = () => registry.list().map((f) => f.name).sort();
  clock.now = start + 1099;
  assert.deepEqual(names(), ["a.txt", "b.txt", "c.txt"]);
  clock.now = start + 1100;
  assert.deepEqual(names(), ["a.txt", "c.txt"]);
  assert.deepEqual(expired, [PEER_2]);
  clock.now = start + 1200;
  assert.deepEqual(names(), ["a.txt"]);
  clock.now = start + 1499;
  assert.deepEqual(names(), ["a.txt"]);
  clock.now = start + 1500;
  assert.deepEqual(names(), []);
  assert.deepEqual(expired, [PEER_2, PEER_3, PEER_1]);
});

Deno.test("Registry expires a peer the clock put at the front after going back", () => {
  const { registry, clock, expired } = fakeClockRegistry(1000);
  const start = clock.now;
  registry.upsert(PEER_1, "shoal", [file("a.txt", ID_A)]);
  clock.now = start + 10;
  registry.upsert(PEER_2, "shoal", [file("b.txt", ID_B)]);
  assert.equal(registry.list().length, 2);
  clock.now = start - 500; // the clock went back
  registry.upsert(PEER_3, "shoal", [file("c.txt", ID_C)]);
  clock.now = start - 400;
  assert.equal(registry.touch(PEER_1), true);
  clock.now = start - 300;
  assert.equal(registry.touch(PEER_2), true);
  clock.now = start + 500; // PEER_3, now first, expired
  assert.deepEqual(registry.list().map((f) => f.name).sort(), [
    "a.txt",
    "b.txt",
  ]);
  assert.deepEqual(expired, [PEER_3]);
});

Deno.test("Registry sweep drops expired peers it finds out of order", () => {
  const { registry, clock, expired } = fakeClockRegistry(1000);
  registry.upsert(PEER_1, "shoal", [file("a.txt", ID_A)]);
  clock.now -= 500; // the clock went back: PEER_2 is older but later
  registry.upsert(PEER_2, "shoal", [file("b.txt", ID_B)]);
  clock.now += 1100;
  assert.equal(registry.get(PEER_2), undefined);
  assert.ok(registry.get(PEER_1));
  assert.equal(registry.sweep(), 1);
  assert.deepEqual(expired, [PEER_2]);
  assert.deepEqual(registry.list().map((f) => f.name), ["a.txt"]);
});

Deno.test("Registry heartbeat extends life by a full window; a late one is refused", () => {
  const { registry, clock } = fakeClockRegistry(1000);
  const start = clock.now;
  registry.upsert(PEER_1, "shoal", [file("a.txt", ID_A)]);
  clock.now = start + 999;
  assert.equal(registry.touch(PEER_1), true);
  clock.now = start + 999 + 999;
  assert.ok(registry.get(PEER_1), "refreshed peer expired early");
  clock.now = start + 999 + 1000;
  assert.equal(registry.get(PEER_1), undefined);
  assert.equal(registry.touch(PEER_1), false, "expired peer was revived");
  assert.equal(registry.size, 0, "expired peer kept after a failed touch");
  assert.equal(registry.touch(PEER_2), false, "unknown peer accepted");
});

Deno.test("Registry heartbeat with files replaces the list, without files keeps it", () => {
  const { registry } = fakeClockRegistry();
  registry.upsert(PEER_1, "shoal", [file("a.txt", ID_A), file("b.txt", ID_B)]);
  assert.equal(registry.touch(PEER_1), true);
  assert.equal(registry.list().length, 2);

  assert.equal(registry.touch(PEER_1, [file("c.txt", ID_C, 3)]), true);
  assert.deepEqual(registry.list(), [
    { name: "c.txt", id: ID_C, size: 3, holders: 1 },
  ]);
  assert.deepEqual(registry.getPeers({ id: ID_A }), []);
  assert.deepEqual(registry.getPeers({ name: "a.txt" }), []);
  assert.deepEqual(registry.filemap(), { "c.txt": [PEER_1] });
});

Deno.test("Registry lists the same content under two names as one entry with two holders", () => {
  const { registry } = fakeClockRegistry();
  registry.upsert(PEER_1, "shoal", [file("a.txt", ID_A, 5)]);
  registry.upsert(PEER_2, "shoal", [file("copies/renamed.txt", ID_A, 5)]);
  registry.upsert(PEER_3, "shoal", [file("a.txt", ID_A, 5)]);
  assert.deepEqual(registry.list(), [
    // The most common name wins.
    { name: "a.txt", id: ID_A, size: 5, holders: 3 },
  ]);
  registry.remove(PEER_3);
  const [entry] = registry.list();
  assert.equal(entry?.holders, 2);
  assert.equal(entry?.id, ID_A);
  const holders = registry.getPeers({ id: ID_A })
    .sort((x, y) => x.address.localeCompare(y.address));
  assert.deepEqual(holders, [
    { address: PEER_1, protocol: "shoal", name: "a.txt", id: ID_A },
    {
      address: PEER_2,
      protocol: "shoal",
      name: "copies/renamed.txt",
      id: ID_A,
    },
  ]);
  // Found by either name.
  assert.equal(registry.list("renamed").length, 1);
});

Deno.test("Registry lists two different files with the same name as two entries", () => {
  const { registry } = fakeClockRegistry();
  registry.upsert(PEER_1, "shoal", [file("report.pdf", ID_A, 100)]);
  registry.upsert(PEER_2, "shoal", [file("report.pdf", ID_B, 200)]);
  const listed = registry.list().sort((x, y) => x.size! - y.size!);
  assert.deepEqual(listed, [
    { name: "report.pdf", id: ID_A, size: 100, holders: 1 },
    { name: "report.pdf", id: ID_B, size: 200, holders: 1 },
  ]);
  // getpeers by name returns the id each holder actually has.
  const byName = registry.getPeers({ name: "report.pdf" })
    .sort((x, y) => x.address.localeCompare(y.address));
  assert.deepEqual(byName, [
    { address: PEER_1, protocol: "shoal", name: "report.pdf", id: ID_A },
    { address: PEER_2, protocol: "shoal", name: "report.pdf", id: ID_B },
  ]);
});

Deno.test("Registry forgets an unregistered peer and only that peer", () => {
  const { registry } = fakeClockRegistry();
  registry.upsert(PEER_1, "shoal", [file("a.txt", ID_A)]);
  registry.upsert(PEER_2, "shoal", [file("a.txt", ID_A), file("b", ID_B)]);
  assert.equal(registry.remove(PEER_2), true);
  assert.equal(registry.remove(PEER_2), false);
  assert.deepEqual(registry.list(), [
    { name: "a.txt", id: ID_A, size: 10, holders: 1 },
  ]);
  assert.deepEqual(registry.getPeers({ id: ID_B }), []);
  assert.deepEqual(registry.filemap(), { "a.txt": [PEER_1] });
});

Deno.test("Registry re-registering replaces the old list instead of merging", () => {
  const { registry } = fakeClockRegistry();
  registry.upsert(PEER_1, "shoal", [file("a.txt", ID_A)]);
  registry.upsert(PEER_1, "shoal", [file("b.txt", ID_B)]);
  assert.deepEqual(registry.list().map((f) => f.name), ["b.txt"]);
  assert.equal(registry.size, 1);
});

Deno.test("Registry matches globs and case-insensitive substrings", () => {
  const { registry } = fakeClockRegistry();
  registry.upsert(PEER_1, "shoal", [
    file("docs/Guide.md", ID_A),
    file("a1.txt", ID_B),
    file("notes.txt", ID_C),
  ]);
  const names = (query?: string) =>
    registry.list(query).map((f) => f.name).sort();
  assert.deepEqual(names(), ["a1.txt", "docs/Guide.md", "notes.txt"]);
  assert.deepEqual(names(""), ["a1.txt", "docs/Guide.md", "notes.txt"]);
  assert.deepEqual(names("*.txt"), ["a1.txt", "notes.txt"]);
  assert.deepEqual(names("a?.txt"), ["a1.txt"]);
  assert.deepEqual(names("a?.md"), []);
  // A glob matches the base name as well as the whole path.
  assert.deepEqual(names("guide.*"), ["docs/Guide.md"]);
  assert.deepEqual(names("docs/*"), ["docs/Guide.md"]);
  // Substrings ignore case; regex characters are literal.
  assert.deepEqual(names("GUIDE"), ["docs/Guide.md"]);
  assert.deepEqual(names("s.t"), ["notes.txt"]);
  assert.deepEqual(names("(.*)"), []);
  assert.deepEqual(names("[a]*"), []);
});

Deno.test("Registry shows seed-protocol peers in filemap and list with a null id", () => {
  const { registry, clock } = fakeClockRegistry(1000);
  registry.upsert(PEER_1, "legacy", [
    { name: "old.txt", id: null, size: null },
    { name: "shared.txt", id: null, size: null },
  ]);
  registry.upsert(PEER_2, "shoal", [file("shared.txt", ID_A, 7)]);

  const filemap = registry.filemap();
  assert.deepEqual(filemap["old.txt"], [PEER_1]);
  assert.deepEqual([...filemap["shared.txt"]!].sort(), [PEER_1, PEER_2]);

  const listed = registry.list();
  assert.deepEqual(
    listed.filter((f) => f.id === null).sort((x, y) =>
      x.name.localeCompare(y.name)
    ),
    [
      { name: "old.txt", id: null, size: null, holders: 1 },
      { name: "shared.txt", id: null, size: null, holders: 1 },
    ],
  );
  assert.deepEqual(listed.filter((f) => f.id !== null), [
    { name: "shared.txt", id: ID_A, size: 7, holders: 1 },
  ]);

  const byName = registry.getPeers({ name: "shared.txt" })
    .sort((x, y) => x.address.localeCompare(y.address));
  assert.deepEqual(byName, [
    { address: PEER_1, protocol: "legacy", name: "shared.txt", id: null },
    { address: PEER_2, protocol: "shoal", name: "shared.txt", id: ID_A },
  ]);
  // A content-id query never returns a seed-protocol peer.
  assert.deepEqual(registry.getPeers({ id: ID_A }).map((p) => p.address), [
    PEER_2,
  ]);

  clock.now += 1000;
  assert.deepEqual(registry.filemap(), {});
  assert.deepEqual(registry.list(), []);
});

Deno.test("Registry honours list and getpeers limits", () => {
  const { registry } = fakeClockRegistry();
  const files = Array.from(
    { length: 20 },
    (_, i) => file(`f${i}.txt`, i.toString(16).padStart(64, "0")),
  );
  registry.upsert(PEER_1, "shoal", files);
  assert.equal(registry.list(undefined, 5).length, 5);
  for (let port = 1; port <= 10; port++) {
    registry.upsert(`127.0.0.1:${port}`, "shoal", [file("x", ID_A)]);
  }
  assert.equal(registry.getPeers({ id: ID_A }, 3).length, 3);
  assert.equal(registry.getPeers({ name: "x" }, 4).length, 4);
});

/** A seeded random generator (mulberry32), so replies are reproducible. */
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

function seedFile(name: string) {
  return { name, id: null, size: null };
}

Deno.test("Registry refuses a network's peers and files beyond its limits", () => {
  const registry = new Registry({
    maxPeersPerAddress: 2,
    maxFilesPerAddress: 5,
  });
  const ip = (n: number) => `10.0.0.1:${n}`;
  assert.equal(registry.upsert(ip(1), "shoal", [file("a", ID_A)]), "ok");
  assert.equal(registry.upsert(ip(2), "legacy", [seedFile("b")]), "ok");
  assert.equal(registry.upsert(ip(3), "shoal", []), "too_many_peers");
  // Registering a known port again is not one more peer.
  assert.equal(
    registry.upsert(ip(2), "legacy", ["b", "c", "d"].map(seedFile)),
    "ok",
  );
  // 1 + 5 files > 5: refused, and the old list stays.
  assert.equal(
    registry.upsert(ip(2), "legacy", ["b", "c", "d", "e", "f"].map(seedFile)),
    "too_many_files",
  );
  assert.equal(registry.get(ip(2))?.files.size, 3);
  assert.equal(
    registry.replaceFiles(ip(2), ["b", "c", "d", "e", "f"].map(seedFile)),
    "too_many_files",
  );
  assert.equal(
    registry.applyChanges(ip(1), 1, [file("x", ID_B), file("y", ID_C)], []),
    "too_many_files",
  );
  assert.equal(registry.applyChanges(ip(1), 1, [file("x", ID_B)], []), "ok");
  assert.equal(registry.list().length, 5);
  // The connection's source counts, not the host the address names.
  assert.equal(
    registry.upsert("example.org:1", "shoal", [], "10.0.0.1"),
    "too_many_peers",
  );
  // Other networks are not affected; an IPv6 /64 is one network.
  assert.equal(registry.upsert("10.0.0.2:1", "shoal", []), "ok");
  assert.equal(registry.upsert("[2001:db8::1]:1", "shoal", []), "ok");
  assert.equal(registry.upsert("[2001:db8::2]:1", "shoal", []), "ok");
  assert.equal(
    registry.upsert("[2001:db8::3]:1", "shoal", []),
    "too_many_peers",
  );
  assert.equal(registry.upsert("[2001:db8:0:1::1]:1", "shoal", []), "ok");
  // A peer that leaves or expires frees its slot and its files.
  registry.remove(ip(2));
  assert.equal(
    registry.upsert(ip(3), "legacy", ["p", "q", "r"].map(seedFile)),
    "ok",
  );
});

Deno.test("Registry getpeers by name puts Shoal holders before any number of seed-protocol ones", () => {
  const registry = new Registry({
    maxPeersPerAddress: 1000,
    random: seededRandom(3),
  });
  // 230 seed-protocol registrations from one IP, all before the honest one.
  for (let port = 1; port <= 230; port++) {
    registry.upsert(`10.6.6.6:${port}`, "legacy", [seedFile("movie.mkv")]);
  }
  registry.upsert("10.0.0.1:7000", "shoal", [file("movie.mkv", ID_A, 9)]);
  registry.upsert("10.6.6.6:7000", "shoal", [file("movie.mkv", ID_B, 9)]);
  for (let round = 0; round < 50; round++) {
    const peers = registry.getPeers({ name: "movie.mkv" });
    assert.equal(peers.length, 200);
    assert.deepEqual(
      peers.slice(0, 2).map((p) => p.protocol),
      ["shoal", "shoal"],
    );
    assert.ok(peers.slice(2).every((p) => p.protocol === "legacy"));
  }
});

Deno.test("Registry getpeers cannot be crowded by one IP: holders are spread across networks", () => {
  const registry = new Registry({
    maxPeersPerAddress: 1000,
    random: seededRandom(4),
  });
  for (let port = 1; port <= 230; port++) {
    registry.upsert(`10.6.6.6:${port}`, "shoal", [file("a.iso", ID_A, 5)]);
  }
  registry.upsert("10.0.0.1:7000", "shoal", [file("a.iso", ID_A, 5)]);
  registry.upsert("10.0.0.2:7000", "shoal", [file("a.iso", ID_A, 5)]);
  for (const query of [{ id: ID_A }, { name: "a.iso" }]) {
    for (let round = 0; round < 50; round++) {
      const first = registry.getPeers(query).slice(0, 3).map((p) =>
        p.address.split(":")[0]
      );
      // One holder from each of the three networks comes first.
      assert.deepEqual(first.sort(), ["10.0.0.1", "10.0.0.2", "10.6.6.6"]);
    }
  }
});

Deno.test("Registry getpeers by id is not in registration order: a live holder is not pinned behind dead ports", () => {
  const registry = new Registry({ random: seededRandom(5) });
  for (let port = 1; port <= 8; port++) {
    registry.upsert(`127.0.0.1:${port}`, "shoal", [file("x", ID_A)]);
  }
  registry.upsert("127.0.0.1:9000", "shoal", [file("x", ID_A)]);
  const positions = new Set<number>();
  for (let round = 0; round < 300; round++) {
    const peers = registry.getPeers({ id: ID_A });
    assert.equal(peers.length, 9);
    positions.add(peers.findIndex((p) => p.address === "127.0.0.1:9000"));
  }
  // Seen at every position, first included.
  assert.equal(positions.size, 9);
});

Deno.test("Registry keeps a size that disagrees with the id from changing honest holders' entry", () => {
  const { registry } = fakeClockRegistry();
  // The liar announces first.
  registry.upsert(PEER_3, "shoal", [file("a.txt", ID_A, 999_999)]);
  registry.upsert(PEER_1, "shoal", [file("a.txt", ID_A, 100)]);
  registry.upsert(PEER_2, "shoal", [file("b.txt", ID_A, 100)]);
  const bySize = (query?: string) =>
    registry.list(query).sort((x, y) => x.size! - y.size!);
  const honest = { name: "a.txt", id: ID_A, size: 100, holders: 2 };
  const liar = { name: "a.txt", id: ID_A, size: 999_999, holders: 1 };
  assert.deepEqual(bySize(), [honest, liar]);
  assert.deepEqual(bySize("a.*"), [honest, liar]);
  assert.deepEqual(bySize("b.txt"), [{ ...honest, name: "b.txt" }]);
  // Its entry goes when it does; the honest entry never changed.
  registry.remove(PEER_3);
  assert.deepEqual(bySize(), [honest]);
  // getpeers by id offers every holder; the downloader checks the manifest.
  assert.equal(registry.getPeers({ id: ID_A }).length, 2);
});

Deno.test("Registry bounds list work and every reply", () => {
  const registry = new Registry({ maxPeersPerAddress: 1000 });
  for (let peer = 0; peer < 200; peer++) {
    registry.upsert(
      `10.0.0.1:${1000 + peer}`,
      "legacy",
      Array.from({ length: 50 }, (_, i) => seedFile(`dir-${peer}/f-${i}.bin`)),
    );
  }
  for (let port = 1; port <= 300; port++) {
    registry.upsert(`10.0.0.2:${port}`, "legacy", [seedFile("hot.bin")]);
  }
  // A glob with a literal start reads its range only.
  const ranged = registry.search("dir-7/*");
  assert.equal(ranged.files.length, 50);
  assert.equal(ranged.examined, 50);
  assert.equal(ranged.truncated, false);
  // Other queries stop at the cap and say so.
  const scan = registry.search("f-1", { maxExamined: 1000 });
  assert.equal(scan.examined, 1000);
  assert.equal(scan.truncated, true);
  // Replies are cut at their byte budget, and say so.
  const small = registry.search(undefined, { maxBytes: 10_000 });
  assert.equal(small.truncated, true);
  assert.ok(small.files.length > 0 && small.files.length < 100);
  // The seed list: a few holders per name, and a bounded size.
  const seed = registry.seedList(10_000, {
    holdersPerName: 20,
    maxBytes: 64 * 1024,
  });
  assert.equal(seed.truncated, true);
  assert.ok(JSON.stringify(seed.filemap).length <= 64 * 1024);
  assert.ok(Object.values(seed.filemap).every((a) => a.length <= 20));
  assert.equal(
    registry.seedList(100_000, { holdersPerName: 20 })
      .filemap["hot.bin"]?.length,
    20,
  );
});

Deno.test("Registry's indexes match a recomputation after random registrations, announces and leaves", () => {
  const ids = [ID_A, ID_B, ID_C];
  const names = ["a", "b", "Dir/c", "dir/d"];
  const address = fc.integer({ min: 1, max: 5 }).map((n) =>
    `10.0.0.${n % 3}:${n}`
  );
  const shoalFile = fc.record({
    name: fc.constantFrom(...names),
    id: fc.constantFrom(...ids),
    size: fc.constantFrom(1, 2),
  });
  const op = fc.oneof(
    fc.record({
      kind: fc.constant("upsert" as const),
      address,
      legacy: fc.boolean(),
      files: fc.array(shoalFile, { maxLength: 5 }),
    }),
    fc.record({
      kind: fc.constant("changes" as const),
      address,
      added: fc.array(shoalFile, { maxLength: 3 }),
      removed: fc.array(fc.constantFrom(...names), { maxLength: 2 }),
    }),
    fc.record({ kind: fc.constant("remove" as const), address }),
    // Listing caches each content's most common name.
    fc.record({ kind: fc.constant("list" as const) }),
  );
  fc.assert(
    fc.property(fc.array(op, { minLength: 1, maxLength: 40 }), (ops) => {
      const registry = new Registry({ random: seededRandom(9) });
      for (const o of ops) {
        if (o.kind === "upsert") {
          registry.upsert(
            o.address,
            o.legacy ? "legacy" : "shoal",
            o.legacy ? o.files.map((f) => seedFile(f.name)) : o.files,
          );
        } else if (o.kind === "changes") {
          const record = registry.get(o.address);
          if (record?.protocol === "shoal") {
            registry.applyChanges(
              o.address,
              record.seq + 1,
              o.added,
              o.removed,
            );
          }
        } else if (o.kind === "remove") {
          registry.remove(o.address);
        } else {
          registry.list();
        }
      }
      // Recompute everything from the peer records.
      const records = [1, 2, 3, 4, 5]
        .map((n) => registry.get(`10.0.0.${n % 3}:${n}`))
        .filter((r) => r !== undefined);
      const expected: ListedFile[] = [];
      const pairs = new Map<
        string,
        { holders: Set<string>; names: Map<string, number> }
      >();
      const legacy = new Map<string, number>();
      for (const record of records) {
        for (const f of record.files.values()) {
          if (f.id === null) {
            legacy.set(f.name, (legacy.get(f.name) ?? 0) + 1);
            continue;
          }
          const key = `${f.id} ${f.size}`;
          const pair = pairs.get(key) ??
            { holders: new Set(), names: new Map() };
          pairs.set(key, pair);
          pair.holders.add(record.address);
          pair.names.set(f.name, (pair.names.get(f.name) ?? 0) + 1);
        }
      }
      for (const [key, pair] of pairs) {
        const [id, size] = key.split(" ");
        const [name] = [...pair.names].sort((x, y) =>
          y[1] - x[1] || (x[0] < y[0] ? -1 : 1)
        )[0]!;
        expected.push({
          name,
          id: id!,
          size: Number(size),
          holders: pair.holders.size,
        });
      }
      for (const [name, holders] of legacy) {
        expected.push({ name, id: null, size: null, holders });
      }
      const order = (x: ListedFile, y: ListedFile) =>
        `${x.id} ${x.size} ${x.name}` < `${y.id} ${y.size} ${y.name}` ? -1 : 1;
      assert.deepEqual(registry.list().sort(order), expected.sort(order));
      for (const id of ids) {
        const holders = registry.getPeers({ id });
        const want = records.filter((r) =>
          [...r.files.values()].some((f) => f.id === id)
        );
        assert.equal(holders.length, want.length);
        for (const h of holders) {
          assert.equal(registry.get(h.address)?.files.get(h.name)?.id, id);
        }
      }
      for (const name of names) {
        const holders = registry.getPeers({ name });
        const want = records.filter((r) => r.files.has(name));
        assert.deepEqual(
          holders.map((h) => h.address).sort(),
          want.map((r) => r.address).sort(),
        );
        const firstLegacy = holders.findIndex((h) => h.protocol === "legacy");
        assert.ok(
          firstLegacy < 0 ||
            holders.slice(firstLegacy).every((h) => h.protocol === "legacy"),
        );
        // A glob finds the name's entries (case-insensitively).
        const found = registry.list(name.toUpperCase().replace(/.$/, "?"));
        assert.ok(
          found.length >= (want.length > 0 ? 1 : 0),
          `${name}: ${JSON.stringify(found)}`,
        );
      }
    }),
    { seed: 20240611, numRuns: 500 },
  );
});

Deno.test("Registry search with 8+ hex digits also finds the ids they start", () => {
  const { registry } = fakeClockRegistry();
  const twinA = "cc4dacc4" + "1".repeat(56);
  const twinB = "cc4dacc4" + "2".repeat(56);
  registry.upsert(PEER_1, "shoal", [
    file("a.txt", twinA),
    file("b.txt", twinB),
    file("c.txt", ID_C),
  ]);
  const ids = (query: string) =>
    registry.search(query).files.map((f) => f.id).sort();
  assert.deepEqual(ids("cc4dacc4"), [twinA, twinB]);
  assert.deepEqual(ids("CC4DACC41"), [twinA]);
  assert.deepEqual(ids(ID_C), [ID_C]);
  // Fewer than 8 digits stay a name query.
  assert.deepEqual(ids("cc4dacc"), []);
});

Deno.test("Registry finds the names of a peer with many files by content id, after changes", () => {
  const { registry } = fakeClockRegistry();
  // Past the size where the registry keeps a per-peer map of names by id.
  const files = Array.from(
    { length: 50 },
    (_, i) => file(`f-${i}.bin`, i.toString(16).padStart(64, "0")),
  );
  registry.upsert(PEER_1, "shoal", [
    ...files,
    file("x.bin", ID_A),
    file("y.bin", ID_A),
  ]);
  assert.equal(registry.getPeers({ id: ID_A })[0]?.name, "x.bin");
  assert.equal(
    registry.applyChanges(PEER_1, 1, [], ["x.bin"]),
    "ok",
  );
  assert.equal(registry.getPeers({ id: ID_A })[0]?.name, "y.bin");
  assert.equal(registry.applyChanges(PEER_1, 2, [], ["y.bin"]), "ok");
  assert.deepEqual(registry.getPeers({ id: ID_A }), []);
  assert.equal(registry.list().length, 50);
  // Shrunk below the threshold, then grown again: still consistent.
  registry.replaceFiles(PEER_1, [file("z.bin", ID_B), file("w.bin", ID_B)]);
  assert.deepEqual(
    registry.getPeers({ id: ID_B }).map((p) => p.name),
    ["z.bin"],
  );
  assert.deepEqual(registry.list(), [
    { name: "w.bin", id: ID_B, size: 10, holders: 1 },
  ]);
});

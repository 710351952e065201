/**
 * One contract for every `TrackerStore`: the same cases run against the
 * in-memory store, a single real Redis and a real three-master Redis
 * Cluster (register, deltas and resync, heartbeats, expiry to the
 * millisecond, limits, list queries, getpeers, the seed protocol).
 *
 * @module
 */
import assert from "node:assert/strict";
import { MemoryStore } from "../lib/tracker/memory_store.ts";
import { RedisStore } from "../lib/tracker/redis_store.ts";
import { TrackerService } from "../lib/tracker/service.ts";
import type { Clock, TrackerStore } from "../lib/tracker/store.ts";
import type { FileAnnouncement, ListedFile } from "../lib/protocol/messages.ts";
import { cli, startRedis, startRedisCluster } from "../scripts/_redis.ts";

const IP = "127.0.0.1";
const ID_A = "a".repeat(64);
const ID_B = "b".repeat(64);
const ID_C = "c".repeat(64);

function file(name: string, id: string, size = 10): FileAnnouncement {
  return { name, id, size };
}

/** Store options every backend takes. */
interface StoreOptions {
  expiryMs: number;
  clock: Clock;
  maxPeersPerAddress?: number;
  maxFilesPerAddress?: number;
}

/** Makes a fresh, empty store of one backend. */
type MakeStore = (options: StoreOptions) => Promise<TrackerStore>;

/** A store and service on a clock the case moves by hand. */
async function setup(make: MakeStore, extra: Partial<StoreOptions> = {}) {
  const clock = { time: 1_000_000, now: () => clock.time };
  const expiryMs = 1000;
  const store = await make({ expiryMs, clock, ...extra });
  const service = new TrackerService(store, {
    heartbeatIntervalMs: 300,
    expiryMs,
    clock,
    ...(extra.maxPeersPerAddress !== undefined
      ? { maxPeersPerAddress: extra.maxPeersPerAddress }
      : {}),
  });
  return { clock, store, service };
}

function sorted(files: ListedFile[]): ListedFile[] {
  const key = (f: ListedFile) => `${f.name}\0${f.id ?? ""}`;
  return [...files].sort((a, b) => key(a) < key(b) ? -1 : 1);
}

/** The cases, each over a fresh store. */
const CASES: [string, (make: MakeStore) => Promise<void>][] = [
  ["registers a peer and finds it by id, by name and in list", async (make) => {
    const { store } = await setup(make);
    assert.equal(
      await store.register({
        address: "127.0.0.1:10001",
        protocol: "shoal",
        files: [file("a.txt", ID_A, 5), file("docs/B.md", ID_B, 7)],
      }),
      "ok",
    );
    const record = await store.get("127.0.0.1:10001");
    assert.equal(record?.protocol, "shoal");
    assert.deepEqual([...record!.files.values()], [
      { name: "a.txt", id: ID_A, size: 5 },
      { name: "docs/B.md", id: ID_B, size: 7 },
    ]);
    assert.deepEqual(await store.getPeers({ id: ID_A }), [
      {
        address: "127.0.0.1:10001",
        protocol: "shoal",
        name: "a.txt",
        id: ID_A,
      },
    ]);
    assert.deepEqual(await store.getPeers({ name: "docs/B.md" }), [
      {
        address: "127.0.0.1:10001",
        protocol: "shoal",
        name: "docs/B.md",
        id: ID_B,
      },
    ]);
    const { files, truncated } = await store.search();
    assert.equal(truncated, false);
    assert.deepEqual(sorted(files), [
      { name: "a.txt", id: ID_A, size: 5, holders: 1 },
      { name: "docs/B.md", id: ID_B, size: 7, holders: 1 },
    ]);
  }],
  [
    "applies deltas in order and asks for a resync after a gap",
    async (make) => {
      const { service } = await setup(make);
      await service.request({ type: "register", port: 10001, files: [] }, IP);
      assert.deepEqual(
        await service.request({
          type: "heartbeat",
          port: 10001,
          seq: 1,
          added: [file("a.txt", ID_A)],
          removed: [],
        }, IP),
        { type: "ok" },
      );
      const gap = await service.request({
        type: "heartbeat",
        port: 10001,
        seq: 3,
        added: [file("b.txt", ID_B)],
        removed: [],
      }, IP);
      assert.equal(gap.type === "error" && gap.code, "resync");
      assert.match(gap.type === "error" ? gap.message : "", /expected 2/);
      assert.deepEqual(
        await service.request({
          type: "heartbeat",
          port: 10001,
          seq: 2,
          added: [file("c.txt", ID_C)],
          removed: ["a.txt"],
        }, IP),
        { type: "ok" },
      );
      const files = await service.request({ type: "list" }, IP);
      assert.deepEqual(
        files.type === "files" && files.files.map((f) => f.name),
        ["c.txt"],
      );
      assert.deepEqual(
        await service.request({ type: "getpeers", id: ID_A }, IP),
        { type: "peers", peers: [] },
      );
    },
  ],
  [
    "keeps a peer alive by heartbeats and forgets it exactly at its expiry",
    async (make) => {
      const { service, clock, store } = await setup(make);
      await service.request({
        type: "register",
        port: 10001,
        files: [file("a.txt", ID_A)],
      }, IP);
      clock.time += 999;
      assert.deepEqual(
        await service.request({ type: "heartbeat", port: 10001 }, IP),
        { type: "ok" },
      );
      clock.time += 999;
      const alive = await service.request({ type: "getpeers", id: ID_A }, IP);
      assert.equal(alive.type === "peers" && alive.peers.length, 1);
      assert.equal((await store.search("a.*")).files.length, 1);
      clock.time += 1; // exactly one window since the heartbeat
      assert.deepEqual(
        await service.request({ type: "getpeers", id: ID_A }, IP),
        { type: "peers", peers: [] },
      );
      assert.deepEqual(
        await service.request({ type: "getpeers", name: "a.txt" }, IP),
        { type: "peers", peers: [] },
      );
      assert.deepEqual((await store.search()).files, []);
      assert.equal(await store.get("127.0.0.1:10001"), undefined);
      const late = await service.request(
        { type: "heartbeat", port: 10001 },
        IP,
      );
      assert.equal(late.type === "error" && late.code, "unknown_peer");
    },
  ],
  ["replaces a file list by a full heartbeat", async (make) => {
    const { store } = await setup(make);
    const address = "127.0.0.1:10001";
    await store.register({
      address,
      protocol: "shoal",
      files: [file("a.txt", ID_A), file("b.txt", ID_B)],
    });
    assert.equal(
      await store.replaceFiles(address, [file("c.txt", ID_C)]),
      "ok",
    );
    assert.deepEqual((await store.search()).files.map((f) => f.name), [
      "c.txt",
    ]);
    assert.deepEqual(await store.getPeers({ name: "a.txt" }), []);
    assert.equal(
      await store.replaceFiles("127.0.0.1:9", [file("c.txt", ID_C)]),
      "unknown_peer",
    );
    assert.equal(await store.unregister(address), true);
    assert.equal(await store.unregister(address), false);
    assert.deepEqual((await store.search()).files, []);
  }],
  [
    "lists the key a peer proved with it, and only while it holds it",
    async (make) => {
      const { store } = await setup(make);
      const key = "ab".repeat(32);
      await store.register({
        address: "127.0.0.1:10001",
        protocol: "shoal",
        files: [file("a.txt", ID_A)],
        key,
      });
      await store.register({
        address: "127.0.0.1:10002",
        protocol: "shoal",
        files: [file("a.txt", ID_A)],
      });
      const byAddress = (peers: { address: string; key?: string }[]) =>
        Object.fromEntries(peers.map((p) => [p.address, p.key]));
      assert.deepEqual(byAddress(await store.getPeers({ id: ID_A })), {
        "127.0.0.1:10001": key,
        "127.0.0.1:10002": undefined,
      });
      assert.deepEqual(byAddress(await store.getPeers({ name: "a.txt" })), {
        "127.0.0.1:10001": key,
        "127.0.0.1:10002": undefined,
      });
      assert.equal((await store.get("127.0.0.1:10001"))?.key, key);
      // A delta, a new file list and a heartbeat keep it.
      assert.equal(
        (await store.applyChanges("127.0.0.1:10001", {
          seq: 1,
          added: [file("b.txt", ID_B)],
          removed: [],
        })).result,
        "ok",
      );
      assert.equal(
        await store.replaceFiles("127.0.0.1:10001", [file("c.txt", ID_C)]),
        "ok",
      );
      assert.equal(await store.touch("127.0.0.1:10001"), true);
      assert.equal((await store.get("127.0.0.1:10001"))?.key, key);
      assert.deepEqual(byAddress(await store.getPeers({ id: ID_C })), {
        "127.0.0.1:10001": key,
      });
      // Registering again without a key forgets it.
      await store.register({
        address: "127.0.0.1:10001",
        protocol: "shoal",
        files: [file("a.txt", ID_A)],
      });
      assert.equal((await store.get("127.0.0.1:10001"))?.key, undefined);
    },
  ],
  ["matches content ids by a prefix of 8 or more hex digits", async (make) => {
    const { store } = await setup(make);
    const twinA = "cc4dacc4" + "1".repeat(56);
    const twinB = "cc4dacc4" + "2".repeat(56);
    await store.register({
      address: "127.0.0.1:10001",
      protocol: "shoal",
      files: [file("a.txt", twinA), file("b.txt", twinB), file("c.txt", ID_C)],
    });
    const ids = async (query: string) =>
      (await store.search(query)).files.map((f) => f.id).sort();
    assert.deepEqual(await ids("cc4dacc4"), [twinA, twinB]);
    assert.deepEqual(await ids("CC4DACC41"), [twinA]);
    assert.deepEqual(await ids(ID_C), [ID_C]);
    assert.deepEqual(await ids("cc4dacc"), []);
    assert.deepEqual((await store.search("cc4dacc41")).files, [
      { name: "a.txt", id: twinA, size: 10, holders: 1 },
    ]);
  }],
  ["follows a name re-announced with other content", async (make) => {
    const { store, clock } = await setup(make);
    const address = "127.0.0.1:10001";
    await store.register({
      address,
      protocol: "shoal",
      files: [file("a.txt", ID_A, 5)],
    });
    clock.time += 500;
    assert.equal(
      (await store.applyChanges(address, {
        seq: 1,
        added: [file("a.txt", ID_B, 6)],
        removed: [],
      })).result,
      "ok",
    );
    assert.deepEqual(await store.getPeers({ name: "a.txt" }), [
      { address, protocol: "shoal", name: "a.txt", id: ID_B },
    ]);
    assert.deepEqual(await store.getPeers({ id: ID_A }), []);
    assert.deepEqual((await store.search("a.txt")).files, [
      { name: "a.txt", id: ID_B, size: 6, holders: 1 },
    ]);
    // Another peer's registration trims the first once it expired.
    clock.time += 1000;
    await store.register({
      address: "127.0.0.1:10002",
      protocol: "shoal",
      files: [file("a.txt", ID_B, 6)],
    });
    assert.deepEqual(
      (await store.getPeers({ name: "a.txt" })).map((p) => p.address),
      ["127.0.0.1:10002"],
    );
  }],
  [
    "counts holders of one content across names and picks the common name",
    async (make) => {
      const { store } = await setup(make);
      const names = ["movie.mkv", "Movie.mkv", "movie.mkv", "other/film.mkv"];
      for (const [i, name] of names.entries()) {
        await store.register({
          address: `127.0.0.1:${10001 + i}`,
          protocol: "shoal",
          files: [file(name, ID_A, 100)],
        });
      }
      assert.deepEqual((await store.search()).files, [
        { name: "movie.mkv", id: ID_A, size: 100, holders: 4 },
      ]);
      // A filtered query shows it under its most common matching name.
      assert.deepEqual((await store.search("film")).files, [
        { name: "other/film.mkv", id: ID_A, size: 100, holders: 4 },
      ]);
      assert.equal((await store.getPeers({ id: ID_A })).length, 4);
    },
  ],
  [
    "answers globs on whole and base names and substrings, ignoring case",
    async (make) => {
      const { store } = await setup(make);
      await store.register({
        address: "127.0.0.1:10001",
        protocol: "shoal",
        files: [
          file("docs/Guide.md", ID_A),
          file("report-2024.pdf", ID_B),
          file("archive/Report-old.pdf", ID_C),
        ],
      });
      const names = async (query: string) =>
        (await store.search(query)).files.map((f) => f.name).sort();
      assert.deepEqual(await names("guide.*"), ["docs/Guide.md"]);
      assert.deepEqual(await names("report*"), [
        "archive/Report-old.pdf",
        "report-2024.pdf",
      ]);
      assert.deepEqual(await names("docs/*"), ["docs/Guide.md"]);
      assert.deepEqual(await names("*.PDF"), [
        "archive/Report-old.pdf",
        "report-2024.pdf",
      ]);
      assert.deepEqual(await names("OLD"), ["archive/Report-old.pdf"]);
      assert.deepEqual(await names("nothing"), []);
    },
  ],
  ["bounds a list by its limit and says it is truncated", async (make) => {
    const { store } = await setup(make);
    const files = Array.from(
      { length: 30 },
      (_, i) =>
        file(
          `f-${String(i).padStart(2, "0")}.bin`,
          i.toString(16).padStart(64, "0"),
        ),
    );
    await store.register({
      address: "127.0.0.1:10001",
      protocol: "shoal",
      files,
    });
    const some = await store.search("f-*", { limit: 10 });
    assert.equal(some.files.length, 10);
    assert.equal(some.truncated, true);
    const all = await store.search(undefined, { limit: 10 });
    assert.equal(all.files.length, 10);
    assert.equal(all.truncated, true);
    const bytes = await store.search(undefined, { maxBytes: 1000 });
    assert.ok(bytes.truncated && bytes.files.length < 10);
  }],
  ["refuses peers and files beyond the per-network limits", async (make) => {
    const { store } = await setup(make, {
      maxPeersPerAddress: 2,
      maxFilesPerAddress: 3,
    });
    const reg = (port: number, files: FileAnnouncement[]) =>
      store.register({ address: `10.0.0.1:${port}`, protocol: "shoal", files });
    assert.equal(await reg(1, [file("a", ID_A)]), "ok");
    assert.equal(await reg(2, [file("b", ID_B)]), "ok");
    assert.equal(await reg(3, []), "too_many_peers");
    assert.equal(await reg(2, [file("b", ID_B), file("c", ID_C)]), "ok");
    assert.equal(
      await reg(2, [file("b", ID_B), file("c", ID_C), file("d", ID_A)]),
      "too_many_files",
    );
    assert.equal(
      (await store.applyChanges("10.0.0.1:1", {
        seq: 1,
        added: [file("e", ID_C)],
        removed: [],
      })).result,
      "too_many_files",
    );
    // Another network is counted on its own.
    assert.equal(
      await store.register({
        address: "10.0.0.2:1",
        protocol: "shoal",
        files: [file("x", ID_A)],
      }),
      "ok",
    );
  }],
  [
    "frees an expired or departed peer's share of the network's limits",
    async (make) => {
      const { store, clock } = await setup(make, {
        maxPeersPerAddress: 1,
        maxFilesPerAddress: 2,
      });
      const reg = (port: number, files: FileAnnouncement[]) =>
        store.register({
          address: `10.0.0.1:${port}`,
          protocol: "shoal",
          files,
        });
      assert.equal(await reg(1, [file("a", ID_A), file("b", ID_B)]), "ok");
      assert.equal(await reg(2, []), "too_many_peers");
      clock.time += 1000; // peer 1 expires
      assert.equal(await reg(2, [file("c", ID_C), file("d", ID_A)]), "ok");
      assert.equal(await store.unregister("10.0.0.1:2"), true);
      assert.equal(await reg(3, [file("e", ID_B), file("f", ID_C)]), "ok");
      assert.equal(
        await store.replaceFiles("10.0.0.1:3", [
          file("e", ID_B),
          file("f", ID_C),
          file("g", ID_A),
        ]),
        "too_many_files",
      );
      assert.deepEqual((await store.search()).files.map((f) => f.name).sort(), [
        "e",
        "f",
      ]);
    },
  ],
  ["lists Shoal holders of a name before seed-protocol ones", async (make) => {
    const { service } = await setup(make);
    for (let port = 20001; port <= 20005; port++) {
      assert.deepEqual(
        await service.seed({
          command: "register",
          address: `127.0.0.1:${port}`,
          files: ["a.txt"],
        }, IP),
        { status: "ok" },
      );
    }
    await service.request({
      type: "register",
      port: 10001,
      files: [file("a.txt", ID_A)],
    }, IP);
    const reply = await service.request(
      { type: "getpeers", name: "a.txt" },
      IP,
    );
    const peers = reply.type === "peers" ? reply.peers : [];
    assert.equal(peers.length, 6);
    assert.deepEqual(peers[0], {
      address: "127.0.0.1:10001",
      protocol: "shoal",
      name: "a.txt",
      id: ID_A,
    });
    assert.ok(peers.slice(1).every((p) => p.protocol === "legacy" && !p.id));
    const seed = await service.seed(
      { command: "getpeers", filename: "a.txt" },
      IP,
    );
    assert.equal(seed.peers?.[0], "127.0.0.1:10001");
    const listed = await service.request({ type: "list" }, IP);
    assert.deepEqual(
      listed.type === "files" && sorted(listed.files),
      [
        { name: "a.txt", id: null, size: null, holders: 5 },
        { name: "a.txt", id: ID_A, size: 10, holders: 1 },
      ].sort((a, b) => (a.id ?? "") < (b.id ?? "") ? -1 : 1),
    );
  }],
  ["applies seed-protocol register and heartbeat", async (make) => {
    const { service, store, clock } = await setup(make);
    const address = "127.0.0.1:20001";
    assert.deepEqual(
      await service.seed({ command: "heartbeat", address }, IP),
      { status: `error: ${address} is not registered; register first` },
    );
    assert.deepEqual(
      await service.seed(
        { command: "register", address, files: ["x.bin"] },
        IP,
      ),
      { status: "ok" },
    );
    assert.deepEqual(
      await service.seed(
        { command: "heartbeat", address, files: ["y.bin"] },
        IP,
      ),
      { status: "ok" },
    );
    assert.deepEqual(await service.seed({ command: "list" }, IP), {
      status: "ok",
      filemap: { "y.bin": [address] },
      shoal: true,
    });
    clock.time += 999;
    assert.deepEqual(
      await service.seed({ command: "heartbeat", address }, IP),
      { status: "ok" },
    );
    clock.time += 999;
    assert.equal((await store.get(address))?.protocol, "legacy");
    // A Shoal peer that speaks the seed protocol with files becomes a seed peer.
    await service.request({
      type: "register",
      port: 10001,
      files: [file("a.txt", ID_A)],
    }, IP);
    await service.seed({
      command: "heartbeat",
      address: "127.0.0.1:10001",
      files: ["b.txt"],
    }, IP);
    assert.equal((await store.get("127.0.0.1:10001"))?.protocol, "legacy");
    clock.time += 1;
    assert.deepEqual(await service.seed({ command: "list" }, IP), {
      status: "ok",
      filemap: { "b.txt": ["127.0.0.1:10001"] },
      shoal: true,
    });
  }],
  ["samples many holders fairly across networks", async (make) => {
    const { store } = await setup(make, { maxPeersPerAddress: 1000 });
    for (let port = 1; port <= 300; port++) {
      await store.register({
        address: `10.0.0.9:${port}`,
        protocol: "shoal",
        files: [file("pop.iso", ID_A)],
      });
    }
    await store.register({
      address: "10.0.0.1:1",
      protocol: "shoal",
      files: [file("pop.iso", ID_A)],
    });
    const some = await store.getPeers({ id: ID_A }, 50);
    assert.equal(some.length, 50);
    assert.equal(new Set(some.map((p) => p.address)).size, 50);
    const byName = await store.getPeers({ name: "pop.iso" }, 500);
    assert.equal(byName.length, 301);
    assert.deepEqual((await store.search()).files, [
      { name: "pop.iso", id: ID_A, size: 10, holders: 301 },
    ]);
  }],
];

/** Runs every case as a step against stores made by `make`. */
async function contract(t: Deno.TestContext, make: MakeStore): Promise<void> {
  for (const [name, run] of CASES) {
    await t.step(name, () => run(make));
  }
}

Deno.test("TrackerStore contract: MemoryStore", async (t) => {
  await contract(t, (options) => Promise.resolve(new MemoryStore(options)));
});

/** Stores over one Redis URL, each under its own key prefix. */
function redisStores(url: string) {
  const stores: RedisStore[] = [];
  let n = 0;
  const make: MakeStore = async (options) => {
    const store = await RedisStore.connect({
      url,
      prefix: `c${n++}`,
      ...options,
    });
    stores.push(store);
    return store;
  };
  const close = async () => {
    for (const store of stores) await store.close();
  };
  return { make, close };
}

Deno.test("TrackerStore contract: RedisStore on one Redis server", async (t) => {
  await using redis = await startRedis();
  const { make, close } = redisStores(redis.url);
  try {
    await contract(t, make);
    await t.step(
      "refuses keys whose layout an older or other version wrote",
      async () => {
        const connect = (prefix: string) =>
          RedisStore.connect({ url: redis.url, prefix });
        // An older version's name index, without a layout record.
        await cli(redis.port, "ZADD", "old:{names}:lex", "0", "a.txt");
        await assert.rejects(
          connect("old"),
          /another Shoal version wrote \(key layout 1,/,
        );
        await cli(redis.port, "SET", "next:{names}:layout", "9");
        await assert.rejects(connect("next"), /key layout 9,/);
        // A fresh prefix is recorded, and a registration records it again
        // (Redis may have restarted empty under a running tracker).
        await using store = await connect("fresh");
        assert.equal(
          (await cli(redis.port, "GET", "fresh:{names}:layout")).trim(),
          "2",
        );
        await cli(redis.port, "DEL", "fresh:{names}:layout");
        await store.register({
          address: "127.0.0.1:10001",
          protocol: "shoal",
          files: [file("a.txt", ID_A)],
        });
        await using again = await connect("fresh");
        assert.equal((await again.search("a.txt")).files.length, 1);
      },
    );
    await t.step(
      "a lost update of a name's time hides nothing until the next one",
      async () => {
        const name = "kept/a.txt";
        const peer = await registeredPeer(
          redis.url,
          "lost",
          "127.0.0.1:10001",
          name,
        );
        try {
          // The heartbeat that extends the TTL moves the name's time; here
          // that update is lost.
          await peer.untilTtlExtension();
          await cli(
            redis.port,
            "ZADD",
            "lost:{names}:seen",
            String(peer.registered),
            name,
          );
          // A window and more later, the live peer's name is still listed.
          await peer.heartbeatUntil(TTL_QUARTER + 1000 + 3000);
          assert.deepEqual(
            (await peer.store.search("kept/*")).files.map((f) => f.name),
            [name],
          );
        } finally {
          await peer.close();
        }
      },
    );
    await t.step(
      "the name index forgets what nobody held for the window and the lag of its times",
      async () => {
        const { clock, store } = await setup((options) =>
          RedisStore.connect({ url: redis.url, prefix: "gone", ...options })
        );
        await using _ = store as RedisStore;
        const index = (key: string) =>
          cli(redis.port, "ZRANGE", `gone:{names}:${key}`, "0", "-1");
        await store.register({
          address: "127.0.0.1:10001",
          protocol: "shoal",
          files: [file("old/a.txt", ID_A)],
        });
        // A name's time moves once a quarter TTL (4 × expiry + 60 s) and
        // one such update may be lost, so the index keeps it half a TTL
        // longer than its holders live; the holder sets answer exactly.
        clock.time += 1000 + 2 * TTL_QUARTER + 1;
        await store.register({
          address: "127.0.0.1:10002",
          protocol: "shoal",
          files: [file("new/b.txt", ID_B)],
        });
        assert.equal((await index("lex")).trim(), "new/b.txt");
        assert.equal((await index("seen")).trim(), "new/b.txt");
        assert.equal((await index("base")).trim(), "b.txt\0new/b.txt");
        assert.equal((await index("ids")).trim(), ID_B);
        assert.equal((await index("idseen")).trim(), ID_B);
      },
    );
  } finally {
    await close();
  }
});

/** A quarter of RedisStore's TTL (4 × expiry + 60 s) in the cases: 16 s. */
const TTL_QUARTER = (4 * 1000 + 60_000) / 4;

/**
 * A store on Redis (one server or a cluster) under `prefix` with one peer
 * registered holding `name` (ID_A, 5 bytes), and ways to heartbeat it every
 * 500 ms: until a time after the registration, or until the heartbeat that
 * extends the keys' TTL ({@linkcode TTL_QUARTER} after the registration).
 */
async function registeredPeer(
  url: string,
  prefix: string,
  address: string,
  name: string,
) {
  const { clock, store } = await setup((options) =>
    RedisStore.connect({ url, prefix, ...options })
  );
  const registered = clock.time;
  assert.equal(
    await store.register({
      address,
      protocol: "shoal",
      files: [file(name, ID_A, 5)],
    }),
    "ok",
  );
  const heartbeatUntil = async (sinceRegistration: number) => {
    while (clock.time - registered < sinceRegistration) {
      clock.time += 500;
      assert.equal(await store.touch(address), true);
    }
  };
  return {
    clock,
    store,
    registered,
    heartbeatUntil,
    untilTtlExtension: () => heartbeatUntil(TTL_QUARTER),
    close: () => (store as RedisStore).close(),
  };
}

Deno.test("TrackerStore contract: RedisStore on a three-master Redis Cluster", async (t) => {
  await using cluster = await startRedisCluster();
  const { make, close } = redisStores(cluster.url);
  const port = cluster.servers[0]!.port;
  try {
    await contract(t, make);
    await t.step(
      "index entries a lost index call dropped come back at the next TTL extension",
      async () => {
        const address = "127.0.0.1:10001";
        const name = "docs/a.txt";
        const peer = await registeredPeer(
          cluster.url,
          "heal",
          address,
          name,
        );
        const { clock, store } = peer;
        try {
          // The registration's second call (its index updates) never
          // landed: drop every index key it wrote, one per command (they
          // sit in different slots; -c follows the cluster's redirects).
          for (
            const key of [
              `heal:{f:${name}}`,
              `heal:{f:${name}}:i`,
              `heal:{c:${ID_A}}`,
              ...["lex", "seen", "base", "lower", "ids", "idseen"].map((k) =>
                `heal:{names}:${k}`
              ),
            ]
          ) {
            await cli(port, "-c", "DEL", key);
          }
          // A plain heartbeat cannot know what was lost: the name finds no
          // holder with the id, and list queries miss the name.
          clock.time += 400;
          assert.equal(await store.touch(address), true);
          assert.ok(
            !(await store.getPeers({ name })).some((p) => p.id === ID_A),
          );
          assert.deepEqual((await store.search("docs/*")).files, []);
          await peer.untilTtlExtension();
          assert.deepEqual(
            (await store.getPeers({ name })).map((p) => p.id),
            [ID_A],
          );
          assert.deepEqual(
            (await store.getPeers({ id: ID_A })).map((p) => p.address),
            [address],
          );
          assert.deepEqual(
            (await store.search("docs/*")).files.map((f) => f.name),
            [name],
          );
          assert.deepEqual(
            (await store.search(ID_A.slice(0, 12))).files.map((f) => f.id),
            [ID_A],
          );
        } finally {
          await peer.close();
        }
      },
    );
    await t.step(
      "putting index entries back never overwrites a newer one",
      async () => {
        // The index calls of a heartbeat can land after a newer change of
        // the same peer: here a change gave the holder another id, which the
        // TTL-extending heartbeat (still carrying the old one) must keep.
        const address = "127.0.0.1:10002";
        const name = "keep.txt";
        const peer = await registeredPeer(
          cluster.url,
          "keep",
          address,
          name,
        );
        try {
          // The holder's field is `address NUL size`: a NUL cannot travel in
          // an argument, so a one-line script joins it.
          await cli(
            port,
            "-c",
            "EVAL",
            "redis.call('HSET', KEYS[1], ARGV[1] .. '\\0' .. ARGV[2], ARGV[3])",
            "1",
            `keep:{f:${name}}:i`,
            address,
            "5",
            ID_B,
          );
          await peer.untilTtlExtension();
          assert.deepEqual(
            (await peer.store.getPeers({ name })).map((p) => p.id),
            [ID_B],
          );
        } finally {
          await peer.close();
        }
      },
    );
    await t.step(
      "changes made at once share their index calls and all land",
      async () => {
        // 60 registrations, then 60 heartbeats that change files, all in
        // flight together: their index updates go out in shared calls.
        const { store, clock } = await setup(make);
        const id = (i: number) => i.toString(16).padStart(64, "0");
        const address = (i: number) => `10.0.${i}.1:7000`;
        const peers = Array.from({ length: 60 }, (_, i) => i);
        const results = await Promise.all(peers.map((i) =>
          store.register({
            address: address(i),
            protocol: "shoal",
            files: [file(`batch/${i}.bin`, id(i + 1))],
          })
        ));
        assert.deepEqual(results, peers.map(() => "ok"));
        clock.time += 100;
        const changed = await Promise.all(
          peers.map((i) =>
            store.applyChanges(address(i), {
              seq: 1,
              added: [file(`batch/${i}.txt`, id(i + 1000))],
              removed: [`batch/${i}.bin`],
            })
          ),
        );
        assert.deepEqual(
          changed.map((c) => c.result),
          peers.map(() => "ok"),
        );
        const listed = (await store.search("batch/*")).files;
        assert.deepEqual(
          listed.map((f) => f.name).sort(),
          peers.map((i) => `batch/${i}.txt`).sort(),
        );
        for (const i of [0, 17, 59]) {
          assert.deepEqual(
            (await store.getPeers({ id: id(i + 1000) })).map((p) => p.address),
            [address(i)],
          );
          assert.deepEqual(await store.getPeers({ id: id(i + 1) }), []);
        }
      },
    );
  } finally {
    await close();
  }
});

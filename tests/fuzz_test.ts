/**
 * Property-based fuzz tests (fast-check) of everything that parses bytes or
 * values from the network: the frame decoder and the message, seed-protocol,
 * manifest and name validators. Each may refuse input only with a
 * ProtocolError, and never buffers more than its limit.
 *
 * Runs are reproducible: a fixed seed, 10,000 cases per property. Set
 * `SHOAL_FUZZ_RUNS` to run more cases and `SHOAL_FUZZ_SEED` to explore other
 * inputs, e.g. `SHOAL_FUZZ_RUNS=200000 deno test --allow-env tests/fuzz_test.ts`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import fc from "fast-check";
import {
  encodeFrame,
  type Frame,
  FRAME_HEADER_SIZE,
  FrameDecoder,
  FrameDecoderStream,
  ProtocolError,
} from "../lib/net/wire.ts";
import {
  validateAnnouncements,
  validateListReply,
  validatePeerRequest,
  validatePeersReply,
  validateTrackerRequest,
} from "../lib/protocol/messages.ts";
import { validateLegacyRequest } from "../lib/protocol/legacy.ts";
import {
  chunkCount,
  contentId,
  type Manifest,
  validateManifest,
} from "../lib/content/manifest.ts";
import { isInside, validateName } from "../lib/content/names.ts";

function envNumber(name: string, fallback: number): number {
  const permission = Deno.permissions.querySync({
    name: "env",
    variable: name,
  });
  if (permission.state !== "granted") return fallback;
  const text = Deno.env.get(name);
  if (text === undefined || text === "") return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(
      `Cannot use ${name}=${text}: expected a positive integer`,
    );
  }
  return value;
}

/** Generated cases per property. */
const RUNS = envNumber("SHOAL_FUZZ_RUNS", 10_000);
/** Fixed seed, so a failure reproduces on every machine. */
const SEED = envNumber("SHOAL_FUZZ_SEED", 0x5b0a1);

const params = { seed: SEED, numRuns: RUNS };

/** Runs `fn`; any exception other than a ProtocolError fails the property. */
function refusesOnlyWithProtocolError<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch (error) {
    if (error instanceof ProtocolError) return undefined;
    throw error;
  }
}

// ---------------------------------------------------------------------------
// Frames

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Cuts `bytes` into pieces of the given sizes, cycling; 0 gives an empty push. */
function split(bytes: Uint8Array, sizes: readonly number[]): Uint8Array[] {
  if (sizes.length === 0 || sizes.every((s) => s === 0)) return [bytes];
  const pieces: Uint8Array[] = [];
  let offset = 0;
  for (let i = 0; offset < bytes.length; i++) {
    const size = sizes[i % sizes.length]!;
    pieces.push(bytes.subarray(offset, offset + size));
    offset += size;
  }
  return pieces;
}

/**
 * Records as `JSON.parse` makes them (fast-check's default sometimes gives
 * them a null prototype, which no network input has).
 */
const PLAIN = { noNullPrototype: true } as const;

const frameArb: fc.Arbitrary<Frame> = fc.oneof(
  fc.record({
    kind: fc.constant("json" as const),
    message: fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 3 }), {
      maxKeys: 5,
      noNullPrototype: true,
    }),
  }, PLAIN),
  fc.record({
    kind: fc.constant("data" as const),
    rid: fc.integer({ min: 0, max: 0xffffffff }),
    bytes: fc.uint8Array({ maxLength: 300 }),
  }, PLAIN),
);

function headerBytes(kind: number, length: number): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_SIZE);
  out[0] = kind;
  new DataView(out.buffer).setUint32(1, length);
  return out;
}

/**
 * Bytes that are mostly almost frames: valid frames, headers with plausible
 * or absurd lengths and kinds followed by random payloads, and plain junk.
 */
const hostileSegmentArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  frameArb.map(encodeFrame),
  fc.record({
    kind: fc.oneof(
      fc.constantFrom(1, 2),
      fc.integer({ min: 0, max: 255 }),
    ),
    length: fc.oneof(
      fc.integer({ min: 0, max: 600 }),
      fc.integer({ min: 0, max: 0xffffffff }),
    ),
    payload: fc.oneof(
      fc.uint8Array({ maxLength: 600 }),
      fc.jsonValue().map((v) => new TextEncoder().encode(JSON.stringify(v))),
    ),
  }).map(({ kind, length, payload }) =>
    concat([headerBytes(kind, length), payload])
  ),
  fc.uint8Array({ maxLength: 64 }),
);

const piecesArb = fc.array(fc.integer({ min: 0, max: 80 }), { maxLength: 12 });

Deno.test("Fuzz: FrameDecoder fed hostile bytes throws only ProtocolError and stays within its limit", () => {
  fc.assert(
    fc.property(
      fc.array(hostileSegmentArb, { maxLength: 8 }),
      piecesArb,
      fc.integer({ min: 16, max: 700 }),
      (segments, sizes, maxFrameSize) => {
        const decoder = new FrameDecoder({ maxFrameSize });
        let failed = false;
        for (const piece of split(concat(segments), sizes)) {
          try {
            const frames = decoder.push(piece);
            assert.ok(!failed, "a failed decoder produced frames");
            for (const frame of frames) {
              if (frame.kind === "json") {
                const m = frame.message;
                assert.ok(
                  m !== null && typeof m === "object" && !Array.isArray(m),
                );
              } else {
                assert.ok(frame.bytes.length + 4 <= maxFrameSize);
                assert.ok(frame.rid >= 0 && frame.rid <= 0xffffffff);
              }
            }
          } catch (error) {
            if (!(error instanceof ProtocolError)) throw error;
            failed = true;
          }
          assert.ok(
            decoder.bufferedBytes <= maxFrameSize + FRAME_HEADER_SIZE,
            `buffered ${decoder.bufferedBytes} bytes with a ${maxFrameSize}-byte limit`,
          );
        }
      },
    ),
    params,
  );
});

/** A frame as it looks after a JSON round trip (e.g. `-0` becomes `0`). */
function normalise(frame: Frame): Frame {
  return frame.kind === "json"
    ? { kind: "json", message: JSON.parse(JSON.stringify(frame.message)) }
    : frame;
}

Deno.test("Fuzz: valid frames split at random decode to the same frames", () => {
  fc.assert(
    fc.property(
      fc.array(frameArb, { maxLength: 8 }),
      piecesArb,
      (frames, sizes) => {
        const encoded = frames.map(encodeFrame);
        // The tightest limit that still admits every frame.
        const maxFrameSize = Math.max(
          16,
          ...encoded.map((e) => e.length - FRAME_HEADER_SIZE),
        );
        const decoder = new FrameDecoder({ maxFrameSize });
        const decoded: Frame[] = [];
        for (const piece of split(concat(encoded), sizes)) {
          decoded.push(...decoder.push(piece));
        }
        assert.ok(decoder.idle);
        assert.deepStrictEqual(decoded, frames.map(normalise));
      },
    ),
    params,
  );
});

Deno.test("Fuzz: FrameDecoderStream round-trips valid frames split at random", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(frameArb, { maxLength: 6 }),
      piecesArb,
      async (frames, sizes) => {
        const pieces = split(concat(frames.map(encodeFrame)), sizes);
        const decoded = await Array.fromAsync(
          ReadableStream.from(pieces).pipeThrough(new FrameDecoderStream()),
        );
        assert.deepStrictEqual(decoded, frames.map(normalise));
      },
    ),
    { ...params, numRuns: Math.max(100, Math.floor(RUNS / 10)) },
  );
});

// ---------------------------------------------------------------------------
// Values from the network

/**
 * Objects `JSON.parse` can produce that break careless code: `String(x)` or
 * `` `${x}` `` throws a TypeError on the first ones.
 */
const poisonValues: unknown[] = [
  JSON.parse('{"toString":1,"valueOf":1}'),
  JSON.parse('{"toString":null,"valueOf":null}'),
  JSON.parse('{"__proto__":{"type":"list"}}'),
  JSON.parse('{"toJSON":1}'),
  JSON.parse('{"length":1e9,"0":"a.txt"}'),
  JSON.parse("[".repeat(40) + "1" + "]".repeat(40)),
  1e308,
  -0,
  -1,
  0.5,
  2 ** 53,
  "",
  "x".repeat(5000),
  "\u0000",
  "\ud800",
  null,
  undefined,
  [],
  {},
];

const weirdArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(...poisonValues),
  fc.string({ unit: "binary", maxLength: 20 }),
  fc.integer(),
  fc.double(),
);

const hex64Arb = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) =>
  Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("")
);

const segmentArb = fc.oneof(
  { weight: 4, arbitrary: fc.stringMatching(/^[a-z0-9._-]{1,10}$/) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      ".",
      "..",
      "",
      "C:",
      "c:x",
      "a\\b",
      "\u0000",
      "a\nb",
      "~",
      "...",
      "é".repeat(130),
      "x".repeat(256),
    ),
  },
  { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 8 }) },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 4 }) },
);

const nameArb: fc.Arbitrary<unknown> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.tuple(
      fc.boolean(),
      fc.array(segmentArb, { minLength: 1, maxLength: 6 }),
    ).map(([absolute, segments]) => (absolute ? "/" : "") + segments.join("/")),
  },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 30, max: 36 }).map((n) =>
      Array(n).fill("d").join("/")
    ),
  },
  { weight: 2, arbitrary: fc.string({ unit: "binary" }) },
  { weight: 1, arbitrary: weirdArb },
);

const idArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: hex64Arb },
  { weight: 1, arbitrary: hex64Arb.map((h) => h.toUpperCase()) },
  { weight: 1, arbitrary: hex64Arb.map((h) => h.slice(1)) },
  { weight: 2, arbitrary: weirdArb },
);

const portArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer({ min: 1, max: 65535 }),
  fc.integer({ min: -10, max: 70000 }),
  weirdArb,
);

const sizeArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.nat(),
  fc.constantFrom(Number.MAX_SAFE_INTEGER, 2 ** 53),
  weirdArb,
);

const fileArb: fc.Arbitrary<unknown> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({ name: nameArb, id: idArb, size: sizeArb }, PLAIN),
  },
  {
    weight: 1,
    arbitrary: fc.record({ name: nameArb, id: idArb, size: sizeArb }, {
      requiredKeys: [],
      noNullPrototype: true,
    }),
  },
  { weight: 1, arbitrary: weirdArb },
);

const filesArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.array(fileArb, { maxLength: 4 }) },
  { weight: 1, arbitrary: weirdArb },
);

/** Anything at all, including values no JSON parser makes. */
const anyValueArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue(),
  fc.anything({ maxDepth: 3 }),
  weirdArb,
);

const trackerShapedArb = fc.record({
  type: fc.oneof(
    fc.constantFrom("register", "heartbeat", "unregister", "list", "getpeers"),
    weirdArb,
  ),
  port: portArb,
  host: fc.oneof(
    fc.constantFrom("127.0.0.1", "::1", "peer.example.org", "a b", "x/y"),
    weirdArb,
  ),
  files: filesArb,
  query: fc.oneof(fc.string({ maxLength: 300 }), weirdArb),
  id: idArb,
  name: nameArb,
  rid: weirdArb,
}, { requiredKeys: ["type"], noNullPrototype: true });

const trackerTypes = new Set([
  "register",
  "heartbeat",
  "unregister",
  "list",
  "getpeers",
]);

Deno.test("Fuzz: validateTrackerRequest refuses anything malformed only with ProtocolError", () => {
  fc.assert(
    fc.property(fc.oneof(trackerShapedArb, anyValueArb), (value) => {
      const request = refusesOnlyWithProtocolError(() =>
        validateTrackerRequest(value, 3)
      );
      if (request === undefined) return;
      assert.ok(trackerTypes.has(request.type));
      if ("port" in request) {
        assert.ok(Number.isInteger(request.port));
        assert.ok(request.port >= 1 && request.port <= 65535);
      }
      if ("files" in request && request.files) {
        assert.ok(request.files.length <= 3);
        for (const file of request.files) {
          assert.equal(validateName(file.name), file.name);
          assert.match(file.id, /^[0-9a-f]{64}$/);
          assert.ok(Number.isSafeInteger(file.size) && file.size >= 0);
        }
      }
    }),
    params,
  );
});

Deno.test("Fuzz: validateAnnouncements and reply validators refuse only with ProtocolError", () => {
  const listEntryArb = fc.record({
    name: nameArb,
    id: fc.oneof(idArb, fc.constant(null)),
    size: fc.oneof(sizeArb, fc.constant(null)),
    holders: sizeArb,
  }, PLAIN);
  const peerEntryArb = fc.record({
    address: fc.oneof(
      fc.constantFrom("127.0.0.1:1", "[::1]:80", "a:", ":1", "h:123456"),
      weirdArb,
    ),
    protocol: fc.oneof(fc.constantFrom("shoal", "legacy"), weirdArb),
    name: nameArb,
    id: fc.oneof(idArb, fc.constant(null)),
  }, PLAIN);
  fc.assert(
    fc.property(
      filesArb,
      fc.oneof(
        fc.array(fc.oneof(listEntryArb, weirdArb), { maxLength: 4 }),
        weirdArb,
      ),
      fc.oneof(
        fc.array(fc.oneof(peerEntryArb, weirdArb), { maxLength: 4 }),
        weirdArb,
      ),
      (files, listed, peers) => {
        refusesOnlyWithProtocolError(() => validateAnnouncements(files, 3));
        refusesOnlyWithProtocolError(() =>
          validateListReply({ type: "files", files: listed })
        );
        refusesOnlyWithProtocolError(() =>
          validatePeersReply({ type: "peers", peers })
        );
      },
    ),
    params,
  );
});

const peerShapedArb = fc.record({
  type: fc.oneof(fc.constantFrom("manifest", "chunk", "ping"), weirdArb),
  id: idArb,
  name: nameArb,
  index: fc.oneof(fc.nat(), fc.integer(), weirdArb),
  rid: weirdArb,
}, { requiredKeys: ["type"], noNullPrototype: true });

Deno.test("Fuzz: validatePeerRequest refuses anything malformed only with ProtocolError", () => {
  fc.assert(
    fc.property(fc.oneof(peerShapedArb, anyValueArb), (value) => {
      const request = refusesOnlyWithProtocolError(() =>
        validatePeerRequest(value)
      );
      if (request === undefined) return;
      if (request.type === "chunk") {
        assert.match(request.id, /^[0-9a-f]{64}$/);
        assert.ok(Number.isSafeInteger(request.index) && request.index >= 0);
      } else if (request.type === "manifest") {
        assert.ok(request.id !== undefined || request.name !== undefined);
      } else {
        assert.equal(request.type, "ping");
      }
    }),
    params,
  );
});

const legacyShapedArb = fc.record({
  command: fc.oneof(
    fc.constantFrom("register", "heartbeat", "list", "getpeers", "download"),
    weirdArb,
  ),
  address: fc.oneof(
    fc.constantFrom("127.0.0.1:10001", "h:1", "nohost", "a:123456", ":"),
    fc.string({ maxLength: 20 }).map((h) => `${h}:80`),
    weirdArb,
  ),
  files: fc.oneof(fc.array(nameArb, { maxLength: 5 }), weirdArb),
  filename: nameArb,
}, { requiredKeys: ["command"], noNullPrototype: true });

Deno.test("Fuzz: validateLegacyRequest refuses anything malformed only with ProtocolError", () => {
  fc.assert(
    fc.property(fc.oneof(legacyShapedArb, anyValueArb), (value) => {
      const request = refusesOnlyWithProtocolError(() =>
        validateLegacyRequest(value)
      );
      if (request === undefined) return;
      for (const name of request.files ?? []) validateName(name);
      if (request.filename !== undefined) validateName(request.filename);
      if (request.address !== undefined) {
        assert.match(request.address, /:\d{1,5}$/);
      }
    }),
    params,
  );
});

/** Consistent manifests of small files. */
const manifestArb: fc.Arbitrary<Manifest> = fc.record({
  size: fc.nat({ max: 40_000 }),
  chunkSize: fc.constantFrom(4096, 8192, 65536),
  name: fc.constantFrom("a.bin", "docs/b.txt"),
}).chain(({ size, chunkSize, name }) => {
  const count = chunkCount(size, chunkSize);
  return fc.array(hex64Arb, { minLength: count, maxLength: count }).map((
    hashes,
  ) => ({
    id: contentId(size, chunkSize, hashes),
    name,
    size,
    chunkSize,
    hashes,
  }));
});

const manifestFieldArb = fc.constantFrom(
  "id",
  "name",
  "size",
  "chunkSize",
  "hashes",
);

/** A manifest with one field replaced, one hash altered, or nothing changed. */
const tamperedManifestArb = fc.tuple(
  manifestArb,
  fc.option(fc.tuple(manifestFieldArb, weirdArb)),
  fc.option(fc.tuple(fc.nat(), hex64Arb)),
).map(([manifest, replace, swap]) => {
  const value: Record<string, unknown> = { ...manifest };
  if (replace) value[replace[0]] = replace[1];
  if (swap && manifest.hashes.length > 0) {
    const hashes = [...manifest.hashes];
    hashes[swap[0] % hashes.length] = swap[1];
    value.hashes = hashes;
  }
  return { manifest, value, changed: replace !== null || swap !== null };
});

Deno.test("Fuzz: validateManifest accepts consistent manifests and refuses others only with ProtocolError", () => {
  fc.assert(
    fc.property(
      tamperedManifestArb,
      fc.oneof(anyValueArb, fc.constant(undefined)),
      ({ manifest, value, changed }, junk) => {
        if (!changed) {
          assert.deepStrictEqual(
            validateManifest(value, manifest.id),
            manifest,
          );
        } else {
          const result = refusesOnlyWithProtocolError(() =>
            validateManifest(value, manifest.id)
          );
          if (result !== undefined) {
            // Whatever survives must still be the content that was asked for.
            assert.equal(result.id, manifest.id);
            assert.deepStrictEqual(result.hashes, manifest.hashes);
            // `===`, not Object.is: JSON may say `-0`, which is the size 0.
            assert.ok(result.size === manifest.size);
            assert.ok(result.chunkSize === manifest.chunkSize);
          }
        }
        refusesOnlyWithProtocolError(() => validateManifest(junk));
      },
    ),
    params,
  );
});

Deno.test("Fuzz: validateName accepts only names that stay inside the root", () => {
  const root = "/srv/shoal-root";
  fc.assert(
    fc.property(nameArb, (value) => {
      const name = refusesOnlyWithProtocolError(() => validateName(value));
      if (name === undefined) return;
      assert.equal(name, value);
      const segments = name.split("/");
      assert.ok(
        segments.every((s) => s !== "" && s !== "." && s !== ".."),
        `accepted ${JSON.stringify(name)}`,
      );
      assert.ok(!name.includes("\\") && !name.includes("\u0000"));
      const path = join(root, name);
      assert.ok(
        isInside(root, path) && path !== root,
        `${JSON.stringify(name)} escapes ${root}`,
      );
    }),
    params,
  );
});

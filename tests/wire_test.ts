/**
 * Tests of the framing layer: frames survive any splitting and coalescing,
 * and every malformed or oversized input is a ProtocolError, in memory, over
 * a real socket and against a running tracker.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  DATA_HEADER_SIZE,
  encodeDataHeader,
  encodeFrame,
  encodeJsonFrame,
  type Frame,
  FRAME_DATA,
  FRAME_HEADER_SIZE,
  FRAME_JSON,
  FrameDecoder,
  FrameDecoderStream,
  FrameEncoderStream,
  ProtocolError,
} from "../lib/net/wire.ts";
import { FrameConnection } from "../lib/net/connection.ts";
import { startTracker } from "../lib/tracker/server.ts";
import { TrackerClient } from "../lib/tracker/client.ts";

/** Small deterministic PRNG (mulberry32), so failures reproduce. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Cuts `bytes` into pieces of random length (some empty, some large). */
function splitRandomly(
  bytes: Uint8Array,
  rand: () => number,
  maxPiece: number,
): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const length = rand() < 0.05 ? 0 : Math.floor(rand() * maxPiece) + 1;
    pieces.push(bytes.subarray(offset, offset + length));
    offset += length;
  }
  return pieces;
}

/** A mix of JSON and data frames, some empty, some larger than a read. */
function sampleFrames(rand: () => number, count: number): Frame[] {
  const frames: Frame[] = [];
  for (let i = 0; i < count; i++) {
    if (rand() < 0.5) {
      frames.push({
        kind: "json",
        message: {
          type: "chunk",
          index: i,
          text: "héllo ☃ ".repeat(Math.floor(rand() * 20)),
          nested: { list: [1, null, true, "x"] },
        },
      });
    } else {
      const bytes = new Uint8Array(Math.floor(rand() * 3000));
      for (let j = 0; j < bytes.length; j++) bytes[j] = (rand() * 256) | 0;
      frames.push({
        kind: "data",
        rid: Math.floor(rand() * 0xffffffff),
        bytes,
      });
    }
  }
  return frames;
}

function header(kind: number, length: number): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_SIZE);
  out[0] = kind;
  new DataView(out.buffer).setUint32(1, length);
  return out;
}

function jsonFrameOf(text: string | Uint8Array): Uint8Array {
  const body = typeof text === "string" ? new TextEncoder().encode(text) : text;
  return concat([header(FRAME_JSON, body.length), body]);
}

function assertProtocolError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(
      error instanceof ProtocolError,
      `expected a ProtocolError, got ${error}`,
    );
    assert.match(error.message, pattern);
    return true;
  });
}

Deno.test("FrameDecoder returns the same frames however the bytes are split", () => {
  for (let seed = 1; seed <= 40; seed++) {
    const rand = random(seed);
    const frames = sampleFrames(rand, 30);
    const stream = concat(frames.map(encodeFrame));
    // Pieces from 1 byte (every header split) to several frames coalesced.
    const maxPiece = [1, 3, 7, 64, 4096, 20_000][seed % 6]!;
    const decoder = new FrameDecoder({ maxFrameSize: 8192 });
    const decoded: Frame[] = [];
    for (const piece of splitRandomly(stream, rand, maxPiece)) {
      decoded.push(...decoder.push(piece));
    }
    assert.deepEqual(decoded, frames, `seed ${seed}, pieces ≤ ${maxPiece}`);
    assert.ok(decoder.idle, `seed ${seed}: decoder not idle at the end`);
    assert.equal(decoder.bufferedBytes, 0);
  }
});

Deno.test("FrameDecoder decodes many frames coalesced into one push", () => {
  const frames = sampleFrames(random(99), 200);
  const decoded = new FrameDecoder().push(concat(frames.map(encodeFrame)));
  assert.equal(decoded.length, 200);
  assert.deepEqual(decoded, frames);
});

Deno.test("FrameDecoder accepts empty data frames and frames of exactly the limit", () => {
  const decoder = new FrameDecoder({ maxFrameSize: 100 });
  const empty = decoder.push(encodeDataHeader(42, 0));
  assert.deepEqual(empty, [{ kind: "data", rid: 42, bytes: new Uint8Array() }]);
  const full = new Uint8Array(96).fill(7);
  const [frame] = decoder.push(
    encodeFrame({ kind: "data", rid: 0xffffffff, bytes: full }),
  );
  assert.ok(frame?.kind === "data");
  assert.equal(frame.rid, 0xffffffff);
  assert.deepEqual(frame.bytes, full);
  const text = '{"a":"' + "x".repeat(92) + '"}';
  assert.equal(text.length, 100);
  assert.deepEqual(decoder.push(jsonFrameOf(text)), [
    { kind: "json", message: { a: "x".repeat(92) } },
  ]);
});

Deno.test("FrameDecoderStream and FrameEncoderStream round-trip frames split at random", async () => {
  const rand = random(7);
  const frames = sampleFrames(rand, 60);
  const encodedChunks = await Array.fromAsync(
    ReadableStream.from(frames).pipeThrough(new FrameEncoderStream()),
  );
  const pieces = splitRandomly(concat(encodedChunks), rand, 500);
  const decoded = await Array.fromAsync(
    ReadableStream.from(pieces).pipeThrough(new FrameDecoderStream()),
  );
  assert.deepEqual(decoded, frames);
});

Deno.test("FrameDecoder rejects an oversized length from the header alone", () => {
  const decoder = new FrameDecoder({ maxFrameSize: 1024 });
  // Only the 5 header bytes: the decoder must not wait for (or allocate) the
  // payload before refusing it.
  assertProtocolError(
    () => decoder.push(header(FRAME_JSON, 1025)),
    /length 1025 exceeds the 1024-byte limit/,
  );
  assert.ok(decoder.bufferedBytes <= FRAME_HEADER_SIZE);
  assertProtocolError(
    () => decoder.push(new Uint8Array([1])),
    /already failed/,
  );

  // A 4 GiB claim followed by payload bytes in the same push.
  const huge = new FrameDecoder();
  assertProtocolError(
    () =>
      huge.push(concat([header(FRAME_DATA, 0xffffffff), new Uint8Array(100)])),
    /length 4294967295 exceeds/,
  );
  assert.ok(huge.bufferedBytes <= FRAME_HEADER_SIZE);
});

Deno.test("FrameDecoder rejects an oversized header split byte by byte", () => {
  const decoder = new FrameDecoder({ maxFrameSize: 64 });
  const bytes = header(FRAME_DATA, 65);
  for (let i = 0; i < FRAME_HEADER_SIZE - 1; i++) {
    assert.deepEqual(decoder.push(bytes.subarray(i, i + 1)), []);
  }
  assertProtocolError(
    () => decoder.push(bytes.subarray(FRAME_HEADER_SIZE - 1)),
    /length 65 exceeds the 64-byte limit/,
  );
});

Deno.test("FrameDecoder rejects unknown kinds, bad JSON and short data frames", () => {
  const cases: [string, Uint8Array, RegExp][] = [
    ["kind 0", header(0, 2), /unknown kind 0/],
    ["kind 3", header(3, 2), /unknown kind 3/],
    ["kind '{'", new TextEncoder().encode('{"a":1}'), /unknown kind 123/],
    ["invalid JSON", jsonFrameOf("{nope}"), /Cannot accept JSON frame/],
    ["truncated JSON", jsonFrameOf('{"a":'), /Cannot accept JSON frame/],
    [
      "invalid UTF-8",
      jsonFrameOf(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])),
      /Cannot accept JSON frame/,
    ],
    ["JSON array", jsonFrameOf("[1,2]"), /not a JSON object/],
    ["JSON number", jsonFrameOf("42"), /not a JSON object/],
    ["JSON null", jsonFrameOf("null"), /not a JSON object/],
    ["JSON string", jsonFrameOf('"hi"'), /not a JSON object/],
    ["JSON too short", jsonFrameOf("1"), /cannot hold an object/],
    [
      "data shorter than rid",
      concat([header(FRAME_DATA, 3), new Uint8Array(3)]),
      /shorter than its 4-byte request id/,
    ],
  ];
  for (const [label, bytes, pattern] of cases) {
    const decoder = new FrameDecoder();
    assert.throws(
      () => decoder.push(bytes),
      (error: unknown) =>
        error instanceof ProtocolError && pattern.test(error.message),
      label,
    );
  }
});

Deno.test("FrameDecoder refuses a limit it cannot honour", () => {
  assert.throws(() => new FrameDecoder({ maxFrameSize: 8 }), RangeError);
  assert.throws(() => new FrameDecoder({ maxFrameSize: 2 ** 32 }), RangeError);
  assert.throws(() => new FrameDecoder({ maxFrameSize: 100.5 }), RangeError);
});

Deno.test("FrameDecoderStream errors when the input ends inside a frame", async () => {
  const bytes = encodeJsonFrame({ type: "ping" });
  for (const cut of [1, FRAME_HEADER_SIZE, bytes.length - 1]) {
    await assert.rejects(
      Array.fromAsync(
        ReadableStream.from([bytes, bytes.subarray(0, cut)])
          .pipeThrough(new FrameDecoderStream()),
      ),
      (error: unknown) =>
        error instanceof ProtocolError &&
        /ended inside a frame/.test(error.message),
      `cut at ${cut}`,
    );
  }
});

Deno.test("FrameDecoderStream errors on an oversized frame", async () => {
  await assert.rejects(
    Array.fromAsync(
      ReadableStream.from([header(FRAME_DATA, 5000)])
        .pipeThrough(new FrameDecoderStream({ maxFrameSize: 4096 })),
    ),
    ProtocolError,
  );
});

/** A connected pair of loopback TCP connections. */
async function socketPair(): Promise<
  { client: Deno.TcpConn; server: Deno.TcpConn }
> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  const client = await Deno.connect({
    hostname: "127.0.0.1",
    port: listener.addr.port,
  });
  return { client, server: await accepted };
}

Deno.test("FrameConnection carries JSON and data frames, small and large, over TCP", async () => {
  const { client, server } = await socketPair();
  const sender = new FrameConnection(client);
  const receiver = new FrameConnection(server, { readTimeoutMs: 5000 });
  try {
    const big = new Uint8Array(3 * 1024 * 1024 + 17);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
    const small = new Uint8Array([1, 2, 3]);
    // A frame built in place: header room, then the payload.
    const inPlace = new Uint8Array(DATA_HEADER_SIZE + 2 * 1024 * 1024);
    inPlace.subarray(DATA_HEADER_SIZE).fill(0xab);
    const sent = Promise.all([
      sender.send({ type: "ping", n: 1 }),
      sender.sendData(5, big),
      sender.sendData(6, small),
      sender.send({ type: "ping", n: 2 }),
      sender.sendDataFrame(7, inPlace),
    ]).then(() => sender.close());
    const frames = [];
    for await (const frame of receiver.frames()) frames.push(frame);
    await sent;
    assert.equal(frames.length, 5);
    assert.deepEqual(frames[0], {
      kind: "json",
      message: { type: "ping", n: 1 },
    });
    assert.ok(frames[1]?.kind === "data" && frames[1].rid === 5);
    assert.deepEqual(frames[1].bytes, big);
    assert.deepEqual(frames[2], { kind: "data", rid: 6, bytes: small });
    assert.deepEqual(frames[3], {
      kind: "json",
      message: { type: "ping", n: 2 },
    });
    assert.ok(frames[4]?.kind === "data" && frames[4].rid === 7);
    assert.deepEqual(frames[4].bytes, inPlace.subarray(DATA_HEADER_SIZE));
  } finally {
    sender.close();
    receiver.close();
  }
});

Deno.test("FrameConnection reports a stream that ends mid-frame", async () => {
  const { client, server } = await socketPair();
  const receiver = new FrameConnection(server, { readTimeoutMs: 5000 });
  try {
    const frame = encodeJsonFrame({ type: "ping" });
    await client.write(frame.subarray(0, frame.length - 2));
    client.close();
    await assert.rejects(
      Array.fromAsync(receiver.frames()),
      (error: unknown) =>
        error instanceof ProtocolError &&
        /ended inside a frame/.test(error.message),
    );
  } finally {
    receiver.close();
  }
});

/** Reads until the remote side closes; fails the test after `timeoutMs`. */
async function expectClosedByRemote(
  conn: Deno.TcpConn,
  what: string,
  timeoutMs = 5000,
): Promise<void> {
  const buffer = new Uint8Array(4096);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  try {
    while (true) {
      const result = await Promise.race([
        conn.read(buffer).catch((error) => {
          if (error instanceof Deno.errors.ConnectionReset) return null;
          throw error;
        }),
        deadline,
      ]);
      if (result === "timeout") {
        conn.close(); // Unblocks the pending read.
        throw new Error(
          `Expected the tracker to close the ${what} connection within ${timeoutMs} ms`,
        );
      }
      if (result === null) return;
    }
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("Tracker closes connections sending oversized or malformed frames and keeps serving others", async () => {
  await using tracker = await startTracker({
    port: 0,
    hostname: "127.0.0.1",
    maxFrameSize: 1024,
    readTimeoutMs: 60_000, // A close must come from the error, not idleness.
  });
  const errors: string[] = [];
  tracker.addEventListener("protocol-error", (event) => {
    errors.push(event.detail.message);
  });

  const oversized = await Deno.connect({
    hostname: "127.0.0.1",
    port: tracker.port,
  });
  const malformed = await Deno.connect({
    hostname: "127.0.0.1",
    port: tracker.port,
  });
  try {
    // A header claiming 1 MiB: refused from the header, no payload sent.
    await oversized.write(header(FRAME_JSON, 1024 * 1024));
    await malformed.write(jsonFrameOf("{not json"));
    await expectClosedByRemote(oversized, "oversized-frame");
    await expectClosedByRemote(malformed, "malformed-frame");
  } finally {
    oversized.close();
    malformed.close();
  }

  assert.equal(errors.length, 2, `protocol errors: ${errors.join(" | ")}`);
  assert.ok(errors.some((m) => /exceeds the 1024-byte limit/.test(m)));
  assert.ok(errors.some((m) => /Cannot accept JSON frame/.test(m)));

  const client = new TrackerClient(tracker.address, { timeoutMs: 5000 });
  await client.register(40_001, [
    { name: "still.txt", id: "ab".repeat(32), size: 3 },
  ]);
  const files = await client.list();
  assert.deepEqual(files, [
    { name: "still.txt", id: "ab".repeat(32), size: 3, holders: 1 },
  ]);
});

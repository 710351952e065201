/**
 * Tests of the codec seam: `jsonCodec` round-trips objects and refuses
 * everything else, and a custom codec injected into framed connections (and
 * the RPC client) is the one that encodes and decodes control frames.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type Codec, jsonCodec } from "../lib/net/codec.ts";
import { FrameConnection } from "../lib/net/connection.ts";
import type { Duplex } from "../lib/net/transport.ts";
import {
  encodeJsonFrame,
  FRAME_JSON,
  FrameDecoder,
  FrameDecoderStream,
  FrameEncoderStream,
  ProtocolError,
} from "../lib/net/wire.ts";
import { RpcClient } from "../lib/protocol/rpc.ts";

const utf8 = new TextEncoder();

/** A codec wrapping `jsonCodec` that counts its calls. */
function countingCodec(): Codec & { encoded: number; decoded: number } {
  const codec = {
    name: "counting-json",
    encoded: 0,
    decoded: 0,
    encode(value: unknown): Uint8Array {
      codec.encoded++;
      return jsonCodec.encode(value);
    },
    decode(payload: Uint8Array): unknown {
      codec.decoded++;
      return jsonCodec.decode(payload);
    },
  };
  return codec;
}

/** JSON with every byte XORed: a wire encoding `jsonCodec` cannot read. */
const xorCodec: Codec = {
  name: "xor-json",
  encode(value) {
    return jsonCodec.encode(value).map((byte) => byte ^ 0x55);
  },
  decode(payload) {
    return jsonCodec.decode(payload.map((byte) => byte ^ 0x55));
  },
};

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

function assertProtocolError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(
    fn,
    (error: unknown) =>
      error instanceof ProtocolError && pattern.test(error.message),
    String(pattern),
  );
}

Deno.test("jsonCodec round-trips objects as UTF-8 JSON", () => {
  assert.equal(jsonCodec.name, "json");
  const message = {
    type: "have",
    rid: 7,
    names: ["ünïcødé 🐟", ""],
    nested: { ok: true, n: null },
  };
  const payload = jsonCodec.encode(message);
  assert.deepEqual(payload, utf8.encode(JSON.stringify(message)));
  assert.deepEqual(jsonCodec.decode(payload), message);
  assert.deepEqual(jsonCodec.decode(utf8.encode("{}")), {});
});

Deno.test("jsonCodec refuses payloads that are not a UTF-8 JSON object", () => {
  const cases: [string, Uint8Array, RegExp][] = [
    ["empty", new Uint8Array(0), /length 0 cannot hold an object/],
    ["one byte", utf8.encode("1"), /length 1 cannot hold an object/],
    ["invalid JSON", utf8.encode("{nope}"), /^Cannot accept JSON frame: /],
    ["truncated JSON", utf8.encode('{"a":'), /^Cannot accept JSON frame: /],
    [
      "invalid UTF-8",
      new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]),
      /^Cannot accept JSON frame: /,
    ],
    ["array", utf8.encode("[1,2]"), /payload is not a JSON object/],
    ["number", utf8.encode("42"), /payload is not a JSON object/],
    ["null", utf8.encode("null"), /payload is not a JSON object/],
    ["string", utf8.encode('"hi"'), /payload is not a JSON object/],
  ];
  for (const [label, payload, pattern] of cases) {
    assert.throws(
      () => jsonCodec.decode(payload),
      (error: unknown) =>
        error instanceof ProtocolError && pattern.test(error.message) &&
        !error.message.includes("\n"),
      label,
    );
  }
});

Deno.test("jsonCodec refuses to encode anything but an object", () => {
  for (const value of [[1, 2], 42, "hi", null, undefined, true]) {
    assert.throws(
      () => jsonCodec.encode(value),
      (error: unknown) =>
        error instanceof TypeError &&
        /^Cannot encode message: .* is not a JSON object$/.test(error.message),
      String(value),
    );
  }
  assert.throws(() => jsonCodec.encode({ n: 1n }), TypeError);
  assert.throws(() => encodeJsonFrame([1]), TypeError);
});

Deno.test("FrameDecoder decodes JSON frames with the codec it is given", () => {
  const frame = encodeJsonFrame({ type: "ping" }, xorCodec);
  assert.equal(frame[0], FRAME_JSON);
  assert.deepEqual(new FrameDecoder({ codec: xorCodec }).push(frame), [
    { kind: "json", message: { type: "ping" } },
  ]);
  // The default codec cannot read it: the payload really is XORed.
  assertProtocolError(
    () => new FrameDecoder().push(frame),
    /Cannot accept JSON frame/,
  );
});

Deno.test("FrameDecoder reports a codec's own failure as a ProtocolError", () => {
  const broken: Codec = {
    name: "broken",
    encode: (value) => jsonCodec.encode(value),
    decode() {
      throw new Error("boom\nsecond line");
    },
  };
  const decoder = new FrameDecoder({ codec: broken });
  assertProtocolError(
    () => decoder.push(encodeJsonFrame({ type: "ping" })),
    /^Cannot accept broken frame: boom$/,
  );
  assertProtocolError(
    () => decoder.push(new Uint8Array([1])),
    /the stream already failed/,
  );
});

Deno.test("Frame streams encode and decode with an injected codec", async () => {
  const frames = await Array.fromAsync(
    ReadableStream.from([
      { kind: "json" as const, message: { type: "ping", n: 1 } },
      { kind: "data" as const, rid: 3, bytes: new Uint8Array([1, 2, 3]) },
    ])
      .pipeThrough(new FrameEncoderStream({ codec: xorCodec }))
      .pipeThrough(new FrameDecoderStream({ codec: xorCodec })),
  );
  assert.deepEqual(frames, [
    { kind: "json", message: { type: "ping", n: 1 } },
    { kind: "data", rid: 3, bytes: new Uint8Array([1, 2, 3]) },
  ]);
});

Deno.test("FrameConnection uses its injected codec for control frames only, over TCP", async () => {
  const { client, server } = await socketPair();
  const sending = countingCodec();
  const receiving = countingCodec();
  const sender = new FrameConnection(client, { codec: sending });
  const receiver = new FrameConnection(server, {
    codec: receiving,
    readTimeoutMs: 5000,
  });
  try {
    assert.equal(sender.codec, sending);
    const idle: Duplex = {
      remoteAddr: { hostname: "127.0.0.1", port: 1 },
      read: () => Promise.resolve(null),
      write: (bytes) => Promise.resolve(bytes.length),
      close: () => {},
    };
    assert.equal(new FrameConnection(idle).codec, jsonCodec);
    const big = new Uint8Array(512 * 1024).fill(0xcd);
    const sent = Promise.all([
      sender.send({ type: "ping", n: 1 }),
      sender.sendData(5, big),
      sender.sendData(6, new Uint8Array([1, 2, 3])),
      sender.send({ type: "ping", n: 2 }),
    ]).then(() => sender.close());
    const frames = [];
    for await (const frame of receiver.frames()) frames.push(frame);
    await sent;
    assert.deepEqual(frames.map((f) => f.kind), [
      "json",
      "data",
      "data",
      "json",
    ]);
    assert.deepEqual(frames[3], {
      kind: "json",
      message: { type: "ping", n: 2 },
    });
    assert.ok(frames[1]?.kind === "data");
    assert.deepEqual(frames[1].bytes, big);
    // Two control frames each way through the codec; the data frames never.
    assert.equal(sending.encoded, 2);
    assert.equal(sending.decoded, 0);
    assert.equal(receiving.decoded, 2);
    assert.equal(receiving.encoded, 0);
  } finally {
    sender.close();
    receiver.close();
  }
});

Deno.test("FrameConnections with different codecs cannot understand each other", async () => {
  const { client, server } = await socketPair();
  const sender = new FrameConnection(client, { codec: xorCodec });
  const receiver = new FrameConnection(server, { readTimeoutMs: 5000 });
  try {
    await sender.send({ type: "ping" });
    await assert.rejects(
      receiver.frames().next(),
      (error: unknown) =>
        error instanceof ProtocolError &&
        /Cannot accept JSON frame/.test(error.message),
    );
  } finally {
    sender.close();
    receiver.close();
  }
});

Deno.test("RpcClient passes its codec to its connection", async () => {
  const { client, server } = await socketPair();
  const codec = countingCodec();
  const rpc = new RpcClient(client, { codec, requestTimeoutMs: 5000 });
  const answerer = new FrameConnection(server, { codec, readTimeoutMs: 5000 });
  try {
    assert.equal(rpc.connection.codec, codec);
    const answered = (async () => {
      for await (const frame of answerer.frames()) {
        if (frame.kind !== "json") continue;
        const { rid } = frame.message as { rid: number };
        await answerer.send({ type: "pong", rid });
      }
    })();
    assert.deepEqual(await rpc.request({ type: "ping" }), {
      type: "pong",
      rid: 1,
    });
    // The request and the reply were each encoded once and decoded once.
    assert.equal(codec.encoded, 2);
    assert.equal(codec.decoded, 2);
    await rpc.close();
    await answered;
  } finally {
    await rpc.close();
    answerer.close();
  }
});

/**
 * Tests of the transport seam: the TCP transport dials and accepts, its
 * listener ends iteration on close, dialling honours a signal, and an RPC
 * client (with or without the private-swarm handshake) runs over whatever
 * transport it is given.
 *
 * @module
 */
import assert from "node:assert/strict";
import { tcpTransport, type Transport } from "../lib/net/transport.ts";
import { RpcClient } from "../lib/protocol/rpc.ts";
import {
  AuthenticationError,
  privateSwarmTransport,
} from "../lib/protocol/auth.ts";
import { startTracker } from "../lib/tracker/server.ts";

Deno.test("tcpTransport moves bytes both ways between dial and listen", async () => {
  const listener = tcpTransport.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    assert.ok(listener.addr.port > 0);
    const accepting = listener[Symbol.asyncIterator]().next();
    const client = await tcpTransport.dial(
      `127.0.0.1:${listener.addr.port}`,
      { timeoutMs: 5000 },
    );
    const accepted = await accepting;
    assert.equal(accepted.done, false);
    const server = accepted.value!;
    try {
      assert.equal(client.remoteAddr.port, listener.addr.port);
      assert.equal(server.remoteAddr.hostname, "127.0.0.1");
      assert.equal(await client.write(new Uint8Array([1, 2, 3])), 3);
      const buffer = new Uint8Array(8);
      let got = 0;
      while (got < 3) {
        const n = await server.read(buffer.subarray(got));
        assert.notEqual(n, null);
        got += n!;
      }
      assert.deepEqual([...buffer.subarray(0, 3)], [1, 2, 3]);
      await server.write(new Uint8Array([9]));
      assert.equal(await client.read(buffer), 1);
      assert.equal(buffer[0], 9);
      server.close();
      assert.equal(await client.read(buffer), null);
    } finally {
      client.close();
      try {
        server.close();
      } catch { /* closed above */ }
    }
  } finally {
    listener.close();
  }
});

Deno.test("tcpTransport listener ends iteration when closed", async () => {
  const listener = tcpTransport.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted: unknown[] = [];
  const loop = (async () => {
    for await (const conn of listener) {
      accepted.push(conn);
      conn.close();
    }
  })();
  listener.close();
  await loop;
  assert.equal(accepted.length, 0);
});

Deno.test("tcpTransport dial rejects with the reason of an aborted signal", async () => {
  const listener = tcpTransport.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const controller = new AbortController();
    const reason = new Error("stop");
    controller.abort(reason);
    await assert.rejects(
      tcpTransport.dial(`127.0.0.1:${listener.addr.port}`, {
        signal: controller.signal,
      }),
      (error) => error === reason,
    );
  } finally {
    listener.close();
  }
});

Deno.test("tcpTransport dial refuses an address that is not host:port", async () => {
  await assert.rejects(tcpTransport.dial("nowhere"), TypeError);
});

/** A transport that counts the bytes moved by the connections it dials. */
function countingTransport(base: Transport) {
  const counts = { dials: 0, read: 0, written: 0 };
  const transport: Transport = {
    async dial(address, options) {
      const inner = await base.dial(address, options);
      counts.dials++;
      return {
        remoteAddr: inner.remoteAddr,
        async read(p) {
          const n = await inner.read(p);
          counts.read += n ?? 0;
          return n;
        },
        async write(p) {
          const n = await inner.write(p);
          counts.written += n;
          return n;
        },
        close: () => inner.close(),
      };
    },
    listen: (options) => base.listen(options),
  };
  return { transport, counts };
}

Deno.test("RpcClient talks to a tracker through the transport passed in", async () => {
  await using tracker = await startTracker({ hostname: "127.0.0.1", port: 0 });
  const { transport, counts } = countingTransport(tcpTransport);
  await using client = await RpcClient.connect(tracker.address, { transport });
  const reply = await client.call({ type: "list" }, "files");
  assert.ok(Array.isArray(reply.files));
  assert.equal(counts.dials, 1);
  assert.ok(counts.written > 0, "no bytes were written through the transport");
  assert.ok(counts.read > 0, "no bytes were read through the transport");
});

Deno.test("privateSwarmTransport authenticates over the transport it wraps", async () => {
  const secret = "correct horse battery staple";
  await using tracker = await startTracker({
    hostname: "127.0.0.1",
    port: 0,
    secret,
  });
  const { transport, counts } = countingTransport(tcpTransport);
  // The plaintext handshake (a secure connection proves the secret in its
  // Noise handshake instead).
  await using client = await RpcClient.connect(tracker.address, {
    transport: privateSwarmTransport(transport, secret),
    encryption: false,
  });
  const handshakeBytes = counts.written;
  assert.ok(handshakeBytes > 0, "the handshake did not use the transport");
  await client.call({ type: "list" }, "files");
  assert.ok(counts.written > handshakeBytes);
  await assert.rejects(
    RpcClient.connect(tracker.address, {
      transport: privateSwarmTransport(tcpTransport, "a different secret!!"),
      encryption: false,
    }),
    AuthenticationError,
  );
});

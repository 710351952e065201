/**
 * Tests of the transport seam: the TCP transport dials and accepts, its
 * listener ends iteration on close, and dialling honours a signal.
 *
 * @module
 */
import assert from "node:assert/strict";
import { tcpTransport } from "../lib/net/transport.ts";

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

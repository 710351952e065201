/**
 * Secure connections over real sockets: data crosses intact in large and
 * small writes, a changed byte ends the connection with a clear error, a
 * wrong swarm key or an unexpected server key is refused.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  generateIdentity,
  HandshakeError,
  type Identity,
  KeyMismatchError,
  peerIdOf,
  ProtocolError,
  secureAccept,
  secureConnect,
  type SecureDuplex,
  tcpTransport,
} from "../lib/net/mod.ts";
import type { Duplex } from "../lib/net/transport.ts";
import { randomBytes } from "./_helpers.ts";

/** A listener and one dialled connection, both raw. */
async function pair(): Promise<{ client: Duplex; server: Duplex }> {
  const listener = tcpTransport.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener[Symbol.asyncIterator]().next();
  const client = await tcpTransport.dial(`127.0.0.1:${listener.addr.port}`);
  const server = (await accepted).value!;
  listener.close();
  return { client, server };
}

async function handshake(
  options: {
    clientPsk?: Uint8Array;
    serverPsk?: Uint8Array;
    remoteKey?: Uint8Array;
    server?: Identity;
  } = {},
): Promise<{ client: SecureDuplex; server: SecureDuplex }> {
  const { client, server } = await pair();
  const serverIdentity = options.server ?? generateIdentity();
  const accepted = (async () => {
    const first = new Uint8Array(1);
    await server.read(first);
    return await secureAccept(server, first, {
      identity: serverIdentity,
      ...(options.serverPsk ? { psk: options.serverPsk } : {}),
    });
  })();
  accepted.catch(() => {});
  try {
    const secure = await secureConnect(client, "server", {
      ...(options.clientPsk ? { psk: options.clientPsk } : {}),
      ...(options.remoteKey ? { remoteKey: options.remoteKey } : {}),
    });
    return { client: secure, server: await accepted };
  } catch (error) {
    client.close();
    await accepted.catch(() => {});
    server.close();
    throw error;
  }
}

async function readExactly(conn: Duplex, size: number): Promise<Uint8Array> {
  const out = new Uint8Array(size);
  let n = 0;
  while (n < size) {
    const read = await conn.read(out.subarray(n, Math.min(size, n + 300_000)));
    if (read === null) throw new Error("ended early");
    n += read;
  }
  return out;
}

Deno.test("A secure connection carries big and small writes intact both ways", async () => {
  const server = generateIdentity();
  const { client, server: remote } = await handshake({ server });
  try {
    assert.equal(peerIdOf(client.remoteKey), peerIdOf(server.publicKey));
    const big = randomBytes(3 * 1024 * 1024 + 17);
    const small = new TextEncoder().encode("hello");
    const received = readExactly(remote, big.length + small.length);
    await client.write(big);
    await client.write(small);
    const bytes = await received;
    assert.deepEqual(bytes.subarray(0, big.length), big);
    assert.deepEqual(bytes.subarray(big.length), small);
    await remote.write(small);
    assert.deepEqual(await readExactly(client, small.length), small);
  } finally {
    client.close();
    remote.close();
  }
});

Deno.test("A changed byte ends a secure connection with a clear error", async () => {
  const { client, server } = await pair();
  // Client writes through a tap that flips one byte of its first record.
  let flipped = false;
  const tap: Duplex = {
    read: (p) => client.read(p),
    write: (p) => {
      if (!flipped && p.length > 100) {
        const copy = p.slice();
        copy[50]! ^= 1;
        flipped = true;
        return client.write(copy).then(() => p.length);
      }
      return client.write(p);
    },
    close: () => client.close(),
    remoteAddr: client.remoteAddr,
  };
  const accepted = (async () => {
    const first = new Uint8Array(1);
    await server.read(first);
    return await secureAccept(server, first);
  })();
  const secure = await secureConnect(tap, "server");
  const remote = await accepted;
  try {
    await secure.write(randomBytes(1000));
    await assert.rejects(
      remote.read(new Uint8Array(2000)),
      (error: unknown) =>
        error instanceof ProtocolError &&
        /failed authentication \(changed on the way\)/.test(error.message),
    );
  } finally {
    secure.close();
    remote.close();
  }
});

Deno.test("A secure handshake refuses a wrong swarm key, a missing one, and an unexpected server key", async () => {
  const psk = new Uint8Array(32).fill(1);
  await assert.rejects(
    handshake({ clientPsk: psk, serverPsk: new Uint8Array(32).fill(2) }),
    (e: unknown) => e instanceof HandshakeError && e.reason === "wrong_secret",
  );
  await assert.rejects(
    handshake({ serverPsk: psk }),
    (e: unknown) =>
      e instanceof HandshakeError && e.reason === "secret_required",
  );
  await assert.rejects(
    handshake({ clientPsk: psk }),
    (e: unknown) => e instanceof HandshakeError && e.reason === "no_secret",
  );
  await assert.rejects(
    handshake({ remoteKey: generateIdentity().publicKey }),
    (e: unknown) =>
      e instanceof KeyMismatchError && /Cannot trust server/.test(e.message),
  );
  const ok = await handshake({ clientPsk: psk, serverPsk: psk });
  ok.client.close();
  ok.server.close();
});

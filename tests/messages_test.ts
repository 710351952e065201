/**
 * Tests of the framed protocol's message validators: well-formed requests
 * and replies pass typed, and every malformed field is a ProtocolError.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  MAX_QUERY_LENGTH,
  validateAnnouncements,
  validateListReply,
  validatePeerRequest,
  validatePeersReply,
  validateTrackerRequest,
} from "../lib/protocol/messages.ts";
import { ProtocolError } from "../lib/net/wire.ts";

const ID = "0123456789abcdef".repeat(4);
const FILE = { name: "docs/a.txt", id: ID, size: 42 };

function assertRefused(fn: () => unknown, pattern: RegExp, label = ""): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(
      error instanceof ProtocolError,
      `${label}: expected a ProtocolError, got ${error}`,
    );
    assert.match(error.message, pattern, label);
    return true;
  }, label);
}

Deno.test("validateTrackerRequest accepts each well-formed request", () => {
  assert.deepEqual(
    validateTrackerRequest({ type: "register", port: 10001, files: [FILE] }),
    { type: "register", port: 10001, files: [FILE] },
  );
  assert.deepEqual(
    validateTrackerRequest({
      type: "register",
      port: 1,
      host: "peer-1.example.org",
      files: [],
      extra: "ignored",
    }),
    { type: "register", port: 1, host: "peer-1.example.org", files: [] },
  );
  assert.deepEqual(validateTrackerRequest({ type: "heartbeat", port: 65535 }), {
    type: "heartbeat",
    port: 65535,
  });
  assert.deepEqual(
    validateTrackerRequest({ type: "heartbeat", port: 2, files: [FILE] }),
    { type: "heartbeat", port: 2, files: [FILE] },
  );
  assert.deepEqual(
    validateTrackerRequest({ type: "unregister", port: 9, host: "::1" }),
    { type: "unregister", port: 9, host: "::1" },
  );
  assert.deepEqual(validateTrackerRequest({ type: "list" }), { type: "list" });
  assert.deepEqual(validateTrackerRequest({ type: "list", query: "*.txt" }), {
    type: "list",
    query: "*.txt",
  });
  assert.deepEqual(validateTrackerRequest({ type: "getpeers", id: ID }), {
    type: "getpeers",
    id: ID,
  });
  assert.deepEqual(
    validateTrackerRequest({ type: "getpeers", name: "a.txt" }),
    { type: "getpeers", name: "a.txt" },
  );
});

Deno.test("validateTrackerRequest refuses non-objects and unknown or missing types", () => {
  for (const value of [null, 1, "register", [], [{ type: "list" }], true]) {
    assertRefused(
      () => validateTrackerRequest(value),
      /not a JSON object/,
      JSON.stringify(value),
    );
  }
  assertRefused(() => validateTrackerRequest({}), /"type" is missing/);
  assertRefused(
    () => validateTrackerRequest({ type: 7 }),
    /"type" is missing/,
  );
  assertRefused(
    () => validateTrackerRequest({ type: "x".repeat(33) }),
    /"type" is missing or not a short string/,
  );
  assertRefused(
    () => validateTrackerRequest({ type: "chunk", id: ID, index: 0 }),
    /unknown tracker request type "chunk"/,
  );
});

Deno.test("validateTrackerRequest refuses bad ports", () => {
  for (
    const port of [0, -1, 65536, 1.5, "80", null, undefined, NaN, 1e10, [80]]
  ) {
    for (const type of ["register", "heartbeat", "unregister"]) {
      assertRefused(
        () => validateTrackerRequest({ type, port, files: [] }),
        /"port" .* is not an integer from 1 to 65535/,
        `${type} port ${String(port)}`,
      );
    }
  }
});

Deno.test("validateTrackerRequest refuses bad hosts", () => {
  for (const host of ["", "a b", "evil/host", "x".repeat(254), 12, null]) {
    assertRefused(
      () =>
        validateTrackerRequest({ type: "register", port: 1, host, files: [] }),
      /"host" is not a host name/,
      JSON.stringify(host),
    );
  }
});

Deno.test("validateTrackerRequest refuses malformed file lists", () => {
  const register = (files: unknown) =>
    validateTrackerRequest({ type: "register", port: 10001, files });
  assertRefused(() => register(undefined), /"files" is not an array/);
  assertRefused(() => register({ 0: FILE }), /"files" is not an array/);
  assertRefused(() => register([null]), /not an object/);
  assertRefused(() => register(["a.txt"]), /not an object/);
  assertRefused(() => register([{ ...FILE, id: "abc" }]), /id is not 64/);
  assertRefused(
    () => register([{ ...FILE, id: ID.toUpperCase() }]),
    /id is not 64 lowercase hex/,
  );
  assertRefused(() => register([{ ...FILE, size: -1 }]), /size/);
  assertRefused(() => register([{ ...FILE, size: 1.5 }]), /size/);
  assertRefused(() => register([{ ...FILE, size: "42" }]), /size/);
  assertRefused(() => register([{ ...FILE, size: 2 ** 53 }]), /size/);
  assertRefused(() => register([{ ...FILE, name: "../x" }]), /".." segment/);
  assertRefused(() => register([{ ...FILE, name: 5 }]), /expected a string/);
  assertRefused(
    () =>
      validateTrackerRequest({ type: "heartbeat", port: 1, files: "a.txt" }),
    /"files" is not an array/,
  );
});

Deno.test("validateTrackerRequest refuses more files than allowed", () => {
  const files = Array.from({ length: 4 }, () => FILE);
  assert.equal(
    (validateTrackerRequest({ type: "register", port: 1, files }, 4) as {
      files: unknown[];
    }).files.length,
    4,
  );
  assertRefused(
    () => validateTrackerRequest({ type: "register", port: 1, files }, 3),
    /"files" has 4 entries, more than the 3 allowed/,
  );
  assertRefused(
    () => validateAnnouncements(files, 3),
    /more than the 3 allowed/,
  );
});

Deno.test("validateTrackerRequest refuses bad list and getpeers queries", () => {
  assertRefused(
    () => validateTrackerRequest({ type: "list", query: 5 }),
    /"query" is not a string/,
  );
  assertRefused(
    () =>
      validateTrackerRequest({
        type: "list",
        query: "x".repeat(MAX_QUERY_LENGTH + 1),
      }),
    /at most 256 characters/,
  );
  assertRefused(
    () => validateTrackerRequest({ type: "getpeers" }),
    /getpeers needs "id" or "name"/,
  );
  assertRefused(
    () => validateTrackerRequest({ type: "getpeers", id: "abc" }),
    /"id" is not 64 lowercase hex digits/,
  );
  assertRefused(
    () => validateTrackerRequest({ type: "getpeers", name: "/etc/passwd" }),
    /absolute/,
  );
});

Deno.test("validatePeerRequest accepts manifest, chunk and ping requests", () => {
  assert.deepEqual(validatePeerRequest({ type: "manifest", id: ID }), {
    type: "manifest",
    id: ID,
  });
  assert.deepEqual(validatePeerRequest({ type: "manifest", name: "a.txt" }), {
    type: "manifest",
    name: "a.txt",
  });
  assert.deepEqual(
    validatePeerRequest({ type: "chunk", id: ID, index: 0, rid: 3 }),
    { type: "chunk", id: ID, index: 0 },
  );
  assert.deepEqual(validatePeerRequest({ type: "ping" }), { type: "ping" });
});

Deno.test("validatePeerRequest refuses bad ids, indexes and types", () => {
  assertRefused(() => validatePeerRequest({ type: "manifest" }), /needs "id"/);
  assertRefused(
    () => validatePeerRequest({ type: "manifest", name: "a//b" }),
    /empty path segment/,
  );
  assertRefused(
    () => validatePeerRequest({ type: "manifest", id: 42 }),
    /"id" is not 64/,
  );
  for (const index of [-1, 1.5, "0", null, undefined, 2 ** 53]) {
    assertRefused(
      () => validatePeerRequest({ type: "chunk", id: ID, index }),
      /"index" is not a non-negative integer/,
      String(index),
    );
  }
  assertRefused(
    () => validatePeerRequest({ type: "chunk", id: "g".repeat(64), index: 0 }),
    /"id" is not 64/,
  );
  assertRefused(
    () => validatePeerRequest({ type: "register", port: 1, files: [] }),
    /unknown peer request type "register"/,
  );
  assertRefused(() => validatePeerRequest([]), /not a JSON object/);
});

Deno.test("validateListReply accepts listed files and refuses malformed ones", () => {
  const good = [
    { name: "a.txt", id: ID, size: 5, holders: 2 },
    { name: "old.txt", id: null, size: null, holders: 1 },
  ];
  assert.deepEqual(validateListReply({ type: "files", files: good }), good);
  assertRefused(() => validateListReply({ files: "x" }), /not an array/);
  assertRefused(
    () => validateListReply({ files: [1, 2] }, 1),
    /bounded length/,
  );
  assertRefused(
    () => validateListReply({ files: [{ ...good[0], id: "x" }] }),
    /id is invalid/,
  );
  assertRefused(
    () => validateListReply({ files: [{ ...good[0], size: -5 }] }),
    /size is invalid/,
  );
  assertRefused(
    () => validateListReply({ files: [{ ...good[0], holders: "2" }] }),
    /holder count/,
  );
  // An entry whose name cannot be saved here is left out, not the reply.
  assert.deepEqual(
    validateListReply({
      files: [good[0], { ...good[0], name: "../a" }, {
        ...good[0],
        name: "a.txt:stream",
      }],
    }),
    [good[0]],
  );
});

Deno.test("validatePeersReply accepts holders and refuses malformed ones", () => {
  const good = [
    { address: "127.0.0.1:10001", protocol: "shoal", name: "a.txt", id: ID },
    { address: "[::1]:10002", protocol: "legacy", name: "a.txt", id: null },
    { address: "peer.local:80", protocol: "shoal", name: "b/c", id: ID },
  ];
  assert.deepEqual(validatePeersReply({ peers: good }), good);
  const peer = good[0]!;
  for (
    const address of ["127.0.0.1", "127.0.0.1:", "a b:1", "::1:80", 5]
  ) {
    assertRefused(
      () => validatePeersReply({ peers: [{ ...peer, address }] }),
      /address is not host:port/,
      String(address),
    );
  }
  assertRefused(
    () => validatePeersReply({ peers: [{ ...peer, protocol: "http" }] }),
    /protocol/,
  );
  assertRefused(
    () => validatePeersReply({ peers: [{ ...peer, id: null }] }),
    /Shoal peer has no content id/,
  );
  assertRefused(
    () => validatePeersReply({ peers: [{ ...peer, id: "a" }] }),
    /content id is invalid/,
  );
  assertRefused(() => validatePeersReply({ peers: null }), /not an array/);
  assert.deepEqual(
    validatePeersReply({ peers: [{ ...peer, name: "CON" }, peer] }),
    [peer],
  );
});

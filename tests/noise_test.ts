/**
 * The Noise handshakes checked against the published cacophony test vectors
 * (`fixtures/noise_vectors.json` names its source): every handshake message
 * and transport message must match byte for byte, both ways.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Buffer } from "node:buffer";
import {
  type CipherState,
  dhKeyPair,
  HandshakeState,
  type NoisePattern,
} from "../lib/net/_noise.ts";
import { FIXTURES } from "./_helpers.ts";

interface Vector {
  protocol_name: string;
  init_prologue: string;
  init_psks?: string[];
  init_static: string;
  init_ephemeral: string;
  resp_prologue: string;
  resp_psks?: string[];
  resp_static: string;
  resp_ephemeral: string;
  handshake_hash: string;
  messages: { payload: string; ciphertext: string }[];
}

const hex = (s: string) => new Uint8Array(Buffer.from(s, "hex"));
const toHex = (b: Uint8Array) => Buffer.from(b).toString("hex");

const { vectors } = JSON.parse(
  await Deno.readTextFile(join(FIXTURES, "noise_vectors.json")),
) as { vectors: Vector[] };

for (const vector of vectors) {
  Deno.test(`Noise matches the cacophony vector ${vector.protocol_name}`, () => {
    const pattern = vector.protocol_name.split("_")[1] as NoisePattern;
    const initiator = new HandshakeState({
      pattern,
      initiator: true,
      prologue: hex(vector.init_prologue),
      s: dhKeyPair(hex(vector.init_static)),
      e: dhKeyPair(hex(vector.init_ephemeral)),
      ...(vector.init_psks ? { psk: hex(vector.init_psks[0]!) } : {}),
    });
    const responder = new HandshakeState({
      pattern,
      initiator: false,
      prologue: hex(vector.resp_prologue),
      s: dhKeyPair(hex(vector.resp_static)),
      e: dhKeyPair(hex(vector.resp_ephemeral)),
      ...(vector.resp_psks ? { psk: hex(vector.resp_psks[0]!) } : {}),
    });
    let i = 0;
    for (; !initiator.finished; i++) {
      const message = vector.messages[i]!;
      const [writer, reader] = i % 2 === 0
        ? [initiator, responder]
        : [responder, initiator];
      const sent = writer.writeMessage(hex(message.payload));
      assert.equal(toHex(sent), message.ciphertext, `handshake message ${i}`);
      assert.equal(toHex(reader.readMessage(sent)), message.payload);
    }
    assert.ok(responder.finished);
    const a = initiator.split(), b = responder.split();
    assert.equal(toHex(a.handshakeHash), vector.handshake_hash);
    assert.equal(toHex(b.handshakeHash), vector.handshake_hash);
    assert.equal(
      toHex(a.remoteStatic),
      toHex(dhKeyPair(hex(vector.resp_static)).publicKey),
    );
    assert.equal(
      toHex(b.remoteStatic),
      toHex(dhKeyPair(hex(vector.init_static)).publicKey),
    );
    for (; i < vector.messages.length; i++) {
      const message = vector.messages[i]!;
      // Transport messages keep alternating: initiator on even indexes.
      const [send, receive]: [CipherState, CipherState] = i % 2 === 0
        ? [a.send, b.receive]
        : [b.send, a.receive];
      const sent = send.encrypt(new Uint8Array(0), hex(message.payload));
      assert.equal(toHex(sent), message.ciphertext, `transport message ${i}`);
      assert.equal(
        toHex(receive.decrypt(new Uint8Array(0), sent)),
        message.payload,
      );
    }
  });
}

Deno.test("Noise refuses a changed byte and a wrong pre-shared key", () => {
  const psk = new Uint8Array(32).fill(7);
  const run = (responderPsk: Uint8Array) => {
    const i = new HandshakeState({
      pattern: "XXpsk3",
      initiator: true,
      prologue: new Uint8Array(0),
      s: dhKeyPair(new Uint8Array(32).fill(1)),
      psk,
    });
    const r = new HandshakeState({
      pattern: "XXpsk3",
      initiator: false,
      prologue: new Uint8Array(0),
      s: dhKeyPair(new Uint8Array(32).fill(2)),
      psk: responderPsk,
    });
    r.readMessage(i.writeMessage());
    i.readMessage(r.writeMessage());
    r.readMessage(i.writeMessage());
    return [i.split(), r.split()] as const;
  };
  assert.throws(() => run(new Uint8Array(32).fill(8)));
  const [a, b] = run(psk);
  const sent = a.send.encrypt(new Uint8Array(0), new Uint8Array([1, 2, 3]));
  sent[1]! ^= 1;
  assert.throws(() => b.receive.decrypt(new Uint8Array(0), sent));
});

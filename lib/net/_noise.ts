/**
 * The Noise protocol framework's state machines (revision 34), for the two
 * patterns Shoal uses: `Noise_XX_25519_ChaChaPoly_SHA256` (open swarms) and
 * `Noise_XXpsk3_25519_ChaChaPoly_SHA256` (private swarms, the secret as the
 * pre-shared key). X25519, ChaCha20-Poly1305 and SHA-256 come from
 * `node:crypto`; only the framework's bookkeeping is written here, and it is
 * checked against the cacophony test vectors (`tests/noise_test.ts`).
 *
 * @module
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  diffieHellman,
  generateKeyPairSync,
  type KeyObject,
} from "node:crypto";
import { Buffer } from "node:buffer";

/** Bytes of an X25519 key, a SHA-256 hash and a ChaCha20-Poly1305 key. */
export const KEY_BYTES = 32;
/** Bytes of a Poly1305 tag. */
export const TAG_BYTES = 16;
/** Largest Noise message, bytes (the spec's limit). */
export const MAX_MESSAGE = 65535;

const PKCS8_X25519 = Buffer.from("302e020100300506032b656e04220420", "hex");
const SPKI_X25519 = Buffer.from("302a300506032b656e032100", "hex");

/** An X25519 key pair: raw 32-byte keys, and the private key as an object. */
export interface DhKeyPair {
  /** The raw public key. */
  publicKey: Uint8Array;
  /** The raw private key. */
  privateKey: Uint8Array;
  /** The private key for `diffieHellman`. */
  object: KeyObject;
}

/** The key pair of a raw 32-byte X25519 private key. */
export function dhKeyPair(privateKey: Uint8Array): DhKeyPair {
  if (privateKey.length !== KEY_BYTES) {
    throw new RangeError(
      `Cannot use a ${privateKey.length}-byte X25519 private key: it must be ${KEY_BYTES} bytes`,
    );
  }
  const object = createPrivateKey({
    key: Buffer.concat([PKCS8_X25519, privateKey]),
    format: "der",
    type: "pkcs8",
  });
  const spki = createPublicKey(object).export({ format: "der", type: "spki" });
  return {
    publicKey: new Uint8Array(spki.subarray(spki.length - KEY_BYTES)),
    privateKey: new Uint8Array(privateKey),
    object,
  };
}

/** A fresh random X25519 key pair (one scalar multiplication, not two). */
export function generateDhKeyPair(): DhKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync("x25519");
  const der = privateKey.export({ format: "der", type: "pkcs8" });
  const spki = publicKey.export({ format: "der", type: "spki" });
  return {
    publicKey: new Uint8Array(spki.subarray(spki.length - KEY_BYTES)),
    privateKey: new Uint8Array(der.subarray(der.length - KEY_BYTES)),
    object: privateKey,
  };
}

function dh(pair: DhKeyPair, publicKey: Uint8Array): Buffer {
  const remote = createPublicKey({
    key: Buffer.concat([SPKI_X25519, publicKey]),
    format: "der",
    type: "spki",
  });
  return diffieHellman({ privateKey: pair.object, publicKey: remote });
}

function hash(...parts: Uint8Array[]): Buffer {
  const h = createHash("sha256");
  for (const part of parts) h.update(part);
  return h.digest();
}

/**
 * HMAC-SHA256 (RFC 2104) of a key of at most 64 bytes, built from two hashes:
 * `node:crypto`'s `createHmac` costs twice as much in Deno, and a handshake
 * takes a dozen of them.
 */
function hmac(key: Uint8Array, ...parts: Uint8Array[]): Buffer {
  const pad = new Uint8Array(64);
  pad.set(key);
  for (let i = 0; i < 64; i++) pad[i]! ^= 0x36;
  const inner = createHash("sha256").update(pad);
  for (const part of parts) inner.update(part);
  const innerDigest = inner.digest();
  // 0x36 ^ 0x5c: turns the inner pad into the outer one.
  for (let i = 0; i < 64; i++) pad[i]! ^= 0x6a;
  return createHash("sha256").update(pad).update(innerDigest).digest();
}

/** The spec's HKDF: two or three 32-byte outputs chained from `ck`. */
function hkdf(ck: Uint8Array, ikm: Uint8Array, outputs: 2 | 3): Buffer[] {
  const temp = hmac(ck, ikm);
  const out1 = hmac(temp, Uint8Array.of(1));
  const out2 = hmac(temp, out1, Uint8Array.of(2));
  if (outputs === 2) return [out1, out2];
  return [out1, out2, hmac(temp, out2, Uint8Array.of(3))];
}

/** ChaCha20-Poly1305's 96-bit nonce: four zero bytes, then `n` little-endian. */
function nonceOf(n: bigint, into: Uint8Array): Uint8Array {
  new DataView(into.buffer, into.byteOffset, 12).setBigUint64(4, n, true);
  return into;
}

/**
 * A Noise CipherState: a ChaCha20-Poly1305 key and a 64-bit nonce counter.
 * Encrypting writes the ciphertext and tag into a caller's buffer.
 */
export class CipherState {
  #key: KeyObject | undefined;
  #raw: Uint8Array | undefined;
  #n = 0n;
  readonly #nonce = new Uint8Array(12);

  /** Sets the key and resets the nonce (`InitializeKey`). */
  initializeKey(key: Uint8Array | undefined): void {
    this.#key = key ? createSecretKey(key) : undefined;
    this.#raw = key ? new Uint8Array(key) : undefined;
    this.#n = 0n;
  }

  /**
   * Hands out `count` consecutive nonces for records sealed or opened
   * elsewhere (in bulk).
   *
   * @returns The raw key and the first nonce.
   */
  reserve(count: number): { key: Uint8Array; nonce: number } {
    if (!this.#raw) throw new Error("Cannot reserve nonces without a key");
    const nonce = Number(this.#n);
    if (nonce + count > Number.MAX_SAFE_INTEGER) {
      throw new RangeError("Cannot encrypt: the nonce is exhausted");
    }
    this.#n += BigInt(count);
    return { key: this.#raw, nonce };
  }

  /** Whether a key is set. */
  get hasKey(): boolean {
    return this.#key !== undefined;
  }

  /**
   * Encrypts `plaintext` with associated data `ad` into `out` (room for the
   * plaintext and a 16-byte tag; without a key the plaintext is copied).
   *
   * @returns The number of bytes written.
   */
  encryptInto(
    ad: Uint8Array,
    plaintext: Uint8Array,
    out: Uint8Array,
  ): number {
    if (!this.#key) {
      out.set(plaintext);
      return plaintext.length;
    }
    if (this.#n === 0xffffffffffffffffn) {
      throw new RangeError("Cannot encrypt: the nonce is exhausted");
    }
    const cipher = createCipheriv(
      "chacha20-poly1305",
      this.#key,
      nonceOf(this.#n, this.#nonce),
      { authTagLength: TAG_BYTES },
    );
    if (ad.length > 0) cipher.setAAD(ad, { plaintextLength: plaintext.length });
    const body = cipher.update(plaintext);
    cipher.final();
    out.set(body);
    out.set(cipher.getAuthTag(), body.length);
    this.#n++;
    return body.length + TAG_BYTES;
  }

  /** Encrypts into a new buffer (handshake messages). */
  encrypt(ad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    const out = new Uint8Array(
      plaintext.length + (this.hasKey ? TAG_BYTES : 0),
    );
    this.encryptInto(ad, plaintext, out);
    return out;
  }

  /**
   * Decrypts and authenticates `ciphertext` (ending in its tag).
   *
   * @returns The plaintext.
   * @throws {Error} If the tag does not match (the nonce is not used up).
   */
  decrypt(ad: Uint8Array, ciphertext: Uint8Array): Uint8Array {
    if (!this.#key) return ciphertext.slice();
    if (ciphertext.length < TAG_BYTES) {
      throw new RangeError("Cannot decrypt: the message is shorter than a tag");
    }
    const decipher = createDecipheriv(
      "chacha20-poly1305",
      this.#key,
      nonceOf(this.#n, this.#nonce),
      { authTagLength: TAG_BYTES },
    );
    if (ad.length > 0) {
      decipher.setAAD(ad, { plaintextLength: ciphertext.length - TAG_BYTES });
    }
    const end = ciphertext.length - TAG_BYTES;
    decipher.setAuthTag(ciphertext.subarray(end));
    const body = decipher.update(ciphertext.subarray(0, end));
    decipher.final();
    this.#n++;
    return body;
  }
}

/** The two handshake patterns Shoal speaks. */
export type NoisePattern = "XX" | "XXpsk3";

type Token = "e" | "s" | "ee" | "es" | "se" | "ss" | "psk";

const PATTERNS: Record<NoisePattern, Token[][]> = {
  XX: [["e"], ["e", "ee", "s", "es"], ["s", "se"]],
  XXpsk3: [["e"], ["e", "ee", "s", "es"], ["s", "se", "psk"]],
};

/** Options of a {@linkcode HandshakeState}. */
export interface HandshakeOptions {
  /** The pattern. */
  pattern: NoisePattern;
  /** Whether this side sends the first message. */
  initiator: boolean;
  /** Bytes both sides must agree on (mixed into the hash). */
  prologue: Uint8Array;
  /** This side's long-lived key pair. */
  s: DhKeyPair;
  /** A fixed ephemeral key pair (test vectors only). */
  e?: DhKeyPair;
  /** The 32-byte pre-shared key (`XXpsk3`). */
  psk?: Uint8Array;
}

/** The result of a finished handshake. */
export interface HandshakeResult {
  /** Encrypts what this side sends. */
  send: CipherState;
  /** Decrypts what this side receives. */
  receive: CipherState;
  /** The remote side's static public key, as proved. */
  remoteStatic: Uint8Array;
  /** The handshake hash (channel binding). */
  handshakeHash: Uint8Array;
}

/**
 * A Noise HandshakeState with its SymmetricState, for the XX patterns:
 * `writeMessage` and `readMessage` in turn until {@linkcode
 * HandshakeState.finished}, then {@linkcode HandshakeState.split}.
 */
export class HandshakeState {
  readonly #cipher = new CipherState();
  #ck: Uint8Array;
  #h: Uint8Array;
  readonly #initiator: boolean;
  readonly #s: DhKeyPair;
  #e: DhKeyPair | undefined;
  #rs: Uint8Array | undefined;
  #re: Uint8Array | undefined;
  readonly #psk: Uint8Array | undefined;
  readonly #messages: Token[][];
  #index = 0;

  constructor(options: HandshakeOptions) {
    const name = new TextEncoder().encode(
      `Noise_${options.pattern}_25519_ChaChaPoly_SHA256`,
    );
    if (options.pattern === "XXpsk3" && options.psk?.length !== KEY_BYTES) {
      throw new RangeError(
        `Cannot start an XXpsk3 handshake: the pre-shared key must be ${KEY_BYTES} bytes`,
      );
    }
    // The name is longer than 32 bytes: h = HASH(name).
    this.#h = name.length <= KEY_BYTES
      ? Uint8Array.from({ length: KEY_BYTES }, (_, i) => name[i] ?? 0)
      : hash(name);
    this.#ck = this.#h;
    this.#initiator = options.initiator;
    this.#s = options.s;
    this.#e = options.e;
    this.#psk = options.pattern === "XXpsk3" ? options.psk : undefined;
    this.#messages = PATTERNS[options.pattern];
    this.#mixHash(options.prologue);
  }

  /** Whether every handshake message was written or read. */
  get finished(): boolean {
    return this.#index >= this.#messages.length;
  }

  /** Whether the next message is this side's to write. */
  get writing(): boolean {
    return (this.#index % 2 === 0) === this.#initiator;
  }

  #mixHash(data: Uint8Array): void {
    this.#h = hash(this.#h, data);
  }

  #mixKey(ikm: Uint8Array): void {
    const [ck, k] = hkdf(this.#ck, ikm, 2);
    this.#ck = ck!;
    this.#cipher.initializeKey(k);
  }

  #mixKeyAndHash(ikm: Uint8Array): void {
    const [ck, h, k] = hkdf(this.#ck, ikm, 3);
    this.#ck = ck!;
    this.#mixHash(h!);
    this.#cipher.initializeKey(k);
  }

  #encryptAndHash(plaintext: Uint8Array): Uint8Array {
    const ciphertext = this.#cipher.encrypt(this.#h, plaintext);
    this.#mixHash(ciphertext);
    return ciphertext;
  }

  #decryptAndHash(ciphertext: Uint8Array): Uint8Array {
    const plaintext = this.#cipher.decrypt(this.#h, ciphertext);
    this.#mixHash(ciphertext);
    return plaintext;
  }

  /** The DH a token calls for, by role. */
  #dhToken(token: "ee" | "es" | "se" | "ss"): Uint8Array {
    const e = this.#e!, s = this.#s, re = this.#re!, rs = this.#rs!;
    switch (token) {
      case "ee":
        return dh(e, re);
      case "es":
        return this.#initiator ? dh(e, rs) : dh(s, re);
      case "se":
        return this.#initiator ? dh(s, re) : dh(e, rs);
      case "ss":
        return dh(s, rs);
    }
  }

  /**
   * Writes the next handshake message.
   *
   * @param payload Bytes carried in it.
   * @returns The message.
   */
  writeMessage(payload: Uint8Array = new Uint8Array(0)): Uint8Array {
    if (this.finished || !this.writing) {
      throw new Error("Cannot write a handshake message out of turn");
    }
    const parts: Uint8Array[] = [];
    for (const token of this.#messages[this.#index]!) {
      if (token === "e") {
        this.#e ??= generateDhKeyPair();
        parts.push(this.#e.publicKey);
        this.#mixHash(this.#e.publicKey);
        if (this.#psk) this.#mixKey(this.#e.publicKey);
      } else if (token === "s") {
        parts.push(this.#encryptAndHash(this.#s.publicKey));
      } else if (token === "psk") {
        this.#mixKeyAndHash(this.#psk!);
      } else {
        this.#mixKey(this.#dhToken(token));
      }
    }
    parts.push(this.#encryptAndHash(payload));
    this.#index++;
    return Buffer.concat(parts);
  }

  /**
   * Reads the next handshake message.
   *
   * @param message The message received.
   * @returns Its payload.
   * @throws {Error} If it is malformed or fails authentication.
   */
  readMessage(message: Uint8Array): Uint8Array {
    if (this.finished || this.writing) {
      throw new Error("Cannot read a handshake message out of turn");
    }
    let offset = 0;
    const take = (n: number): Uint8Array => {
      if (offset + n > message.length) {
        throw new RangeError("Cannot read handshake message: it is too short");
      }
      const part = message.subarray(offset, offset + n);
      offset += n;
      return part;
    };
    for (const token of this.#messages[this.#index]!) {
      if (token === "e") {
        this.#re = take(KEY_BYTES).slice();
        this.#mixHash(this.#re);
        if (this.#psk) this.#mixKey(this.#re);
      } else if (token === "s") {
        const size = KEY_BYTES + (this.#cipher.hasKey ? TAG_BYTES : 0);
        this.#rs = this.#decryptAndHash(take(size)).slice();
      } else if (token === "psk") {
        this.#mixKeyAndHash(this.#psk!);
      } else {
        this.#mixKey(this.#dhToken(token));
      }
    }
    const payload = this.#decryptAndHash(message.subarray(offset));
    this.#index++;
    return payload;
  }

  /** The remote static key, once its message was read. */
  get remoteStatic(): Uint8Array | undefined {
    return this.#rs;
  }

  /**
   * The two transport CipherStates (`Split`), once the handshake finished.
   *
   * @returns The sending and receiving states and the remote static key.
   */
  split(): HandshakeResult {
    if (!this.finished || !this.#rs) {
      throw new Error("Cannot split an unfinished handshake");
    }
    const [k1, k2] = hkdf(this.#ck, new Uint8Array(0), 2);
    const first = new CipherState(), second = new CipherState();
    first.initializeKey(k1);
    second.initializeKey(k2);
    return {
      send: this.#initiator ? first : second,
      receive: this.#initiator ? second : first,
      remoteStatic: this.#rs,
      handshakeHash: this.#h,
    };
  }
}

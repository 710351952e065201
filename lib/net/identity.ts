/**
 * Peer identities: a long-lived X25519 key pair each peer proves in every
 * secure handshake, and the short peer id derived from its public key.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { Buffer } from "node:buffer";
import { dhKeyPair, generateDhKeyPair, KEY_BYTES } from "./_noise.ts";

/**
 * A long-lived identity: an X25519 key pair. Its public key is what peers
 * prove in each handshake; {@linkcode peerIdOf} names it.
 */
export interface Identity {
  /** Raw 32-byte public key. */
  readonly publicKey: Uint8Array;
  /** Raw 32-byte private key (keep it secret). */
  readonly privateKey: Uint8Array;
}

/**
 * Makes a new random identity.
 *
 * @returns The key pair.
 *
 * @example Naming a new identity
 * ```ts
 * import { generateIdentity, peerIdOf } from "@shoal/shoal/net";
 * const id = peerIdOf(generateIdentity().publicKey);
 * if (id.length !== 32) throw new Error("unexpected id");
 * ```
 */
export function generateIdentity(): Identity {
  const pair = generateDhKeyPair();
  return { publicKey: pair.publicKey, privateKey: pair.privateKey };
}

/**
 * The identity of a stored private key.
 *
 * @param privateKey Raw 32-byte X25519 private key.
 * @returns The key pair.
 * @throws {RangeError} If the key is not 32 bytes.
 *
 * @example Restoring an identity
 * ```ts
 * import { generateIdentity, identityFromPrivateKey } from "@shoal/shoal/net";
 * const saved = generateIdentity();
 * const again = identityFromPrivateKey(saved.privateKey);
 * if (again.publicKey.join() !== saved.publicKey.join()) throw new Error();
 * ```
 */
export function identityFromPrivateKey(privateKey: Uint8Array): Identity {
  const pair = dhKeyPair(privateKey);
  return { publicKey: pair.publicKey, privateKey: pair.privateKey };
}

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

/**
 * A peer's id: the first 160 bits of SHA-256 of its public key, in lowercase
 * base32 (32 characters). Short enough to read out, long enough that nobody
 * can make a key with someone else's id.
 *
 * @param publicKey Raw 32-byte public key.
 * @returns The id.
 *
 * @example The id of a key
 * ```ts
 * import { peerIdOf } from "@shoal/shoal/net";
 * const id = peerIdOf(new Uint8Array(32));
 * if (!/^[a-z2-7]{32}$/.test(id)) throw new Error(id);
 * ```
 */
export function peerIdOf(publicKey: Uint8Array): string {
  const digest = createHash("sha256").update(publicKey).digest()
    .subarray(0, 20);
  let out = "";
  let bits = 0, value = 0;
  for (const byte of digest) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out;
}

/**
 * Lowercase hex of a key, as the tracker lists it (`PeerInfo.key`).
 *
 * @param key Raw key bytes.
 * @returns 64 hex digits for a 32-byte key.
 *
 * @example A key in hex and back
 * ```ts
 * import { generateIdentity, keyFromHex, keyToHex } from "@shoal/shoal/net";
 * const { publicKey } = generateIdentity();
 * if (keyFromHex(keyToHex(publicKey)).join() !== publicKey.join()) throw new Error();
 * ```
 */
export function keyToHex(key: Uint8Array): string {
  return Buffer.from(key).toString("hex");
}

let processIdentity: Identity | undefined;

/**
 * The identity used when none is given: made once per process, never
 * stored (a one-shot client has nothing to be recognised by).
 *
 * @returns The process's throwaway identity.
 *
 * @example Dialling without an identity of one's own
 * ```ts
 * import { ephemeralIdentity } from "@shoal/shoal/net";
 * if (ephemeralIdentity() !== ephemeralIdentity()) throw new Error();
 * ```
 */
export function ephemeralIdentity(): Identity {
  processIdentity ??= generateIdentity();
  return processIdentity;
}

/**
 * Whether `key` is a 32-byte public key in lowercase hex.
 *
 * @param key Any value (e.g. a field of a reply).
 * @returns `true` for 64 lowercase hex digits.
 *
 * @example Checking a listed key
 * ```ts
 * import { isKeyHex } from "@shoal/shoal/net";
 * if (isKeyHex("zz") || !isKeyHex("ab".repeat(32))) throw new Error();
 * ```
 */
export function isKeyHex(key: unknown): key is string {
  return typeof key === "string" && /^[0-9a-f]{64}$/.test(key);
}

/**
 * The raw bytes of a hex key.
 *
 * @param key 64 lowercase hex digits.
 * @returns 32 bytes.
 * @throws {RangeError} If `key` fails {@linkcode isKeyHex}.
 *
 * @example Reading a listed key
 * ```ts
 * import { keyFromHex } from "@shoal/shoal/net";
 * if (keyFromHex("00".repeat(32)).length !== 32) throw new Error();
 * ```
 */
export function keyFromHex(key: string): Uint8Array {
  if (!isKeyHex(key)) {
    throw new RangeError(
      `Cannot use key "${String(key).slice(0, 80)}": it must be ${
        KEY_BYTES * 2
      } lowercase hex digits`,
    );
  }
  return new Uint8Array(Buffer.from(key, "hex"));
}

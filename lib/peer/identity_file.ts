/**
 * A peer's long-lived identity on disk: `identity.key` in its state
 * directory, created on first start with mode 0600 and read back after.
 *
 * @module
 */
import { join } from "node:path";
import {
  generateIdentity,
  type Identity,
  identityFromPrivateKey,
} from "../net/identity.ts";

/** The identity file's name inside the state directory. */
export const IDENTITY_FILE = "identity.key";
const HEADER = "shoal-identity-v1 x25519 ";

/**
 * Reads the peer's identity from `<stateDir>/identity.key`, or makes a new
 * one and writes it there (mode 0600) if there is none. Delete the file to
 * rotate the key: the peer gets a new id at its next start.
 *
 * @param stateDir The peer's state directory (created if missing).
 * @returns The identity.
 * @throws {Error} If the file is malformed or readable by other users.
 *
 * @example Loading (and creating) an identity
 * ```ts
 * import { loadIdentity } from "./identity_file.ts";
 * const dir = await Deno.makeTempDir();
 * const first = await loadIdentity(dir);
 * const again = await loadIdentity(dir);
 * if (first.publicKey.join() !== again.publicKey.join()) throw new Error();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function loadIdentity(stateDir: string): Promise<Identity> {
  const path = join(stateDir, IDENTITY_FILE);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    return await create(stateDir, path);
  }
  if (Deno.build.os !== "windows") {
    const mode = (await Deno.stat(path)).mode ?? 0;
    if ((mode & 0o077) !== 0) {
      throw new Error(
        `Cannot use identity file ${path}: other users may read it (mode ${
          (mode & 0o777).toString(8)
        }); run chmod 600 on it`,
      );
    }
  }
  const match = /^shoal-identity-v1 x25519 ([0-9a-f]{64})\s*$/.exec(text);
  if (!match) {
    throw new Error(
      `Cannot read identity file ${path}: it is not a Shoal identity (delete it to make a new one)`,
    );
  }
  const bytes = new Uint8Array(32);
  for (let i = 0; i < 32; i++) {
    bytes[i] = parseInt(match[1]!.slice(2 * i, 2 * i + 2), 16);
  }
  return identityFromPrivateKey(bytes);
}

async function create(stateDir: string, path: string): Promise<Identity> {
  await Deno.mkdir(stateDir, { recursive: true });
  const identity = generateIdentity();
  const hex = Array.from(
    identity.privateKey,
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  // createNew: two peers starting at once do not overwrite each other.
  try {
    await Deno.writeTextFile(path, `${HEADER}${hex}\n`, {
      mode: 0o600,
      createNew: true,
    });
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) {
      return await loadIdentity(stateDir);
    }
    throw error;
  }
  if (Deno.build.os !== "windows") await Deno.chmod(path, 0o600);
  return identity;
}

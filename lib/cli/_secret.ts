/**
 * Private: the swarm secret of a command line, from `--secret` or the
 * environment; when Deno may not read the environment it stops, never runs open.
 *
 * @module
 */
import { SECRET_ENV, validateSecret } from "../protocol/auth.ts";
import { UsageError } from "./_cli.ts";

/**
 * The secret a command runs with: `--secret`, else `SHOAL_SECRET`, and
 * `undefined` (an open swarm) only when the environment was read and has
 * none, or `--no-secret` said so. Without permission to read the variable,
 * it asks on a terminal and otherwise refuses: running an open swarm because
 * a secret could not be read would weaken security without a word.
 *
 * @param flag The `--secret` value; `false` for `--no-secret`.
 * @param program Which task to name in the message (`tracker` or `peer`).
 * @returns The validated secret, or `undefined` for an open swarm.
 * @throws {UsageError} For an invalid secret, or one that cannot be read.
 */
export async function commandSecret(
  flag: string | boolean | undefined,
  program: string,
): Promise<string | undefined> {
  if (flag === false) return undefined;
  if (typeof flag === "string") return checked(flag, "--secret");
  const descriptor = { name: "env", variable: SECRET_ENV } as const;
  let { state } = await Deno.permissions.query(descriptor);
  if (state === "prompt" && Deno.stdin.isTerminal()) {
    ({ state } = await Deno.permissions.request(descriptor));
  }
  if (state !== "granted") {
    throw new UsageError(
      `Cannot read ${SECRET_ENV} without --allow-env=${SECRET_ENV}: add that flag (as \`deno task ${program}\` does) for a private swarm, or pass --no-secret to run an open one`,
    );
  }
  const value = Deno.env.get(SECRET_ENV);
  return value === undefined ? undefined : checked(value, SECRET_ENV);
}

function checked(secret: string, from: string): string {
  try {
    return validateSecret(secret);
  } catch (error) {
    throw new UsageError(`Invalid ${from}: ${(error as Error).message}`);
  }
}

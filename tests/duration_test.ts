/**
 * The one duration parser of the command line and the dashboard: units,
 * range, and a bare number refused with a message saying what to write.
 *
 * @module
 */
import assert from "node:assert/strict";
import { parseDuration } from "../lib/content/_duration.ts";

Deno.test("Durations take ms, s, m and h, with decimals", () => {
  assert.equal(parseDuration("500ms"), 500);
  assert.equal(parseDuration("90s"), 90_000);
  assert.equal(parseDuration("1.5s"), 1500);
  assert.equal(parseDuration("2m"), 120_000);
  assert.equal(parseDuration("1h"), 3_600_000);
  assert.equal(parseDuration("24h"), 86_400_000);
  assert.equal(parseDuration(" 10ms "), 10);
});

Deno.test("A bare number, an unknown unit or a value out of range is refused", () => {
  assert.throws(
    () => parseDuration("30", "--interval"),
    { name: "RangeError", message: /^Invalid --interval "30": give a unit/ },
  );
  for (const text of ["", "soon", "1d", "-1s", "1e3ms", "s"]) {
    assert.throws(() => parseDuration(text), /use a number and a unit/, text);
  }
  for (const text of ["9ms", "25h", "0s"]) {
    assert.throws(() => parseDuration(text), /use 10ms to 24h/, text);
  }
});

import assert from 'node:assert/strict';

/**
 * Polls `fn` every 100 ms until it holds, and returns what it returned; fails after `ms` naming
 * `what` (with the last error `fn` threw, if any). `fn` holds when it returns something other than
 * undefined or false, so it may be a lookup (`() => find(...)`) or a predicate (`() => x === y`).
 */
export async function eventually<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, ms = 30_000): Promise<Exclude<T, false | undefined>> {
  const end = Date.now() + ms;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v as Exclude<T, false | undefined>;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
}

/**
 * Canonical JSON (sorted keys, no whitespace) and the digest of a proposed value. Two sites that
 * hold the same value must compute the same digest, whatever order its keys were built in.
 */
import { sha256Hex } from './sha256';

export function canonicalJson(value: unknown): string {
  return write(value, '$');
}

/** sha256 (hex) of the canonical JSON of `value`: what PBFT messages carry instead of the value. */
export function digestOf(value: unknown): string {
  return sha256Hex(canonicalJson(value));
}

function write(v: unknown, path: string): string {
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error(`${path} is ${v}; a proposed value may hold only finite numbers`);
    return JSON.stringify(v);
  }
  if (Array.isArray(v)) return `[${v.map((x, i) => write(x, `${path}[${i}]`)).join(',')}]`;
  if (typeof v === 'object') {
    const keys = Object.keys(v as object)
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${write((v as Record<string, unknown>)[k], `${path}.${k}`)}`).join(',')}}`;
  }
  throw new Error(`${path} is a ${typeof v}; a proposed value may hold only JSON data (null, booleans, numbers, strings, arrays, objects)`);
}

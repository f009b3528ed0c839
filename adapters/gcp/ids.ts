/**
 * Deterministic names and request ids for Compute Engine. `requestId` must be a UUID, and the
 * server deduplicates by it for a while; the instance name is deterministic as well, so even after
 * that window a retried insert meets the first instance (409) instead of creating a second.
 */
import { createHash } from 'node:crypto';

export const IDEMPOTENCY_LABEL = 'fedflow-idempotency-key';
export const SITE_LABEL = 'fedflow-site';

/** Name-based UUID (RFC 4122 version 5 layout over SHA-1) in a fedflow namespace. */
export function requestIdFor(key: string, purpose: string): string {
  const h = createHash('sha1').update(`fedflow:${purpose}:${key}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

export function keyHash(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 40);
}

/** Lowercases and replaces what a GCE name or label value may not contain. */
export function gceSafe(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '');
}

/** `[a-z]([-a-z0-9]{0,61}[a-z0-9])?`: a readable prefix from the spec name plus a key hash. */
export function instanceNameFor(specName: string, key: string): string {
  let prefix = gceSafe(specName).slice(0, 40).replace(/-+$/, '');
  if (!/^[a-z]/.test(prefix)) prefix = `ff-${prefix}`.replace(/-+$/, '');
  return `${prefix}-${keyHash(key).slice(0, 12)}`;
}

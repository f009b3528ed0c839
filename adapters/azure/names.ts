/**
 * Deterministic Azure resource names. ARM's PUT is idempotent by resource name, so the name *is*
 * the idempotency token: a readable prefix from the spec plus a hash of the workflow's key.
 */
import { createHash } from 'node:crypto';

export const IDEMPOTENCY_TAG = 'fedflow-idempotency-key';
export const SITE_TAG = 'fedflow-site';

export function keyHash(key: string): string {
  if (!key) throw new Error('idempotency key must be a non-empty string');
  return createHash('sha256').update(key).digest('hex').slice(0, 40);
}

/** Linux VM names: 1-64 letters, digits and dashes, not starting or ending with a dash. */
export function vmNameFor(specName: string, key: string): string {
  const prefix = specName.replace(/[^A-Za-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40).replace(/-+$/, '') || 'vm';
  return `${prefix}-${keyHash(key).slice(0, 12)}`;
}

export function osDiskNameFor(vmName: string): string {
  return `${vmName}-osdisk`;
}

/** Snapshot names allow up to 80 characters. */
export function snapshotNameFor(diskName: string, key: string): string {
  return `${diskName.slice(0, 60)}-snap-${keyHash(key).slice(0, 12)}`;
}

/** `publisher:offer:sku:version` URN, or a full image / gallery image resource id. */
export function imageReferenceFor(image: string): { id: string } | { publisher: string; offer: string; sku: string; version: string } {
  if (image.startsWith('/')) return { id: image };
  const parts = image.split(':');
  if (parts.length !== 4 || parts.some((p) => !p)) {
    throw new Error(`azure image '${image}' is neither a URN 'publisher:offer:sku:version' (e.g. Canonical:ubuntu-24_04-lts:server:latest) nor a resource id starting with '/'`);
  }
  const [publisher, offer, sku, version] = parts as [string, string, string, string];
  return { publisher, offer, sku, version };
}

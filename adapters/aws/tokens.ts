/**
 * Idempotency tokens for EC2. The workflow's key can be long and contain any characters, while
 * EC2's ClientToken allows at most 64 ASCII characters and tag values should stay short, so the
 * key is hashed into a stable token used for both.
 */
import { createHash } from 'node:crypto';

export const IDEMPOTENCY_TAG = 'fedflow-idempotency-key';
export const SITE_TAG = 'fedflow-site';

export function ec2ClientToken(idempotencyKey: string): string {
  if (!idempotencyKey) throw new Error('idempotency key must be a non-empty string');
  return `ff-${createHash('sha256').update(idempotencyKey).digest('hex').slice(0, 48)}`;
}

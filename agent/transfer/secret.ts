/**
 * The federation's transfer secret: the HMAC key that signs per-transfer tokens. Every agent of a
 * federation holds the same one; it never enters a workflow payload. From FEDFLOW_TRANSFER_SECRET
 * (hex or base64, >= 32 bytes), else a key file under the fedflow home, made on first use (0600).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdirPrivate } from '../durable-files';
import { join } from 'node:path';
import { MIN_SECRET_BYTES } from './token';

export function loadTransferSecret(home: string, env: NodeJS.ProcessEnv = process.env): Buffer {
  const fromEnv = env.FEDFLOW_TRANSFER_SECRET;
  if (fromEnv) {
    const buf = /^[0-9a-f]+$/i.test(fromEnv) ? Buffer.from(fromEnv, 'hex') : Buffer.from(fromEnv, 'base64');
    if (buf.length < MIN_SECRET_BYTES) throw new Error(`FEDFLOW_TRANSFER_SECRET decodes to ${buf.length} bytes; it must be at least ${MIN_SECRET_BYTES} (e.g. \`openssl rand -hex 32\`)`);
    return buf;
  }
  const dir = join(home, 'secrets');
  const file = join(dir, 'transfer.key');
  if (!existsSync(file)) {
    mkdirPrivate(dir);
    try {
      writeFileSync(file, randomBytes(32).toString('hex'), { mode: 0o600, flag: 'wx' });
    } catch (err) {
      // Another agent process made it first: use theirs.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  return Buffer.from(readFileSync(file, 'utf8').trim(), 'hex');
}

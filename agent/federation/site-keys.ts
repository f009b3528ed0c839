/**
 * A site's Ed25519 signing key, the injected crypto of the consensus core (core/consensus/signing.ts).
 * The private key lives in the site's directory (mode 0600) and never leaves this module: the
 * Signer holds it in a closure and only returns signatures. The public key goes into the
 * federation config as base64 SPKI DER.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fsyncPath, mkdirPrivate } from '../durable-files';
import { verifyCertificate as verifyWithVerifier, type CertificateCheck } from '../../core/consensus/bft-certificate';
import type { CommitCertificate } from '../../core/consensus/bft-types';
import type { Signer, Verifier } from '../../core/consensus/signing';

export const SITE_KEY_FILE = 'site-key.pem';

/** Creates the site's key pair if it has none. Returns the public key (base64 SPKI DER) either way. */
export function ensureSiteKey(siteDir: string): string {
  const path = join(siteDir, SITE_KEY_FILE);
  if (!existsSync(path)) {
    mkdirPrivate(siteDir);
    const { privateKey } = generateKeyPairSync('ed25519');
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    // 'wx' fails if another process created it meanwhile, rather than overwrite a live key.
    const fd = openSync(path, 'wx', 0o600);
    try {
      writeSync(fd, pem);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    fsyncPath(siteDir);
  }
  return publicKeyBase64(loadPrivateKey(path));
}

/** The site's Signer. The key is read once and kept private to the returned object. */
export function loadSiteSigner(siteDir: string, siteId: string): Signer & { readonly publicKey: string } {
  const key = loadPrivateKey(join(siteDir, SITE_KEY_FILE));
  const publicKey = publicKeyBase64(key);
  return {
    siteId,
    publicKey,
    sign: (bytes: Uint8Array) => sign(null, bytes, key).toString('base64'),
  };
}

/** A Verifier over the federation's public keys (site id → base64 SPKI DER). */
export function ed25519Verifier(publicKeys: Readonly<Record<string, string>>): Verifier {
  const keys = new Map<string, KeyObject>();
  for (const [site, b64] of Object.entries(publicKeys)) {
    try {
      keys.set(site, createPublicKey({ key: Buffer.from(b64, 'base64'), format: 'der', type: 'spki' }));
    } catch (err) {
      throw new Error(`public key of site ${site} is not a base64 SPKI DER Ed25519 key: ${(err as Error).message}`);
    }
  }
  return {
    verify(siteId, bytes, sig) {
      const key = keys.get(siteId);
      if (!key) return false;
      const raw = Buffer.from(sig, 'base64');
      if (raw.length !== 64) return false; // Ed25519 signatures are 64 bytes
      return verify(null, bytes, key, raw);
    },
  };
}

/** Checks a commit certificate against the federation's public keys; the members are the keys' sites. */
export function verifyCertificate(cert: CommitCertificate, publicKeys: Readonly<Record<string, string>>): CertificateCheck {
  return verifyWithVerifier(cert, Object.keys(publicKeys), ed25519Verifier(publicKeys));
}

function loadPrivateKey(path: string): KeyObject {
  if (!existsSync(path)) throw new Error(`no site key at ${path}; create it with ensureSiteKey(siteDir)`);
  const mode = statSync(path).mode & 0o777;
  if (mode & 0o077) {
    throw new Error(`site key ${path} has mode ${mode.toString(8).padStart(4, '0')}; it must be 0600 (run: chmod 600 ${path})`);
  }
  const key = createPrivateKey(readFileSync(path));
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`site key ${path} is a ${key.asymmetricKeyType} key; expected ed25519`);
  return key;
}

function publicKeyBase64(privateKey: KeyObject): string {
  return (createPublicKey(privateKey).export({ type: 'spki', format: 'der' }) as Buffer).toString('base64');
}


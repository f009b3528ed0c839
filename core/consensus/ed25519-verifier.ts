/**
 * Ed25519 verification in pure JavaScript (@noble/curves), so that workflow code, which cannot
 * use node:crypto, can check votes itself. The BFT router uses it to accept a commit certificate
 * as soon as it holds 2f+1 commit votes that verify, instead of waiting one more hop for sites to
 * verify them (docs/consensus.md). Sites keep verifying with node:crypto (agent/federation/site-keys.ts);
 * both follow RFC 8032 strictly (`zip215: false`), so they agree on every signature.
 */
import { ed25519 } from '@noble/curves/ed25519';
import { base64 } from '@scure/base';
import type { Verifier } from './signing';
import type { SiteId } from './types';

/** DER prefix of an Ed25519 SubjectPublicKeyInfo: SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING (32 bytes) }. */
const SPKI_ED25519_PREFIX = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/** The raw 32-byte key of a base64 SPKI DER Ed25519 public key (the format of the federation config). */
export function rawEd25519PublicKey(spkiBase64: string): Uint8Array {
  const der = base64.decode(spkiBase64);
  const ok = der.length === SPKI_ED25519_PREFIX.length + 32 && SPKI_ED25519_PREFIX.every((b, i) => der[i] === b);
  if (!ok) throw new Error(`not a base64 SPKI DER Ed25519 public key (${der.length} bytes; expected 44 starting 302a300506032b6570032100)`);
  return der.subarray(SPKI_ED25519_PREFIX.length);
}

/**
 * A Verifier over site id → base64 SPKI DER public keys. A key that does not parse makes its
 * site's votes fail verification (it never throws), like an unknown site.
 */
export function pureEd25519Verifier(publicKeys: Readonly<Record<SiteId, string>>): Verifier {
  const keys = new Map<SiteId, Uint8Array | null>();
  const keyOf = (site: SiteId): Uint8Array | null => {
    if (!keys.has(site)) {
      const b64 = publicKeys[site];
      let raw: Uint8Array | null = null;
      try {
        raw = b64 ? rawEd25519PublicKey(b64) : null;
      } catch {
        raw = null;
      }
      keys.set(site, raw);
    }
    return keys.get(site) ?? null;
  };
  return {
    verify(siteId, bytes, sig) {
      const key = keyOf(siteId);
      if (!key) return false;
      try {
        const raw = base64.decode(sig);
        if (raw.length !== 64) return false;
        return ed25519.verify(raw, bytes, key, { zip215: false });
      } catch {
        return false;
      }
    },
  };
}

/**
 * Crypto is injected: the core says what is signed (canonical bytes) and who must have signed
 * it; the agent supplies the algorithm (Ed25519 in agent/federation/site-keys.ts). This keeps node:crypto
 * out of workflow code and lets tests use real keys or a deterministic fake.
 */
import type { SiteId } from './types';

/** An opaque, JSON-safe signature (Ed25519 signatures are base64 text in agent/federation/site-keys.ts). */
export type Signature = string;

/** Signs as one site. Never throws for well-formed bytes; holds the private key out of reach. */
export interface Signer {
  readonly siteId: SiteId;
  sign(bytes: Uint8Array): Signature;
}

/** Checks a signature against the public key of `siteId`. Returns false (never throws) for an unknown site or a bad signature. */
export interface Verifier {
  verify(siteId: SiteId, bytes: Uint8Array, sig: Signature): boolean;
}

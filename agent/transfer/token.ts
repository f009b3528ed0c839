/**
 * Per-transfer access tokens: the target agent presents one to the source agent's chunk endpoint,
 * and the source serves chunks of exactly one manifest, to exactly one target, until the expiry.
 *
 * Format: `ft1.<base64url(JSON claims)>.<base64url(HMAC-SHA256(secret, "ft1." + claims part))>`.
 * The HMAC covers the version prefix, so a token cannot be replayed under another format.
 *
 * Who mints: a workflow cannot use node:crypto and must never hold the secret (it would land in
 * history), so the workflow asks an activity at the source site to mint the token
 * (`issueToken(secretFromWorkerEnv, claims)`), and passes the token, not the secret, on. The
 * token itself is a bearer credential: keep it out of logs and search attributes; its short expiry
 * and single-manifest scope limit what a leaked one can do.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { SHA256_HEX } from '../../core/manifest';

const PREFIX = 'ft1';
/** Shorter secrets make HMAC-SHA256 guessable in principle; 32 bytes is the hash's own strength. */
export const MIN_SECRET_BYTES = 32;
/** Transfers heartbeat and re-mint, so tokens never need to live long. */
export const MAX_TTL_SECONDS = 24 * 3600;

export interface TransferClaims {
  /** Root hash of the one manifest whose chunks the token unlocks. */
  manifest: string;
  /** Site serving the chunks. */
  source: string;
  /** Site pulling them. */
  target: string;
  /** Issued at, unix seconds. */
  iat: number;
  /** Expires at, unix seconds (exclusive). */
  exp: number;
}

/** Short keys keep tokens small enough for an HTTP header and a heartbeat detail. */
interface WireClaims {
  m: string;
  s: string;
  t: string;
  iat: number;
  exp: number;
}

export type RefusalReason = 'malformed' | 'bad-signature' | 'expired' | 'not-yet-valid' | 'wrong-manifest' | 'wrong-site';

export type VerifyResult = { ok: true; claims: TransferClaims } | { ok: false; reason: RefusalReason; message: string };

export class TransferTokenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TransferTokenError';
  }
}

function checkSecret(secret: Uint8Array | string): void {
  const n = typeof secret === 'string' ? Buffer.byteLength(secret) : secret.length;
  if (n < MIN_SECRET_BYTES) throw new TransferTokenError(`transfer token secret is ${n} bytes; it must be at least ${MIN_SECRET_BYTES} (e.g. 32 random bytes)`);
}

function sign(secret: Uint8Array | string, body: string): Buffer {
  return createHmac('sha256', secret).update(`${PREFIX}.${body}`).digest();
}

/** Mints a token for `claims`. Throws TransferTokenError naming any bad claim. */
export function issueToken(secret: Uint8Array | string, claims: TransferClaims): string {
  checkSecret(secret);
  const problems: string[] = [];
  if (!SHA256_HEX.test(claims.manifest)) problems.push(`manifest is '${claims.manifest}'; expected a root hash (64 lower-case hex digits)`);
  if (!claims.source || !claims.target) problems.push(`source and target sites must be non-empty (got '${claims.source}', '${claims.target}')`);
  if (claims.source === claims.target) problems.push(`source and target are both '${claims.source}'; a transfer is between two sites`);
  if (!Number.isInteger(claims.iat) || !Number.isInteger(claims.exp)) problems.push(`iat and exp must be integer unix seconds (got ${claims.iat}, ${claims.exp})`);
  else if (claims.exp <= claims.iat || claims.exp - claims.iat > MAX_TTL_SECONDS) {
    problems.push(`exp - iat is ${claims.exp - claims.iat} s; expected 1..${MAX_TTL_SECONDS}`);
  }
  if (problems.length > 0) throw new TransferTokenError(`cannot issue transfer token: ${problems.join('; ')}`);
  const wire: WireClaims = { m: claims.manifest, s: claims.source, t: claims.target, iat: claims.iat, exp: claims.exp };
  const body = Buffer.from(JSON.stringify(wire)).toString('base64url');
  return `${PREFIX}.${body}.${sign(secret, body).toString('base64url')}`;
}

/**
 * The endpoint's own routes (/probe, /stats) take the same tokens, with a scope where a manifest
 * would be: the sha256 of `fedflow-scope:<route>`, which no volume's manifest root will equal.
 * One token format and one check then guard every route but /health.
 */
export const ENDPOINT_SCOPES = {
  probe: createHash('sha256').update('fedflow-scope:probe').digest('hex'),
  stats: createHash('sha256').update('fedflow-scope:stats').digest('hex'),
} as const;
export type EndpointScope = keyof typeof ENDPOINT_SCOPES;

/** Route tokens live minutes: a probe series or a stats read is over in seconds. */
export const ENDPOINT_TOKEN_TTL_SECONDS = 300;

/** A token for `scope` at `source`'s endpoint, for the agent (or operator) named `requester`. */
export function endpointToken(secret: Uint8Array | string, scope: EndpointScope, source: string, requester: string, nowMs = Date.now()): string {
  return issueToken(secret, claimsFor(ENDPOINT_SCOPES[scope], source, requester, nowMs, ENDPOINT_TOKEN_TTL_SECONDS));
}

/** Convenience for the minting activity: claims from a time-to-live. */
export function claimsFor(manifest: string, source: string, target: string, nowMs: number, ttlSeconds: number): TransferClaims {
  const iat = Math.floor(nowMs / 1000);
  return { manifest, source, target, iat, exp: iat + ttlSeconds };
}

export interface VerifyExpectation {
  /** The manifest root hash the request is for. */
  manifest: string;
  /** Now, in ms since the epoch. */
  now: number;
  /** If given, the token must name these sites. */
  source?: string;
  target?: string;
  /** Tolerated clock difference between sites, in seconds (default 5). */
  skewSeconds?: number;
}

/**
 * Checks a token against the request it came with. Order matters: the signature is checked
 * before any claim, so a forged token learns nothing about which claim would have failed.
 */
export function verifyToken(secret: Uint8Array | string, token: string, expect: VerifyExpectation): VerifyResult {
  checkSecret(secret);
  const refuse = (reason: RefusalReason, message: string): VerifyResult => ({ ok: false, reason, message });
  const parts = typeof token === 'string' ? token.split('.') : [];
  if (parts.length !== 3 || parts[0] !== PREFIX || !parts[1] || !parts[2]) {
    return refuse('malformed', `transfer token is not of the form '${PREFIX}.<claims>.<signature>'`);
  }
  const [, body, sig] = parts as [string, string, string];
  const given = Buffer.from(sig, 'base64url');
  const want = sign(secret, body);
  if (given.length !== want.length || !timingSafeEqual(given, want)) {
    return refuse('bad-signature', 'transfer token signature does not match: forged, altered, or signed with another secret');
  }
  let wire: Partial<WireClaims>;
  try {
    wire = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as Partial<WireClaims>;
  } catch {
    return refuse('malformed', 'transfer token claims are not JSON');
  }
  if (typeof wire.m !== 'string' || typeof wire.s !== 'string' || typeof wire.t !== 'string' || typeof wire.iat !== 'number' || typeof wire.exp !== 'number') {
    return refuse('malformed', 'transfer token claims lack one of m, s, t, iat, exp');
  }
  const claims: TransferClaims = { manifest: wire.m, source: wire.s, target: wire.t, iat: wire.iat, exp: wire.exp };
  const skew = expect.skewSeconds ?? 5;
  const nowS = expect.now / 1000;
  if (nowS >= claims.exp + skew) {
    return refuse('expired', `transfer token expired at ${new Date(claims.exp * 1000).toISOString()} (now ${new Date(expect.now).toISOString()}); mint a new one`);
  }
  if (nowS < claims.iat - skew) {
    return refuse('not-yet-valid', `transfer token is issued for ${new Date(claims.iat * 1000).toISOString()}, after now (${new Date(expect.now).toISOString()}); check the sites' clocks`);
  }
  if (claims.manifest !== expect.manifest) {
    return refuse('wrong-manifest', `transfer token is for manifest ${claims.manifest}, not ${expect.manifest}`);
  }
  if (expect.source !== undefined && claims.source !== expect.source) {
    return refuse('wrong-site', `transfer token is for source site '${claims.source}', not '${expect.source}'`);
  }
  if (expect.target !== undefined && claims.target !== expect.target) {
    return refuse('wrong-site', `transfer token is for target site '${claims.target}', not '${expect.target}'`);
  }
  return { ok: true, claims };
}

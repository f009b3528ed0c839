/**
 * Mutual TLS between agents: TLS 1.3 only, each side presents its site certificate, and each
 * accepts the other only if the peer's certificate chains to the federation's CA and names a site
 * of the federation (agent/transfer/site-identity.ts). A client also checks that the server it
 * reached is the site it meant to reach (the source of a pull, the target of a probe).
 *
 * The key is read from its file (0600 or stricter, else refused) into this process's memory and
 * handed to node:tls only: never to a log, a payload or an error message.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { statSync } from 'node:fs';
import type { AgentOptions as HttpsAgentOptions } from 'node:https';
import type { PeerCertificate, SecureContextOptions, TLSSocket, TlsOptions } from 'node:tls';
import type { FederationConfig } from '../../core/federation-config';
import { readPem, siteTlsPaths, type SiteTlsPaths } from './certs';
import { peerSite, sitesNamedBy } from './site-identity';

/** One agent's TLS material and what it accepts. */
export interface SiteTls {
  federation: string;
  /** This agent's site. */
  site: string;
  /** The federation's sites: a peer must be one of them. */
  sites: ReadonlySet<string>;
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

export class TlsMaterialError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TlsMaterialError';
  }
}

/** The server an agent called presents a certificate that is not the site it meant to reach. */
export class PeerIdentityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PeerIdentityError';
  }
}

/** Refuses a key file that group or others may read: `chmod 600` is the fix. */
export function checkKeyMode(path: string): void {
  const mode = statSync(path).mode & 0o777;
  if (mode & 0o077) throw new TlsMaterialError(`key file ${path} has mode ${mode.toString(8).padStart(4, '0')}; a private key must be readable by its owner only: chmod 600 ${path}`);
}

/**
 * Reads and checks a site's material: the key is 0600 and matches the certificate, the
 * certificate chains to the CA, is valid now, and names exactly this site.
 */
export function loadSiteTls(config: FederationConfig, site: string, home: string, paths: SiteTlsPaths = siteTlsPaths(config, site, home), now = new Date()): SiteTls {
  const ca = readPem(paths.ca, 'the federation CA certificate');
  const cert = readPem(paths.cert, `the certificate of site '${site}'`);
  const key = readPem(paths.key, `the key of site '${site}'`);
  checkKeyMode(paths.key);
  let caX: X509Certificate;
  let certX: X509Certificate;
  try {
    caX = new X509Certificate(ca);
    certX = new X509Certificate(cert);
  } catch (err) {
    throw new TlsMaterialError(`${paths.ca} or ${paths.cert} is not a PEM certificate: ${(err as Error).message}`);
  }
  if (!certX.checkIssued(caX) || !certX.verify(caX.publicKey)) throw new TlsMaterialError(`the certificate ${paths.cert} is not signed by the federation CA ${paths.ca} (issuer: ${certX.issuer.replace(/\n/g, ', ')}); make it with \`fedflow certs\` from the same CA`);
  if (new Date(certX.validTo) < now || new Date(certX.validFrom) > now) throw new TlsMaterialError(`the certificate ${paths.cert} is valid ${certX.validFrom} .. ${certX.validTo}, not now`);
  const named = sitesNamedBy(certX.subjectAltName, config.federation);
  if (named.length !== 1 || named[0] !== site) {
    throw new TlsMaterialError(`the certificate ${paths.cert} names ${named.length ? named.join(', ') : `no site of federation '${config.federation}'`} (SAN ${certX.subjectAltName ?? 'none'}); agent '${site}' needs one naming URI:spiffe://${config.federation}/site/${site.replace(':', '/')}`);
  }
  let keyMatches = false;
  try {
    keyMatches = certX.checkPrivateKey(createPrivateKey(key));
  } catch {
    throw new TlsMaterialError(`${paths.key} is not a PEM private key`);
  }
  if (!keyMatches) throw new TlsMaterialError(`the key ${paths.key} does not belong to the certificate ${paths.cert}`);
  return { federation: config.federation, site, sites: new Set(config.sites.map((s) => s.id)), ca, cert, key };
}

const TLS13: Pick<SecureContextOptions, 'minVersion' | 'maxVersion'> = { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' };

/** node:https server options: a client certificate is required and must chain to the CA. */
export function tlsServerOptions(t: SiteTls): TlsOptions {
  return { ...TLS13, ca: t.ca, cert: t.cert, key: t.key, requestCert: true, rejectUnauthorized: true };
}

/**
 * The site a request's TLS peer is (its certificate chained to the CA, checked in the handshake),
 * or why it is refused (a certificate naming no site, several, or one not in the federation).
 */
export function peerOf(socket: TLSSocket, t: SiteTls): { site: string } | { refused: string } {
  if (!socket.authorized) return { refused: `the peer's certificate was not accepted: ${String(socket.authorizationError ?? 'none presented')}` };
  return peerSite(socket.getPeerCertificate(), t.federation, t.sites);
}

/**
 * node:https agent options for a call to `expectSite`'s agent: this site's certificate, the
 * federation CA as the only trust anchor, and the server's certificate checked to name
 * `expectSite` (not the URL's host: advertised URLs may be IP addresses).
 */
export function tlsClientOptions(t: SiteTls, expectSite: string): HttpsAgentOptions {
  return {
    ...TLS13,
    ca: t.ca,
    cert: t.cert,
    key: t.key,
    rejectUnauthorized: true,
    checkServerIdentity: (_host: string, cert: PeerCertificate) => {
      const who = peerSite(cert, t.federation, t.sites);
      if ('refused' in who) return new PeerIdentityError(`agent endpoint refused: ${who.refused}`);
      if (who.site !== expectSite) return new PeerIdentityError(`agent endpoint refused: it presents the certificate of site '${who.site}', but this call is to '${expectSite}'`);
      return undefined;
    },
  };
}

/** How an agent reaches another agent: the TLS material (absent when the federation is plain HTTP). */
export interface PeerCall {
  tls?: SiteTls;
  /** The site whose agent answers at the URL. */
  site: string;
}

/**
 * Checks that the endpoint's scheme is the federation's (https with TLS, http without): an agent
 * with TLS never falls back to plain HTTP because a URL said so.
 */
export function checkScheme(endpoint: string, tls: SiteTls | undefined): void {
  const proto = new URL(endpoint).protocol;
  if (tls && proto !== 'https:') throw new TlsMaterialError(`endpoint ${endpoint} is not https: this federation's agents speak mutual TLS (tls.mode 'mutual-tls'), so the peer's agentUrl must start with https://`);
  if (!tls && proto !== 'http:') throw new TlsMaterialError(`endpoint ${endpoint} is ${proto.replace(':', '')} but this agent has no TLS material (tls.mode 'plain'); use an http:// URL or turn TLS on`);
}

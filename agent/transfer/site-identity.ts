/**
 * How a certificate names a site of a federation. A site's certificate carries two SANs:
 *
 *   URI:spiffe://<federation>/site/<kind>/<name>     the identity agents check (SPIFFE form: a
 *                                                     path segment may not hold ':', so the site
 *                                                     id's colon becomes a slash)
 *   DNS:<name>.<kind>.<federation>.fedflow           the same, for tools that only read DNS names
 *
 * Agents accept a peer by the URI SAN only: the advertised URL may be an IP address, so the host
 * name of the connection says nothing about which site answers.
 */
import type { PeerCertificate } from 'node:tls';
import type { X509Certificate } from 'node:crypto';

export function siteSpiffeId(federation: string, siteId: string): string {
  const [kind, name] = siteId.split(':');
  return `spiffe://${federation}/site/${kind}/${name}`;
}

export function siteDnsName(federation: string, siteId: string): string {
  const [kind, name] = siteId.split(':');
  return `${name}.${kind}.${federation}.fedflow`;
}

/** The SAN list an X.509 tool takes (openssl's subjectAltName extension). */
export function siteSubjectAltName(federation: string, siteId: string): string {
  return `URI:${siteSpiffeId(federation, siteId)},DNS:${siteDnsName(federation, siteId)}`;
}

/**
 * The site ids a certificate's SAN names in `federation` (Node's `subjectaltname` string:
 * `URI:spiffe://..., DNS:...`). Usually one; a certificate naming several is refused by callers.
 */
export function sitesNamedBy(subjectAltName: string | undefined, federation: string): string[] {
  if (!subjectAltName) return [];
  const prefix = `URI:spiffe://${federation}/site/`;
  const out: string[] = [];
  for (const part of subjectAltName.split(/,\s*/)) {
    if (!part.startsWith(prefix)) continue;
    const m = /^([a-z][a-z0-9-]*)\/([a-z0-9][a-z0-9-]*)$/.exec(part.slice(prefix.length));
    if (m) out.push(`${m[1]}:${m[2]}`);
  }
  return out;
}

/**
 * The one site of `federation` a peer's certificate names, or why it is refused. `known` is the
 * federation's site list: a certificate for a site that left the federation is refused too.
 */
export function peerSite(cert: Pick<PeerCertificate, 'subjectaltname'> | Pick<X509Certificate, 'subjectAltName'> | undefined, federation: string, known: ReadonlySet<string>): { site: string } | { refused: string } {
  const san = cert && ('subjectaltname' in cert ? cert.subjectaltname : (cert as Pick<X509Certificate, 'subjectAltName'>).subjectAltName);
  if (!cert || !san) return { refused: 'the peer presented no certificate with a subjectAltName' };
  const named = sitesNamedBy(san, federation);
  if (named.length === 0) return { refused: `the peer's certificate names no site of federation '${federation}' (its SAN: ${san.slice(0, 200)}; expected URI:spiffe://${federation}/site/<kind>/<name>)` };
  if (named.length > 1) return { refused: `the peer's certificate names ${named.length} sites (${named.join(', ')}); a site certificate names exactly one` };
  if (!known.has(named[0]!)) return { refused: `the peer's certificate names site '${named[0]}', which is not a site of federation '${federation}' (sites: ${[...known].join(', ')})` };
  return { site: named[0]! };
}

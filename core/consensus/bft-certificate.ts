/**
 * Commit certificates (PBFT §4.2, "committed-local" made portable): a quorum of signed commit
 * votes for one (view, sequence, digest). Anyone with the members' public keys can check one,
 * which is what lets a workflow or a lagging site trust a commit it did not watch.
 */
import type { CommitCertificate, SignedVote } from './bft-types';
import { voteSignatureValid } from './bft-votes';
import { bftSizes } from './quorum';
import type { Verifier } from './signing';
import type { SiteId } from './types';

export type CertificateCheck = { ok: true } | { ok: false; reason: string };

export function verifyCertificate(cert: CommitCertificate, members: readonly SiteId[], verifier: Verifier): CertificateCheck {
  const { quorum } = bftSizes(members.length);
  const known = new Set(members);
  const seen = new Set<SiteId>();
  for (const [i, v] of cert.votes.entries()) {
    const at = `vote ${i} (site ${v.site})`;
    if (!known.has(v.site)) return fail(`${at}: site ${v.site} is not a member (members: ${[...members].sort().join(', ')})`);
    if (seen.has(v.site)) return fail(`${at}: a second vote from ${v.site}; each site counts once`);
    if (v.type !== 'commit') return fail(`${at}: is a ${v.type} vote; a certificate holds commit votes only`);
    if (v.view !== cert.view) return fail(`${at}: view ${v.view}, the certificate is for view ${cert.view}`);
    if (v.seq !== cert.seq) return fail(`${at}: sequence ${v.seq}, the certificate is for sequence ${cert.seq}`);
    if (v.digest !== cert.digest) return fail(`${at}: digest ${v.digest}, the certificate is for digest ${cert.digest}`);
    if (!voteSignatureValid(verifier, v)) return fail(`${at}: signature does not verify with ${v.site}'s public key (forged or altered)`);
    seen.add(v.site);
  }
  if (seen.size < quorum) return fail(`${seen.size} valid commit votes, a certificate needs ${quorum} of ${members.length} sites`);
  return { ok: true };
}

/** Builds a certificate from matching commit votes, sorted by site so equal sets give equal certificates. */
export function makeCertificate(view: number, seq: number, digest: string, votes: readonly SignedVote[]): CommitCertificate {
  return { view, seq, digest, votes: [...votes].sort((a, b) => (a.site < b.site ? -1 : a.site > b.site ? 1 : 0)) };
}

function fail(reason: string): CertificateCheck {
  return { ok: false, reason: `invalid commit certificate: ${reason}` };
}

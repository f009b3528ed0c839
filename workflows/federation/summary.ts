/** Certificates shrunk to what a caller's history should hold: who signed or acked, never the signatures. */
import type { CertificateSummary, RoundCertificate } from '../../core/contracts/federation';

export function certificateSummary(c: RoundCertificate): CertificateSummary {
  if (c.protocol === 'cft') return { protocol: 'cft', term: c.term, index: c.index, ackedBy: c.ackedBy };
  const { view, seq, digest, votes } = c.certificate;
  return { protocol: 'bft', view, seq, digest, signers: votes.map((v) => v.site) };
}

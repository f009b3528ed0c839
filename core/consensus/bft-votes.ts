/** Signing and checking single votes, and checking proofs of equivocation. */
import type { EquivocationProof, SignedVote, VoteBody } from './bft-types';
import { canonicalBytes } from './canonical-bytes';
import type { Signer, Verifier } from './signing';

/** Domain tag of vote signatures; bump the version if the field list ever changes. */
export const VOTE_DOMAIN = 'fedflow/pbft-vote/v1';

/** The exact bytes a site signs for a vote: (type, view, sequence, digest, siteId). */
export function voteBytes(v: VoteBody): Uint8Array {
  return canonicalBytes(VOTE_DOMAIN, [v.type, v.view, v.seq, v.digest, v.site]);
}

export function signVote(signer: Signer, body: Omit<VoteBody, 'site'>): SignedVote {
  const v: VoteBody = { type: body.type, view: body.view, seq: body.seq, digest: body.digest, site: signer.siteId };
  return { ...v, sig: signer.sign(voteBytes(v)) };
}

export function voteSignatureValid(verifier: Verifier, v: SignedVote): boolean {
  try {
    return verifier.verify(v.site, voteBytes(v), v.sig);
  } catch {
    return false; // malformed fields (a negative view, say) cannot carry a valid signature
  }
}

/** Checks a proof that `proof.site` signed two digests for one (view, sequence). Returns null if valid, else why not. */
export function checkEquivocationProof(proof: EquivocationProof, verifier: Verifier): string | null {
  const { first, second } = proof;
  for (const [name, v] of [['first', first], ['second', second]] as const) {
    if (v.site !== proof.site) return `proof.${name} is signed by ${v.site}, not by the accused site ${proof.site}`;
    if (v.view !== proof.view || v.seq !== proof.seq) return `proof.${name} is for view ${v.view} seq ${v.seq}, not view ${proof.view} seq ${proof.seq}`;
    if (!voteSignatureValid(verifier, v)) return `proof.${name} has a signature that does not verify with ${v.site}'s public key`;
  }
  if (first.digest === second.digest) return `both votes carry digest ${first.digest}; equivocation needs two different digests`;
  return null;
}

/**
 * Hybrid mode (DESIGN.md, mode table): each proposal picks its own agreement protocol.
 * Crash-tolerant majority is enough only when every site it touches is trusted; one untrusted
 * site means it might lie, so the proposal needs Byzantine quorums with signed votes.
 */
import type { Trust } from '../federation-config';
import { PROTOCOLS, type Protocol, type SiteId } from './types';

export function chooseProtocol(sitesTouched: readonly SiteId[], trustOf: (site: SiteId) => Trust | undefined): Protocol {
  if (sitesTouched.length === 0) {
    throw new Error('chooseProtocol needs the sites a proposal touches; got none (pass at least the target site)');
  }
  let allTrusted = true;
  for (const site of sitesTouched) {
    const trust = trustOf(site);
    if (trust === undefined) throw new Error(`site '${site}' has no trust level; every touched site must be 'trusted' or 'untrusted'`);
    if (trust !== 'trusted') allTrusted = false;
  }
  return allTrusted ? PROTOCOLS.cft : PROTOCOLS.bft;
}

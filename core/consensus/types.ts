/** Shared words of the consensus core. Plain data only, so values cross Temporal payloads as JSON. */

/** `<kind>:<name>`, as DESIGN.md spells sites: `aws:us-east-1`, `dc:paris`. */
export type SiteId = string;

export const PROTOCOLS = { cft: 'cft', bft: 'bft' } as const;
export type Protocol = (typeof PROTOCOLS)[keyof typeof PROTOCOLS];

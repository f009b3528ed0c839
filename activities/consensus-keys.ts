/**
 * Where a site finds the other sites' public keys. Each site's private key stays in its own
 * directory (agent/federation/site-keys.ts); only public keys travel, and a site takes them from its own
 * configuration, never from a message or from the workflow (the orchestrator routes votes but
 * is not trusted to say whose key is whose):
 *   1. `sites[].publicKey` in the federation config (base64 SPKI DER), for real deployments;
 *   2. otherwise, in the local federation where every site directory is on this machine, the
 *      `site-key.pub` file each agent publishes next to its private key.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FederationConfig } from '../core/federation-config';
import type { SiteId } from '../core/consensus/types';
import { siteDir } from '../agent/site/home';
import { ensureSiteKey } from '../agent/federation/site-keys';

export const SITE_PUBLIC_KEY_FILE = 'site-key.pub';

/** Returns a site's public key (base64 SPKI DER), or undefined when none is known. */
export type PublicKeyResolver = (site: SiteId) => string | undefined;

/** Creates the site's key pair if needed and publishes its public key file; returns the public key. */
export function publishSiteKey(dir: string): string {
  const pub = ensureSiteKey(dir);
  const path = join(dir, SITE_PUBLIC_KEY_FILE);
  if (!existsSync(path) || readFileSync(path, 'utf8').trim() !== pub) {
    const tmp = `${path}.tmp-${process.pid}`;
    writeFileSync(tmp, `${pub}\n`);
    renameSync(tmp, path);
  }
  return pub;
}

/** Keys from the config first, then (local sites only) from each site directory under `home`. */
export function configPublicKeys(config: FederationConfig, home: string): PublicKeyResolver {
  const byId = new Map(config.sites.map((s) => [s.id, s]));
  return (site) => {
    const s = byId.get(site);
    if (s?.publicKey) return s.publicKey;
    const path = join(siteDir(site, home), SITE_PUBLIC_KEY_FILE);
    return existsSync(path) ? readFileSync(path, 'utf8').trim() || undefined : undefined;
  };
}

/** The founding members of a federation from its config, each with the public key the sites will verify with. */
export function foundingSites(config: FederationConfig, home: string): { id: SiteId; trust: 'trusted' | 'untrusted'; capacity: number; publicKey: string }[] {
  const keyOf = configPublicKeys(config, home);
  return config.sites.map((s) => {
    const publicKey = keyOf(s.id);
    if (!publicKey) {
      throw new Error(`site ${s.id} has no public key: set sites[].publicKey in the federation config, or start its agent once so it publishes ${join(siteDir(s.id, home), SITE_PUBLIC_KEY_FILE)}`);
    }
    return { id: s.id, trust: s.trust, capacity: s.capacity.instances, publicKey };
  });
}

/**
 * A test's GET to a site's agent endpoint the way another agent makes it: over mutual TLS with a
 * site's certificate from the test federation's home (when the federation is on TLS, the default),
 * the server checked to be `site`.
 */
import { readAgentUrl } from '../../activities/site';
import { siteDir } from '../../agent/site/home';
import { peerFetch } from '../../agent/transfer/client';
import { loadSiteTls } from '../../agent/transfer/tls';
import type { FederationConfig } from '../../core/federation-config';

export async function agentGetJson<T>(opts: { home: string; config: FederationConfig; site: string; path: string; token?: string; as?: string; url?: string }): Promise<T> {
  // The agent's URL: given, or the one it wrote in its directory under `home` (one machine).
  const url = opts.url ?? readAgentUrl(siteDir(opts.site, opts.home));
  if (!url) throw new Error(`site ${opts.site} has no agent.json in ${opts.home}`);
  const as = opts.as ?? opts.config.sites.find((s) => s.id !== opts.site)?.id ?? opts.site;
  const tls = opts.config.tls.mode === 'mutual-tls' ? loadSiteTls(opts.config, as, opts.home) : undefined;
  const f = peerFetch(url, { site: opts.site, ...(tls ? { tls } : {}) });
  try {
    const res = await f.fetch(`${url}${opts.path}`, { headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {} });
    let body = '';
    for await (const c of res.body) body += (c as Buffer).toString('utf8');
    if (!res.ok) throw new Error(`GET ${url}${opts.path} answered ${res.status}: ${body.slice(0, 300)}`);
    return JSON.parse(body) as T;
  } finally {
    f.close();
  }
}

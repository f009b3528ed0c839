/**
 * `npm run bench -- peer-pool [--requests 200] [--runs 3]`
 *
 * What a call to a peer agent costs over mutual TLS 1.3, on loopback: a real transfer server
 * (agent/transfer/server.ts) with the federation's certificates (agent/transfer/certs.ts, made in a
 * temp dir), asked `GET /health` by a client agent of another site. Two arms, taking turns:
 * - `fresh`: a new connection pool per call, destroyed after it (every call a full handshake:
 *   how the agent called its peers before agent/transfer/client.ts's `peerPool`);
 * - `pooled`: `peerPool`, the one keep-alive pool per peer the agent now shares between calls.
 *
 * One JSON line per run and arm (the median of the requests' wall times), then a summary with the
 * medians over runs and their ratio (pooled / fresh).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import type { Agent } from 'node:http';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SourceImages } from '../agent/capture/source-images';
import { makeFederationCerts } from '../agent/transfer/certs';
import { peerAgent, peerPool } from '../agent/transfer/client';
import { startTransferServer } from '../agent/transfer/server';
import { loadSiteTls } from '../agent/transfer/tls';
import { parseFederationConfig } from '../core/federation-config';
import { median } from './hosts-figures';

const site = (id: string) => ({ id, provider: 'local', trust: 'trusted', capacity: { instances: 1 } });

function get(url: string, agent: Agent): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/health`, { agent }, (res) => {
      if (res.statusCode !== 200) reject(new Error(`GET /health answered ${res.statusCode}`));
      res.resume();
      res.on('end', () => resolve());
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const round = (x: number) => Math.round(x * 1000) / 1000;

export async function run(args: string[]): Promise<void> {
  let requests = 200;
  let runs = 3;
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    const n = Number(args[i + 1]);
    if ((flag === '--requests' || flag === '--runs') && Number.isInteger(n) && n >= 1) {
      if (flag === '--requests') requests = n;
      else runs = n;
      i++;
    } else throw new Error(`unknown or bad argument '${args.slice(i, i + 2).join(' ')}'; usage: npm run bench -- peer-pool [--requests N] [--runs N] (N a positive integer)`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'fedflow-peer-pool-'));
  const config = parseFederationConfig({ federation: 'bench', sites: ['dc:a', 'dc:b'].map(site) });
  makeFederationCerts(join(dir, 'tls'), config);
  const serverTls = loadSiteTls(config, 'dc:a', dir);
  const clientTls = loadSiteTls(config, 'dc:b', dir);
  const images = new SourceImages(join(dir, 'images'));
  const server = await startTransferServer({ site: 'dc:a', images, secret: Buffer.alloc(32, 7), tls: serverTls });
  const peer = { site: 'dc:a', tls: clientTls };
  const seen: Record<'fresh' | 'pooled', number[]> = { fresh: [], pooled: [] };
  try {
    for (let r = 1; r <= runs; r++) {
      // The arms take turns, the first alternating, so a slow moment of the machine falls on both.
      for (const arm of r % 2 ? (['fresh', 'pooled'] as const) : (['pooled', 'fresh'] as const)) {
        const ms: number[] = [];
        for (let i = 0; i < requests; i++) {
          const agent = arm === 'fresh' ? peerAgent(server.url, peer, { keepAlive: false, maxSockets: 1 }) : peerPool(server.url, peer);
          const t0 = performance.now();
          await get(server.url, agent);
          ms.push(performance.now() - t0);
          if (arm === 'fresh') agent.destroy();
        }
        const p50 = median(ms);
        seen[arm].push(p50);
        console.log(JSON.stringify({ bench: 'peer-pool', arm, run: r, requests, p50Ms: round(p50) }));
      }
    }
  } finally {
    await server.close();
    await images.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const fresh = median(seen.fresh);
  const pooled = median(seen.pooled);
  console.log(JSON.stringify({ bench: 'peer-pool', summary: true, runs, requests, freshP50Ms: round(fresh), pooledP50Ms: round(pooled), pooledOverFresh: round(pooled / fresh) }));
}

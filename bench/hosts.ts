/**
 * `npm run bench -- hosts [--runs N] [--volume-mib N] [--value-kib N] [--mode M]` (root; iproute2 and tc)
 *
 * The sample migration dc:paris -> dc:frankfurt over real sockets, with the hosts tier's set-up
 * (test/helpers/hosts-federation.ts): four sites, Temporal in a namespace of its own, each agent
 * started by its unit's command line, mutual TLS with certificates from `fedflow certs`. Each
 * migration moves a fresh sample workload of about `--volume-mib` MiB (values that share no chunk
 * with any earlier one, so every run moves its whole volume).
 *
 * Three set-ups, one after the other, each with one small warm-up migration first (the first
 * migration over a link also probes it; that is not what is compared):
 * 1. `loopback`: the four agents in one namespace, talking over its loopback;
 * 2. `hosts`, mutual TLS: each agent in its own namespace on the bridge; per run, migrations on an
 *    unshaped link, on a link shaped by `tc tbf` to 1 Gbit/s and to 50 Mbit/s (on the source's egress);
 * 3. `hosts`, `tls.mode: plain`: per run, a migration on the unshaped link.
 * The link lines' migrations run in the mode the policy picks (`--mode` forces one); the unshaped
 * pair, with and without TLS, always in datacenter mode (TLS_PAIR_MODE says why).
 *
 * JSON lines on stdout, progress on stderr:
 * - one per `link` (`loopback`, `1gbit`, `50mbit`): medians over the runs of `durationMs`,
 *   `downtimeMs`, `wireBytes` (the migrations' own figures), with each run beside them;
 * - one with `tlsThroughputRatio`: the pull's wire throughput with TLS over without, unshaped.
 */
import { loadavg } from 'node:os';
import { hostsUnavailable } from '../scripts/hosts-check';
import { startHostsFederation, type HostsFederation, type HostsFederationOptions } from '../test/helpers/hosts-federation';
import type { Mode } from '../core/mode-policy';
import { LINK_RATE_MBPS, TLS_PAIR_MODE, linkLine, parseHostsArgs, runFigures, sampleKeys, tlsLine, type Link, type RunFigures } from './hosts-figures';

const SITES = ['dc:paris', 'dc:frankfurt', 'dc:london', 'edge:lisbon'] as const;
const TRUST = { 'edge:lisbon': 'untrusted' } as const;
const SOURCE = 'dc:paris';
const TARGET = 'dc:frankfurt';
/** The warm-up migration's volume: enough to probe the link and warm every process. */
const WARMUP_KEYS = 16;

const log = (msg: string) => process.stderr.write(`[bench hosts ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
// Each line carries the 1-minute load average when it was printed: the machine is shared.
const print = (line: Record<string, unknown>) => process.stdout.write(`${JSON.stringify({ ...line, load1m: Math.round(loadavg()[0]! * 100) / 100 })}\n`);

export async function run(argv: string[]): Promise<void> {
  const a = parseHostsArgs(argv);
  const why = hostsUnavailable();
  if (why) throw new Error(`bench hosts cannot run here: ${why}`);
  const keys = sampleKeys(a);
  const valueBytes = a.valueKiB * 1024;
  const sample = { keys, valueBytes, volumeMiB: Math.round((keys * valueBytes) / (1 << 20)) };
  const startedAt = new Date().toISOString();
  log(`${a.runs} run(s) per link; each migration moves ${keys} keys × ${valueBytes} B (~${sample.volumeMiB} MiB) ${SOURCE} -> ${TARGET}`);
  let seq = 0;

  /** One fresh sample on the source, migrated to the target; its figures. */
  const migrate = async (fed: HostsFederation, label: string, n: number, mode: Mode | undefined = a.mode): Promise<RunFigures> => {
    const workloadId = `kv-${label}-${++seq}`;
    // A value range of its own per workload: no chunk in common with any earlier one.
    const sampleAt = await fed.deploySample({ site: SOURCE, keys: n, valueBytes, workloadId, firstValue: seq * 10_000_000 });
    if (sampleAt.keys !== n) throw new Error(`${workloadId}: seeded ${sampleAt.keys} keys, expected ${n}`);
    await fed.client.startMigration({ workloadId, targetSite: TARGET, ...(mode ? { mode } : {}) });
    const r = await fed.client.waitForResult(workloadId);
    if (r.target !== TARGET || r.keys !== n) throw new Error(`${workloadId}: the migration ended on ${r.target} with ${r.keys} keys; expected ${TARGET} with ${n}`);
    const f = runFigures(r);
    log(`${label}: ${workloadId} in ${f.durationMs} ms, downtime ${f.downtimeMs} ms, ${f.wireBytes} B on the wire, pull ${f.transferMs} ms (${f.transferMBps} MB/s), mode ${f.mode} ${f.codecs.join('+')}`);
    return f;
  };

  /** A set-up, its warm-up, `body`, and its removal whatever happens. */
  const withFederation = async <T>(what: string, opts: Omit<HostsFederationOptions, 'sites' | 'trust' | 'capacity' | 'log'>, body: (fed: HostsFederation) => Promise<T>): Promise<T> => {
    const t0 = Date.now();
    const fed = await startHostsFederation({ sites: SITES, trust: TRUST, capacity: 3 * a.runs + 4, log, ...opts });
    try {
      log(`${what}: federation up in ${((Date.now() - t0) / 1000).toFixed(1)} s; warm-up migration`);
      await migrate(fed, 'warmup', WARMUP_KEYS);
      return await body(fed);
    } finally {
      await fed.stop();
      log(`${what}: removed (${((Date.now() - t0) / 1000).toFixed(1)} s in all)`);
    }
  };

  const lineExtra = (layout: string, tls: string) => ({ layout, tls, forcedMode: a.mode ?? null, source: SOURCE, target: TARGET, sample, startedAt });

  const loopback = await withFederation('loopback', { layout: 'loopback' }, async (fed) => {
    const runs: RunFigures[] = [];
    for (let i = 1; i <= a.runs; i++) runs.push(await migrate(fed, 'loopback', keys));
    return runs;
  });
  print(linkLine('loopback', loopback, lineExtra('loopback', 'mutual-tls')));

  const shaped: Record<Exclude<Link, 'loopback'>, RunFigures[]> = { '1gbit': [], '50mbit': [] };
  const unshapedTls: RunFigures[] = [];
  await withFederation('hosts, mutual TLS', { layout: 'hosts' }, async (fed) => {
    for (let i = 1; i <= a.runs; i++) {
      fed.shape(SOURCE, undefined);
      unshapedTls.push(await migrate(fed, 'unshaped', keys, TLS_PAIR_MODE));
      for (const link of ['1gbit', '50mbit'] as const) {
        fed.shape(SOURCE, LINK_RATE_MBPS[link]);
        shaped[link].push(await migrate(fed, link, keys));
      }
    }
    fed.shape(SOURCE, undefined);
  });
  for (const link of ['1gbit', '50mbit'] as const) print(linkLine(link, shaped[link], lineExtra('hosts', 'mutual-tls')));

  const unshapedPlain = await withFederation('hosts, plain', { layout: 'hosts', tlsMode: 'plain' }, async (fed) => {
    const runs: RunFigures[] = [];
    for (let i = 1; i <= a.runs; i++) runs.push(await migrate(fed, 'plain', keys, TLS_PAIR_MODE));
    return runs;
  });
  print(tlsLine(unshapedTls, unshapedPlain, { layout: 'hosts', forcedMode: TLS_PAIR_MODE, source: SOURCE, target: TARGET, sample, startedAt, finishedAt: new Date().toISOString() }));
}

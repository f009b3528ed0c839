/**
 * The pure part of `npm run bench -- hosts` (./hosts.ts): its arguments, and the JSON lines it
 * prints, computed from the migrations' own results. No I/O here, so test/unit/bench-hosts.test.ts
 * checks the lines' shapes and the ratio on made-up results.
 */
import type { MigrationResult } from '../core/migration';
import { MODES, type Mode } from '../core/mode-policy';

export const LINKS = ['loopback', '1gbit', '50mbit'] as const;
export type Link = (typeof LINKS)[number];

/** The rate `tc tbf` shapes each link to (Mbit/s); loopback is never shaped. */
export const LINK_RATE_MBPS: Record<Link, number | undefined> = { loopback: undefined, '1gbit': 1000, '50mbit': 50 };

export interface HostsBenchArgs {
  runs: number;
  volumeMiB: number;
  valueKiB: number;
  /** The link lines' migrations: the mode policy's choice (absent), or this mode forced. */
  mode?: Mode;
}

/**
 * The TLS pair's mode, forced: the ratio compares the transport only if both sides pull with the
 * same codec and streams, and the policy's choice follows probes that a loaded machine skews.
 * Datacenter is what the policy picks on an unshaped link between trusted sites.
 */
export const TLS_PAIR_MODE: Mode = 'datacenter';

export const HOSTS_BENCH_USAGE = `npm run bench -- hosts [--runs N (default 3)] [--volume-mib N (default 64)] [--value-kib N (default 64)] [--mode ${MODES.join('|')} (default: the policy's)]`;

export function parseHostsArgs(argv: readonly string[]): HostsBenchArgs {
  const a: HostsBenchArgs = { runs: 3, volumeMiB: 64, valueKiB: 64 };
  const fields: Record<string, 'runs' | 'volumeMiB' | 'valueKiB'> = { '--runs': 'runs', '--volume-mib': 'volumeMiB', '--value-kib': 'valueKiB' };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.split('=', 2) as [string, string | undefined];
    const value = inline ?? argv[++i];
    if (flag === '--mode') {
      if (!MODES.includes(value as Mode)) throw new Error(`--mode is '${String(value).slice(0, 40)}'; expected one of ${MODES.join(', ')}`);
      a.mode = value as Mode;
      continue;
    }
    const field = fields[flag];
    if (!field) throw new Error(`unknown argument '${flag.slice(0, 40)}'; usage: ${HOSTS_BENCH_USAGE}`);
    const n = Number(value);
    if (!(Number.isInteger(n) && n >= 1)) throw new Error(`${flag} is '${String(value).slice(0, 40)}'; expected an integer >= 1`);
    a[field] = n;
  }
  if (a.valueKiB * 1024 > a.volumeMiB * (1 << 20)) throw new Error(`--value-kib ${a.valueKiB} is more than the whole volume (--volume-mib ${a.volumeMiB}); give a smaller value or a larger volume`);
  return a;
}

/** Keys of `valueKiB` each that make about `volumeMiB` of sample data. */
export function sampleKeys(a: Pick<HostsBenchArgs, 'volumeMiB' | 'valueKiB'>): number {
  return Math.max(1, Math.round((a.volumeMiB * 1024) / a.valueKiB));
}

/** The median (the mean of the middle two for an even count). */
export function median(xs: readonly number[]): number {
  if (!xs.length) throw new Error('median of no values');
  const s = [...xs].sort((x, y) => x - y);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** What one migration gives the figures. */
export interface RunFigures {
  durationMs: number;
  downtimeMs: number;
  wireBytes: number;
  volumeBytes: number;
  mode: string;
  codecs: string[];
  /** Pulling time over every round (without the steps around it). */
  transferMs: number;
  /** Wire bytes per second of pulling, in MB/s (10^6 bytes). */
  transferMBps: number;
}

export function runFigures(r: Pick<MigrationResult, 'durationMs' | 'downtimeMs' | 'bytesTransferred' | 'volumeBytes' | 'mode' | 'rounds'>): RunFigures {
  const transferMs = r.rounds.reduce((t, x) => t + x.durationMs, 0);
  const wire = r.rounds.reduce((t, x) => t + x.wireBytes, 0);
  if (!(transferMs > 0)) throw new Error(`the migration's rounds record no pulling time (${r.rounds.length} round(s)): no throughput to report`);
  return {
    durationMs: r.durationMs,
    downtimeMs: r.downtimeMs,
    wireBytes: r.bytesTransferred,
    volumeBytes: r.volumeBytes,
    mode: r.mode,
    codecs: [...new Set(r.rounds.map((x) => x.codec))],
    transferMs,
    transferMBps: round2(wire / 1e6 / (transferMs / 1000)),
  };
}

const round2 = (x: number) => Math.round(x * 100) / 100;

/** The modes and codecs a set of runs used, as one comparable string. */
const key = (runs: readonly RunFigures[]) => JSON.stringify([...new Set(runs.map((r) => `${r.mode}/${[...r.codecs].sort().join('+')}`))].sort());

/** One line per link: the medians over its runs, and every run's figures beside them. */
export function linkLine(link: Link, runs: readonly RunFigures[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  if (!runs.length) throw new Error(`link ${link}: no runs`);
  const m = (f: (r: RunFigures) => number) => median(runs.map(f));
  return {
    bench: 'hosts',
    link,
    rateMbps: LINK_RATE_MBPS[link] ?? null,
    runs: runs.length,
    durationMs: m((r) => r.durationMs),
    downtimeMs: m((r) => r.downtimeMs),
    wireBytes: m((r) => r.wireBytes),
    volumeBytes: m((r) => r.volumeBytes),
    transferMBps: round2(m((r) => r.transferMBps)),
    modes: [...new Set(runs.map((r) => r.mode))],
    ...extra,
    perRun: runs.map((r) => ({ durationMs: r.durationMs, downtimeMs: r.downtimeMs, wireBytes: r.wireBytes, transferMs: r.transferMs, transferMBps: r.transferMBps, mode: r.mode, codecs: r.codecs })),
  };
}

/**
 * The TLS line: the transfer's throughput with mutual TLS over the one without, on the same
 * unshaped link: median wire MB/s per second of pulling with TLS, over the same without.
 */
export function tlsLine(tls: readonly RunFigures[], plain: readonly RunFigures[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  if (!tls.length || !plain.length) throw new Error(`the TLS ratio needs runs with and without TLS (${tls.length} with, ${plain.length} without)`);
  const withTls = median(tls.map((r) => r.transferMBps));
  const without = median(plain.map((r) => r.transferMBps));
  if (!(without > 0)) throw new Error(`the runs without TLS moved nothing (median ${without} MB/s): no ratio`);
  return {
    bench: 'hosts',
    link: 'unshaped',
    runs: Math.min(tls.length, plain.length),
    tlsThroughputRatio: Math.round((withTls / without) * 1000) / 1000,
    tlsTransferMBps: round2(withTls),
    plainTransferMBps: round2(without),
    tlsDurationMs: median(tls.map((r) => r.durationMs)),
    plainDurationMs: median(plain.map((r) => r.durationMs)),
    tlsModes: [...new Set(tls.map((r) => r.mode))],
    plainModes: [...new Set(plain.map((r) => r.mode))],
    // The ratio compares TLS alone only when both sides pulled with the same mode and codecs.
    sameModes: key(tls) === key(plain),
    tlsPerRunMBps: tls.map((r) => r.transferMBps),
    plainPerRunMBps: plain.map((r) => r.transferMBps),
    ...extra,
  };
}

/**
 * Mode policy: from a link prediction and the two sites' trust, pick
 * `datacenter | internet | hybrid` and a transfer plan, with the reason in
 * words. Pure and deterministic (no clock, no I/O, no node imports): workflow
 * code imports it and re-runs it between pre-copy rounds, passing the
 * returned `state` back in so the decision has memory (hysteresis).
 */

import type { Trust } from './federation-config';
import { chooseZstdLevel } from './zstd-levels';

export const Mode = { datacenter: 'datacenter', internet: 'internet', hybrid: 'hybrid' } as const;
export type Mode = (typeof Mode)[keyof typeof Mode];
export const MODES: readonly Mode[] = [Mode.datacenter, Mode.internet, Mode.hybrid];


// Thresholds. "Fast" is judged on the predicted low quantile (p10), not the
// mean: datacenter mode drops Byzantine checks and compression, and that is
// only worth it if the link is fast even on a bad 5 s.
/** Datacenter needs p10 throughput at least this (Mbit/s)... */
export const DC_MIN_LOW_MBPS = 1_000;
/** ...and RTT at most this (ms): same metro, a Raft round is cheap. */
export const DC_MAX_RTT_MS = 5;
/** Below this p10 (Mbit/s) a trusted link is treated as internet. */
export const INTERNET_MAX_LOW_MBPS = 100;
/** Above this RTT (ms) a trusted link is treated as internet. */
export const INTERNET_MIN_RTT_MS = 50;
/**
 * Band hysteresis: once in a mode, the link has to cross the threshold by this
 * factor to count against it (e.g. datacenter is kept down to 800 Mbit/s and
 * up to 6.25 ms), so a link hovering at a threshold does not toggle.
 */
export const THRESHOLD_MARGIN = 0.8;
/** Consecutive evaluations that must agree before the mode changes. */
export const SWITCH_CONFIRMATIONS = 2;
/** Raw classifications remembered; datacenter and internet both among them = a link that changes -> hybrid. */
export const HISTORY_LENGTH = 4;

export interface LinkPrediction {
  readonly meanMbps: number;
  readonly lowMbps: number;
  /** null = not measured; such a link is never called short enough for datacenter mode. */
  readonly rttMs: number | null;
  readonly source?: string;
}

export interface SiteTrust {
  readonly id: string;
  readonly trust: Trust;
}

/** Carried between evaluations by the caller (workflow state). */
export interface PolicyState {
  readonly mode: Mode | null;
  readonly pending: Mode | null;
  readonly pendingCount: number;
  /** Last raw (link-only) classifications, oldest first. */
  readonly history: readonly Mode[];
}

export const INITIAL_POLICY_STATE: PolicyState = { mode: null, pending: null, pendingCount: 0, history: [] };

export interface PolicyInput {
  readonly prediction: LinkPrediction;
  readonly source: SiteTrust;
  readonly target: SiteTrust;
  /** Bytes to move, for the time estimate. */
  readonly bytes: number;
  /** An operator's explicit choice; honoured as is and recorded as an override. */
  readonly override?: Mode;
  readonly state?: PolicyState;
}

export type Codec = 'lz4' | 'zstd';
export type ChunkPreset = 'small' | 'medium' | 'large';

export interface TransferPlan {
  readonly codec: Codec;
  readonly level: number;
  readonly streams: number;
  readonly chunkPreset: ChunkPreset;
  /** At the predicted mean, ignoring compression (so it errs long for compressible data). */
  readonly estimatedSeconds: number;
  /** Same at the predicted p10. */
  readonly estimatedSecondsLow: number;
}

export interface ModeDecision {
  readonly mode: Mode;
  readonly override: boolean;
  /** What the link alone says this time, before trust, memory and overrides. */
  readonly linkMode: Mode;
  readonly reason: string;
  readonly plan: TransferPlan;
  readonly state: PolicyState;
  readonly inputs: {
    readonly prediction: LinkPrediction;
    readonly source: SiteTrust;
    readonly target: SiteTrust;
    readonly bytes: number;
  };
}

/** Link-only classification; `current` widens the band around the mode we are in. */
export function classifyLink(p: LinkPrediction, current: Mode | null = null): Mode {
  const m = (mode: Mode, up: boolean) => (current === mode ? (up ? 1 / THRESHOLD_MARGIN : THRESHOLD_MARGIN) : 1);
  const rtt = p.rttMs;
  const dcFast = p.lowMbps >= DC_MIN_LOW_MBPS * m(Mode.datacenter, false);
  const dcShort = rtt !== null && rtt <= DC_MAX_RTT_MS * m(Mode.datacenter, true);
  if (dcFast && dcShort) return Mode.datacenter;
  const slow = p.lowMbps < INTERNET_MAX_LOW_MBPS * m(Mode.internet, true);
  const long = rtt !== null && rtt > INTERNET_MIN_RTT_MS * m(Mode.internet, false);
  if (slow || long) return Mode.internet;
  return Mode.hybrid;
}

export function decideMode(input: PolicyInput): ModeDecision {
  const state = input.state ?? INITIAL_POLICY_STATE;
  const p = input.prediction;
  if (!(p.meanMbps > 0) || !(p.lowMbps >= 0) || !Number.isFinite(p.meanMbps)) {
    throw new RangeError(`prediction needs a finite meanMbps > 0 and lowMbps >= 0, got ${p.meanMbps}/${p.lowMbps}`);
  }
  const linkMode = classifyLink(p, state.mode);
  const history = [...state.history, linkMode].slice(-HISTORY_LENGTH);
  const alternating = history.includes(Mode.datacenter) && history.includes(Mode.internet);
  const wanted = alternating ? Mode.hybrid : linkMode;
  const link = describeLink(p);
  const inputs = { prediction: p, source: input.source, target: input.target, bytes: input.bytes };

  const done = (mode: Mode, reason: string, next: PolicyState, override = false): ModeDecision => ({
    mode,
    override,
    linkMode,
    reason,
    plan: planTransfer(mode, p, input.bytes),
    state: next,
    inputs,
  });

  if (input.override !== undefined) {
    return done(
      input.override,
      `${input.override}: operator override (the link alone suggests ${linkMode}: ${link})`,
      { mode: input.override, pending: null, pendingCount: 0, history },
      true,
    );
  }
  const untrusted = [input.source, input.target].filter((s) => s.trust !== 'trusted');
  if (untrusted.length > 0) {
    // Security, not performance: never delayed by hysteresis.
    const names = untrusted.map((s) => `'${s.id}'`).join(' and ');
    return done(
      Mode.internet,
      `internet: site ${names} ${untrusted.length > 1 ? 'are' : 'is'} untrusted, so agreement must be Byzantine-tolerant (${link})`,
      { mode: Mode.internet, pending: null, pendingCount: 0, history },
    );
  }
  const why = alternating
    ? `the link changes between fast and slow over the last ${history.length} evaluations`
    : whyLink(linkMode, p);
  if (state.mode === null || state.mode === wanted) {
    return done(wanted, `${wanted}: both sites trusted; ${why} (${link})`, { mode: wanted, pending: null, pendingCount: 0, history });
  }
  const count = state.pending === wanted ? state.pendingCount + 1 : 1;
  if (count >= SWITCH_CONFIRMATIONS) {
    return done(
      wanted,
      `${wanted}: switched from ${state.mode} after ${count} agreeing evaluations; ${why} (${link})`,
      { mode: wanted, pending: null, pendingCount: 0, history },
    );
  }
  return done(
    state.mode,
    `${state.mode}: kept; the link suggests ${wanted} (${why}) but a switch needs ${SWITCH_CONFIRMATIONS} agreeing evaluations, ${count} so far (${link})`,
    { mode: state.mode, pending: wanted, pendingCount: count, history },
  );
}

function whyLink(mode: Mode, p: LinkPrediction): string {
  const rtt = p.rttMs === null ? 'unmeasured RTT' : `RTT ${fmtMs(p.rttMs)}`;
  switch (mode) {
    case Mode.datacenter:
      return `fast and short: p10 ${fmtMbps(p.lowMbps)} >= ${fmtMbps(DC_MIN_LOW_MBPS)} and ${rtt} <= ${DC_MAX_RTT_MS} ms`;
    case Mode.internet:
      return p.lowMbps < INTERNET_MAX_LOW_MBPS
        ? `slow: p10 ${fmtMbps(p.lowMbps)} < ${fmtMbps(INTERNET_MAX_LOW_MBPS)}`
        : `long: ${rtt} > ${INTERNET_MIN_RTT_MS} ms`;
    case Mode.hybrid:
      return `between datacenter (p10 >= ${fmtMbps(DC_MIN_LOW_MBPS)}, RTT <= ${DC_MAX_RTT_MS} ms) and internet (p10 < ${fmtMbps(INTERNET_MAX_LOW_MBPS)} or RTT > ${INTERNET_MIN_RTT_MS} ms)`;
  }
}

/** Per-stream window the transfer client keeps in flight (bytes); streams fill the bandwidth-delay product. */
export const STREAM_WINDOW_BYTES = 4 * 1024 * 1024;

export function planTransfer(mode: Mode, p: LinkPrediction, bytes: number): TransferPlan {
  const bdpBytes = ((p.meanMbps * 1e6) / 8) * ((p.rttMs ?? INTERNET_MIN_RTT_MS) / 1000);
  const byBdp = Math.ceil(bdpBytes / STREAM_WINDOW_BYTES);
  const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));
  // The level is sized on the predicted mean, not the p10: a level picked for a bad 5 s would leave
  // the compressor (one core) behind the link on an ordinary one.
  const zstdLevel = chooseZstdLevel(Math.max(p.meanMbps, 1e-3));
  const seconds = (mbps: number) => (bytes * 8) / (Math.max(mbps, 1e-3) * 1e6) + (2 * (p.rttMs ?? 0)) / 1000;
  const est = { estimatedSeconds: seconds(p.meanMbps), estimatedSecondsLow: seconds(p.lowMbps) };
  switch (mode) {
    case Mode.datacenter:
      // At >= 1 Gbit/s only LZ4 keeps up with the wire; few streams fill a short link.
      return { codec: 'lz4', level: 1, streams: clamp(byBdp, 2, 4), chunkPreset: 'large', ...est };
    case Mode.internet:
      return { codec: 'zstd', level: zstdLevel, streams: clamp(byBdp, 8, 32), chunkPreset: 'small', ...est };
    case Mode.hybrid:
      // Initial choice; the transfer re-picks per batch from measured goodput.
      return p.lowMbps >= DC_MIN_LOW_MBPS
        ? { codec: 'lz4', level: 1, streams: clamp(byBdp, 4, 16), chunkPreset: 'medium', ...est }
        : { codec: 'zstd', level: zstdLevel, streams: clamp(byBdp, 4, 16), chunkPreset: 'medium', ...est };
  }
}

function describeLink(p: LinkPrediction): string {
  const rtt = p.rttMs === null ? 'RTT unmeasured' : `RTT ${fmtMs(p.rttMs)}`;
  return `predicted ${fmtMbps(p.meanMbps)}, p10 ${fmtMbps(p.lowMbps)}, ${rtt}${p.source ? `, from ${p.source}` : ''}`;
}

function fmtMbps(v: number): string {
  return v >= 1000 ? `${(v / 1000).toPrecision(3)} Gbit/s` : `${v.toPrecision(3)} Mbit/s`;
}

function fmtMs(v: number): string {
  return `${v.toPrecision(3)} ms`;
}

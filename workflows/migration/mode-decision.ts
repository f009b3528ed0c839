/**
 * Measuring a link and deciding the mode, shared by migrateWorkload (before the first round) and
 * syncVolume (between pre-copy rounds). The probe and the prediction run at the target's agent;
 * the decision itself is the pure policy in core/mode-policy.ts, so it replays deterministically.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { LinkActivities } from '../../activities/link';
import type { ModeRecord } from '../../core/migration';
import { decideMode, type Mode, type ModeDecision, type PolicyState, type SiteTrust } from '../../core/mode-policy';
import { siteTaskQueue } from '../../core/contracts/task-queues';

export interface PolicyContext {
  source: SiteTrust;
  target: SiteTrust;
  override?: Mode;
  state?: PolicyState;
}

function link(site: string, summary: string) {
  return proxyActivities<LinkActivities>({
    taskQueue: siteTaskQueue(site),
    startToCloseTimeout: '1 minute',
    retry: { initialInterval: '500 milliseconds', maximumInterval: '10 seconds', maximumAttempts: 5 },
    summary,
  });
}

/** Probes (optional), predicts and decides; returns the decision and its record for progress and result. */
export async function measureAndDecide(ctx: PolicyContext, opts: { probeEndpoint?: string; bytes: number }): Promise<{ decision: ModeDecision; record: ModeRecord }> {
  const a = link(ctx.target.id, `Probe the link ${ctx.source.id} -> ${ctx.target.id}`);
  if (opts.probeEndpoint) await a.probeLink({ source: ctx.source.id, endpoint: opts.probeEndpoint });
  const prediction = await link(ctx.target.id, `Predict the link ${ctx.source.id} -> ${ctx.target.id} (ONNX)`).predictLink({ source: ctx.source.id });
  const decision = decideMode({
    prediction: { meanMbps: prediction.meanMbps, lowMbps: prediction.lowMbps, rttMs: prediction.rttMs, source: prediction.source },
    source: ctx.source,
    target: ctx.target,
    bytes: opts.bytes,
    ...(ctx.override ? { override: ctx.override } : {}),
    ...(ctx.state ? { state: ctx.state } : {}),
  });
  return { decision, record: modeRecord(decision, { fallbackReason: prediction.fallbackReason, sampleCount: prediction.inputs.sampleCount }) };
}

function modeRecord(d: ModeDecision, extra: { fallbackReason?: string; sampleCount?: number } = {}): ModeRecord {
  const p = d.inputs.prediction;
  return {
    mode: d.mode,
    override: d.override,
    linkMode: d.linkMode,
    reason: d.reason,
    prediction: { meanMbps: p.meanMbps, lowMbps: p.lowMbps, rttMs: p.rttMs, source: p.source ?? 'unknown', sampleCount: extra.sampleCount ?? 0, ...(extra.fallbackReason ? { fallbackReason: extra.fallbackReason } : {}) },
    plan: { codec: d.plan.codec, ...(d.plan.codec === 'zstd' ? { level: d.plan.level } : {}), streams: d.plan.streams, chunkPreset: d.plan.chunkPreset, estimatedSeconds: d.plan.estimatedSeconds },
  };
}

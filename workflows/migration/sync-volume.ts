/**
 * syncVolume: brings a volume on a target site up to date with its source, sending only what the
 * target lacks. A child of migrateWorkload, and usable on its own to keep a replica in sync.
 *
 * Pre-copy rounds run while the workload keeps serving and writing; each sends only what changed
 * since the round before (the target's chunk store is the baseline). Rounds stop when the dirty
 * delta is small, or when it stops shrinking ("not converging", as cloud migration tools say).
 * The final round then runs: with `cutover`, the source is frozen first, so the target ends with
 * exactly what the source acknowledged before the pause.
 */
import { ApplicationFailure, CancellationScope, defineQuery, getExternalWorkflowHandle, patched, proxyActivities, setHandler, type ActivityOptions } from '@temporalio/workflow';
import type { SyncActivities, RoundFigures, CapturedImage } from '../../activities/sync';
import type { InstanceRef } from '../../core/contracts/providers';
import type { Mode } from '../../core/migration';
import type { ModeSwitch } from '../../core/migration';
import type { PolicyState } from '../../core/mode-policy';
import { defaultPlan, planFromDecision, type TransferPlan } from '../../core/transfer-plan';
import { measureAndDecide, type PolicyContext } from './mode-decision';
import { TIMEOUTS } from './proxies';
import { roundSignal } from '../../core/contracts/migration-messages';
import { siteTaskQueue } from '../../core/contracts/task-queues';
import { FailureType } from '../../core/contracts/failures';

export interface SyncVolumeInput {
  volumeId: string;
  source: string;
  target: string;
  mode: Mode;
  plan?: TransferPlan;
  /** Pre-copy rounds at most, before the final round (default 8). */
  maxPrecopyRounds?: number;
  /** A pre-copy round sending at most this many bytes counts as converged (default 4 MiB). */
  convergeBytes?: number;
  /** Freeze this source instance before the final round. */
  cutover?: { instance: InstanceRef };
  /**
   * Run the final round (default true). A migration passes false and runs its cut-over itself,
   * folding the final round into fewer hops (see steps/cutover.ts).
   */
  final?: boolean;
  /** Workflow to signal after each round (the parent migration), for its progress display. */
  notify?: string;
  /** Predicted bandwidth, for hybrid mode's codec choice. */
  bandwidthMbps?: number;
  /** Re-decide the mode between pre-copy rounds with this context (the policy's state carries its hysteresis). */
  policy?: PolicyContext;
}

export interface SyncVolumeResult {
  rounds: RoundFigures[];
  precopyRounds: number;
  converged: boolean;
  notConverging: boolean;
  /** The final image's root (absent with final: false); the caller releases it (releaseImage) when done. */
  finalRoot?: string;
  volumeBytes: number;
  wireBytes: number;
  frozenAtMs?: number;
  digest?: CapturedImage['digest'];
  /** The plan in force after the last round (the mode may have switched). */
  plan: TransferPlan;
  modeSwitches: ModeSwitch[];
  policyState?: PolicyState;
}

export const syncProgressQuery = defineQuery<{ rounds: RoundFigures[]; status: string }>('syncProgress');

const RETRY = { initialInterval: '500 milliseconds', maximumInterval: '10 seconds', backoffCoefficient: 2 } as const;

/** Transfer tokens live this long; a pull that outlasts it is retried and signs a fresh one. */
const TOKEN_TTL_SECONDS = 3600;

function at(site: string, summary: string, t: ActivityOptions) {
  return proxyActivities<SyncActivities>({ taskQueue: siteTaskQueue(site), ...t, retry: RETRY, summary });
}

/** Patch: a mode switch between pre-copy rounds keeps the volume's chunking (issue 14). */
export const FIXED_CHUNKING_PATCH = 'fixed-chunking-v1';

/** Transfer tokens live this long; exported for the migration's own cut-over round. */
export { TOKEN_TTL_SECONDS };

export async function syncVolume(input: SyncVolumeInput): Promise<SyncVolumeResult> {
  if (!input || !input.volumeId || !input.source || !input.target || input.source === input.target) {
    throw ApplicationFailure.nonRetryable('syncVolume needs volumeId, and a source and target site that differ', FailureType.InvalidSyncRequest);
  }
  let plan = input.plan ?? defaultPlan(input.mode);
  let policyState = input.policy?.state;
  const modeSwitches: ModeSwitch[] = [];
  const maxRounds = input.maxPrecopyRounds ?? 8;
  const convergeBytes = input.convergeBytes ?? 4 << 20;
  const rounds: RoundFigures[] = [];
  let status = 'pre-copy';
  setHandler(syncProgressQuery, () => ({ rounds, status }));
  const parent = input.notify ? getExternalWorkflowHandle(input.notify) : undefined;

  async function round(n: number, kind: 'precopy' | 'final'): Promise<{ figures: RoundFigures; image: CapturedImage }> {
    const what = kind === 'final' ? (input.cutover ? 'Freeze the source and capture' : 'Capture') : `Round ${n}: capture`;
    const image = await at(input.source, `${what} ${input.volumeId} on ${input.source}`, kind === 'final' && input.cutover ? TIMEOUTS.freeze : TIMEOUTS.capture).captureImage({
      volumeId: input.volumeId,
      preset: plan.chunkPreset,
      ...(kind === 'final' && input.cutover ? { freeze: input.cutover.instance } : {}),
      ...(plan.mode === 'hybrid' && input.bandwidthMbps ? { hybridBandwidthMbps: input.bandwidthMbps } : {}),
    });
    const roundPlan: TransferPlan = image.hybridCodec ? { ...plan, codec: image.hybridCodec.codec, level: image.hybridCodec.level } : plan;
    try {
      const figures = await at(input.target, `${kind === 'final' ? 'Final delta' : `Round ${n}: pull delta`} ${input.source} -> ${input.target}`, TIMEOUTS.pull).pullDelta({
        endpoint: image.endpoint,
        source: input.source,
        root: image.manifest.rootHash,
        plan: roundPlan,
        round: n,
        kind,
        ttlSeconds: TOKEN_TTL_SECONDS,
        ...(kind === 'final' ? { assembleVolumeId: input.volumeId } : {}),
      });
      rounds.push(figures);
      // Not awaited: the parent's progress display must not add a round trip to the cut-over.
      if (parent) parent.signal(roundSignal, figures).catch(() => undefined);
      return { figures, image };
    } catch (err) {
      await CancellationScope.nonCancellable(() => releaseImage(image));
      throw err;
    }
  }

  function releaseImage(image: CapturedImage): Promise<void> {
    return at(input.source, `Release image ${image.manifest.rootHash.slice(0, 12)}`, TIMEOUTS.quick).releaseImage({ root: image.manifest.rootHash });
  }

  let converged = false;
  let notConverging = false;
  let n = 0;
  while (n < maxRounds) {
    n++;
    const { figures, image } = await round(n, 'precopy');
    await releaseImage(image);
    if (figures.bytesSent <= convergeBytes) {
      converged = true;
      break;
    }
    if (input.policy) {
      // The round was a link sample too: predict again and let the policy (with its hysteresis) decide.
      const { decision } = await measureAndDecide({ ...input.policy, state: policyState }, { bytes: figures.bytesScanned });
      policyState = decision.state;
      if (decision.mode !== plan.mode) {
        modeSwitches.push({ round: n + 1, from: plan.mode, to: decision.mode, reason: decision.reason });
        const next = planFromDecision(decision.mode, decision.plan);
        // The chunking stays the volume's for the life of the migration: chunks cut another way
        // would miss everything the target already holds, and the next round would send the
        // volume again. Codec, streams and batch size follow the new mode. (Runs recorded before
        // the patch took the new mode's chunking.)
        plan = patched(FIXED_CHUNKING_PATCH) ? { ...next, chunkPreset: plan.chunkPreset } : next;
      }
    }
    // Not shrinking: the last two rounds each sent at least 90% of the one before.
    const prev = rounds.slice(-3);
    if (prev.length === 3 && prev[1]!.bytesSent >= 0.9 * prev[0]!.bytesSent && prev[2]!.bytesSent >= 0.9 * prev[1]!.bytesSent) {
      notConverging = true;
      break;
    }
  }
  if (!converged && !notConverging) notConverging = true;
  status = notConverging ? 'not converging' : 'converged';
  const wireBytes = () => rounds.reduce((a, r) => a + r.wireBytes, 0);
  const summary = { rounds, precopyRounds: n, converged, notConverging, plan, modeSwitches, ...(policyState ? { policyState } : {}) };
  if (input.final === false) {
    return { ...summary, volumeBytes: rounds.at(-1)?.bytesScanned ?? 0, wireBytes: wireBytes() };
  }
  // The final image is released by the caller once it no longer needs it: one activity fewer
  // inside a cut-over's downtime window.
  const final = await round(n + 1, 'final');
  status = 'done';
  return {
    ...summary,
    finalRoot: final.image.manifest.rootHash,
    volumeBytes: final.image.manifest.totalBytes,
    wireBytes: wireBytes(),
    frozenAtMs: final.image.frozenAtMs,
    digest: final.image.digest,
  };
}

/** The cut-over's two activities and its result, shared by both shapes (./cutover.ts). */
import type { ActivityCancellationType } from '@temporalio/workflow';
import type { FastProposalRequest } from '../../../activities/federation-propose';
import type { CapturedImage, SyncActivities } from '../../../activities/sync';
import type { TransferPlan } from '../../../core/transfer-plan';
import type { Migration } from '../context';
import { atSync, TIMEOUTS } from '../proxies';
import { TOKEN_TTL_SECONDS } from '../sync-volume';
import type { TargetInstance } from './start';

export type TargetCutover = Awaited<ReturnType<SyncActivities['cutoverTarget']>>;

export interface CutoverResult {
  image: CapturedImage;
  figures: TargetCutover['figures'];
  served: TargetCutover['served'];
  servingAtMs: number;
  /** The federation's answer to the placement the target proposed (fast cut-over only). */
  placement: TargetCutover['placement'];
}

/** What both shapes share: the run, the plan the sync ended with, and the target's pull arguments. */
export interface Cutover {
  m: Migration;
  plan: TransferPlan;
  pullArgs: ReturnType<typeof pullArgsOf>;
  /** The target instance booted in standby: what the placement will name. */
  target: TargetInstance;
}

export function pullArgsOf(m: Migration, plan: TransferPlan, round: number, target: TargetInstance) {
  return {
    source: m.v.source,
    plan,
    round,
    ttlSeconds: TOKEN_TTL_SECONDS,
    volumeId: m.v.volume.id,
    instance: target.instance,
    address: target.address,
  };
}

// The fast cut-over waits for a cancelled capture to end: the thaw in the compensations must
// come after the freeze, never before it.
export function freezeAndCapture(c: Cutover, publishAs?: string, cancellationType?: ActivityCancellationType): Promise<CapturedImage> {
  const { req, v } = c.m;
  return atSync(v.source, `Freeze ${req.workloadId} and capture its volume on ${v.source}`, { ...TIMEOUTS.freeze, ...(cancellationType ? { cancellationType } : {}) }).captureImage({
    volumeId: v.volume.id,
    preset: c.plan.chunkPreset,
    freeze: v.instance,
    ...(publishAs ? { publishAs } : {}),
  });
}

/** The target told the image: final delta, activate, check (the whole cut-over before the patch). */
export function targetToldImage(c: Cutover, image: CapturedImage, placement?: FastProposalRequest): Promise<TargetCutover> {
  const { req, v } = c.m;
  return atSync(v.target, `Final delta, activate ${req.workloadId} on ${v.target}, check ${image.digest!.keys === undefined ? 'its digest' : `${image.digest!.keys} keys`}`, TIMEOUTS.pull).cutoverTarget({
    ...c.pullArgs,
    endpoint: image.endpoint,
    root: image.manifest.rootHash,
    expected: image.digest!,
    ...(placement ? { placement } : {}),
  });
}

/** The final round's figures join the progress; the result carries what the later steps need. */
export function cutDone(c: Cutover, image: CapturedImage, done: TargetCutover): CutoverResult {
  c.m.runner.progress.rounds.push(done.figures);
  c.m.runner.progress.bytesTransferred += done.figures.wireBytes;
  if (done.figures.resentBytes) c.m.runner.progress.resentBytes = (c.m.runner.progress.resentBytes ?? 0) + done.figures.resentBytes;
  return { image, figures: done.figures, served: done.served, servingAtMs: done.servingAtMs, placement: done.placement };
}

/**
 * The fast cut-over (fast-cutover-v1): the target's activity starts beside the source's freeze and
 * long-polls the source's endpoint for the final image, instead of being scheduled once the
 * capture has returned. It also proposes the placement as soon as its workload is active and checked.
 */
import { ActivityCancellationType, ApplicationFailure, CancellationScope, log } from '@temporalio/workflow';
import type { CapturedImage } from '../../../activities/sync';
import { FailureType } from '../../../core/contracts/failures';
import type { FederationEntry } from '../../../core/consensus/entries';
import type { Migration } from '../context';
import { placementEntry, targetRecord } from '../records';
import { commitOpts, settleInLog } from '../federation-commit';
import { atSite, atSync, FAST_COMMIT_WAIT_MS, TIMEOUTS } from '../proxies';
import { cutDone, freezeAndCapture, targetToldImage, type Cutover, type CutoverResult, type TargetCutover } from './cutover-activities';
import { digestText } from '../../../core/migration';

export async function cutOverTogether(c: Cutover): Promise<CutoverResult> {
  const { m } = c;
  const { req, v } = m;
  // Looked up before the freeze: the target polls it for the image the freeze produces.
  const endpoint = await atSite(v.source, `Find the agent endpoint of ${v.source}`).agentEndpoint();
  const cutoverKey = `${m.key}/cutover`;
  // The target proposes the placement (under the request id the commit step uses) as soon as
  // its workload is active and verified to the source's digest. If the
  // cut-over fails once the image exists, the first compensation settles that proposal and
  // puts the placement back on the source. The target proposes only with the source's digest in
  // hand, which a capture that fails never announces (a service whose freeze stops it has its
  // image announced before its digest), so then nothing is sent (unless an earlier attempt of
  // that capture announced both and was lost before it completed, then a retry failed: not covered).
  let imageCaptured = false;
  const placement: FederationEntry = placementEntry(m, v.target, targetRecord(m, c.target));
  const placementRequest = {
    federation: v.federation,
    proposal: { entries: [placement], touches: [v.source], requestId: commitOpts(m, 'placement', 'commit').requestId! },
    waitMs: FAST_COMMIT_WAIT_MS,
  };
  m.saga.push('commit', async () => {
    if (!imageCaptured) return;
    await settleAndRevertPlacement(m, placement);
  });
  const targetScope = new CancellationScope();
  const targetDone = targetScope.run(() =>
    atSync(v.target, `Wait for the final image of ${v.source}; final delta, activate ${req.workloadId} on ${v.target}, check every key`, {
      ...TIMEOUTS.pull,
      cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    }).cutoverTarget({
      ...c.pullArgs,
      endpoint,
      awaitFinal: cutoverKey,
      placement: placementRequest,
    }),
  );
  // Handled below; this keeps an early failure from counting as unhandled meanwhile.
  targetDone.catch(() => undefined);
  let image: CapturedImage;
  try {
    image = await freezeAndCapture(c, cutoverKey, ActivityCancellationType.WAIT_CANCELLATION_COMPLETED);
  } catch (err) {
    // No image is coming: stop the waiting target (and wait until it has stopped).
    targetScope.cancel();
    await targetDone.catch(() => undefined);
    throw err;
  }
  m.finalRoot = image.manifest.rootHash;
  imageCaptured = true;
  let done: TargetCutover;
  if (image.endpoint !== endpoint) {
    // The source's agent came back on another address since it was asked: the target would
    // wait on the old one. Stop it and cut over in sequence, told the image.
    targetScope.cancel();
    await targetDone.catch(() => undefined);
    done = await targetToldImage(c, image, placementRequest);
  } else {
    done = await targetDone;
  }
  const want = image.digest!;
  // A target that waited names the image it took; one told the image took that one.
  if ((done.image && done.image.root !== image.manifest.rootHash) || done.served.keys !== want.keys || done.served.sha256 !== want.sha256) {
    throw ApplicationFailure.nonRetryable(
      `${v.target} cut over to image ${(done.image?.root ?? image.manifest.rootHash).slice(0, 12)} serving ${digestText(done.served)}, but ${v.source} froze image ${image.manifest.rootHash.slice(0, 12)} with ${digestText(want)}`,
      FailureType.DataMismatch,
    );
  }
  return cutDone(c, image, done);
}

/** The compensation for a placement the target may have proposed: settle it, then put the workload back on the source. */
async function settleAndRevertPlacement(m: Migration, placement: FederationEntry): Promise<void> {
  // First settle the target's proposal under its own request id: it joins it if it is
  // queued, is answered from the log's memory if it is done, or (if the target never sent
  // it) commits it now. Either way a copy sent late by a stray attempt of the target is
  // answered, not applied, and the revert below is the last word.
  try {
    const placed = await settleInLog(m, [placement], 'placement', 'commit', true);
    if (placed.rejected.length) return;
  } catch (err) {
    // Still queued (no quorum) or unreachable: the revert is queued behind it all the same.
    log.warn('placement not settled before its revert', { error: String(err) });
  }
  // Not allowRejected: a revert the log refuses (the source's slot taken meanwhile) must
  // show as a failed compensation, not pass for one that worked.
  await settleInLog(m, [placementEntry(m, m.v.source, m.v.record)], 'placement-revert', 'commit', false);
}

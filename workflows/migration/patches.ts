/**
 * The shapes of migrateWorkload that have shipped, and the two patches that tell them apart.
 *
 * | shape | reserve / commit steps        | cut-over                          | route switch        |
 * |-------|-------------------------------|-----------------------------------|---------------------|
 * | v1    | skipped                       | in sequence (capture, then target) | task-queue activity |
 * | v2    | committed by signal           | in sequence                       | local activity      |
 * | v3    | by update first, then signal  | together (target waits beside the freeze) | local activity |
 * | v4    | by update only (one way)      | together                          | local activity      |
 *
 * Recorded histories of all four replay (test/histories/migrate-kv-demo.v1..v4-*.json), so the
 * points where `patched()` is called must not move: all are asked once, right after validation.
 *
 * How old shapes are carried (decided in issue 12): with `patched()` branches, named here, not with
 * Worker Versioning. Pinning each run to the build that started it would let the code hold one
 * shape, but it needs a deployment that keeps every older build polling until its last run ends,
 * and the embedded stack is one worker process that restarts in place (`fedflow up`, `npm start`):
 * after an upgrade nothing would serve the pinned runs. A patch keeps one worker able to finish
 * any run it finds. The cost, a branch per shape, is kept readable by giving each shape's steps a
 * name (cutOverInSequence / cutOverTogether, commitBySignal / commitFast) and by retiring a shape
 * with `deprecatePatch()` once no run of it can be open (a retention period after the release that
 * replaced it), together with its recorded histories.
 */
import { patched } from '@temporalio/workflow';

/**
 * Patch: the target's reservation and the cut-over's placement are committed through the
 * federation log (steps `reserve` and `commit`). Runs recorded before it replay without them.
 */
export const FEDERATION_COMMITS_PATCH = 'federation-commits-v1';
/**
 * Patch: fewer trips through the server inside the downtime window.
 * - The target's cut-over activity starts beside the source's freeze and long-polls the source's
 *   endpoint for the final image, instead of being scheduled once the capture has returned.
 * - Reservation and placement are proposed by update from a local activity first (the answer
 *   comes back in the same call), and by signal only if that gives no answer within
 *   FAST_COMMIT_WAIT_MS; the route switch follows in the same workflow task.
 */
export const FAST_CUTOVER_PATCH = 'fast-cutover-v1';

/**
 * Patch: every proposal of the run goes one way, by update through the `proposeFast` activity
 * under one request id per change (the target's cut-over sends the placement the same way, under
 * the id the commit step waits on); a wait that gives up sends the same request again. No signal
 * path, no reply handlers in the migration. Compensations (release, settle, revert) too.
 */
export const UPDATE_COMMITS_PATCH = 'update-commits-v1';

export interface Shape {
  /** v2 and v3: the reservation and the placement go through the federation log. */
  readonly federationCommits: boolean;
  /** v3: commits propose by update first, and the cut-over runs source and target together. */
  readonly fastCutover: boolean;
  /** v4: every proposal by update only (no signal path). */
  readonly commitsByUpdate: boolean;
}

/** Asks the patches, in this order, once per run (each only if the one before it holds). */
export function workflowShape(): Shape {
  const federationCommits = patched(FEDERATION_COMMITS_PATCH);
  // Runs recorded before the patch commit by signal only and cut over in sequence.
  const fastCutover = federationCommits && patched(FAST_CUTOVER_PATCH);
  // Runs recorded before it fall back to the signal path when the update gives no answer.
  const commitsByUpdate = fastCutover && patched(UPDATE_COMMITS_PATCH);
  return { federationCommits, fastCutover, commitsByUpdate };
}

/**
 * The shapes of migrateWorkload that have shipped, and the two patches that tell them apart.
 *
 * | shape | reserve / commit steps        | cut-over                          | route switch        |
 * |-------|-------------------------------|-----------------------------------|---------------------|
 * | v1    | skipped                       | in sequence (capture, then target) | task-queue activity |
 * | v2    | committed by signal           | in sequence                       | local activity      |
 * | v3    | by update first, then signal  | together (target waits beside the freeze) | local activity |
 *
 * Recorded histories of all three replay (test/histories/migrate-kv-demo.v1..v3-*.json), so the
 * points where `patched()` is called must not move: both are asked once, right after validation.
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

export interface Shape {
  /** v2 and v3: the reservation and the placement go through the federation log. */
  readonly federationCommits: boolean;
  /** v3: commits propose by update first, and the cut-over runs source and target together. */
  readonly fastCutover: boolean;
}

/** Asks the patches, in this order, once per run (fast-cutover-v1 only if federation-commits-v1). */
export function workflowShape(): Shape {
  const federationCommits = patched(FEDERATION_COMMITS_PATCH);
  // Runs recorded before the patch commit by signal only and cut over in sequence.
  const fastCutover = federationCommits && patched(FAST_CUTOVER_PATCH);
  return { federationCommits, fastCutover };
}

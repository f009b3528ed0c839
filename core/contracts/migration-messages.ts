/** The migration's messages, defined once so the workflow, the client SDK and tests agree on names. */
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { MigrationProgress, RoundSummary } from '../migration';

export const progressQuery = defineQuery<MigrationProgress>('progress');
export const pauseSignal = defineSignal('pause');
export const resumeSignal = defineSignal('resume');
/** A signal rather than Temporal's own cancel, so a caller can ask for a clean roll-back with a reason. */
export const cancelSignal = defineSignal<[reason?: string]>('cancel');
/** From the syncVolume child to its parent, after each round. */
export const roundSignal = defineSignal<[RoundSummary]>('syncRound');

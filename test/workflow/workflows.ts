/**
 * The workflow tier's bundle: the production migration (and its child syncVolume) as the control
 * worker registers them. The federation log is faked behind the activities it is reached through
 * (./mock-world.ts): a migration proposes only by update, from an activity.
 */
export { migrateWorkload, syncVolume } from '../../workflows';

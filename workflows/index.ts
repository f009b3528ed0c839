// The workflows the control worker registers. Nothing but the worker's bundle imports this folder.
export { migrateWorkload } from './migrate';
export { syncVolume } from './sync-volume';

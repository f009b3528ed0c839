// The workflows the control worker registers. Nothing but the worker's bundle imports this folder.
export { migrateWorkload } from './migrate';
export { syncVolume } from './sync-volume';
export { federation } from './federation';
export { commitProposal } from './commit-proposal';
export { federationActivityRtt } from './federation-bench';
export { federationCommitProbe } from './federation-bench';

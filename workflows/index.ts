// The workflows the control worker registers: production's only (tests and the benchmark add their
// probes in test/helpers/probe-workflows.ts). Nothing but a worker's bundle imports this folder.
export { migrateWorkload } from './migration/migrate-workload';
export { syncVolume } from './migration/sync-volume';
export { federation } from './federation/federation';
export { commitProposal } from './federation/commit-proposal';

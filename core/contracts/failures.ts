/**
 * Every failure type fedflow's workflows and activities raise, in one catalogue: the workflows
 * compare types with these names (they cannot import activities/), the client and CLI report
 * them, and tests assert them. Bad input and impossible requests are never retried.
 *
 * Provider errors (throttling, auth, quota, not found) keep their own catalogue beside the
 * adapters, which map them (adapters/ → activities/provider-failure.ts).
 */
import { ApplicationFailure } from '@temporalio/common';

export const FailureType = {
  // The migration request and its validation.
  InvalidRequest: 'InvalidMigrationRequest',
  UnknownSite: 'UnknownSite',
  SameSite: 'SameSourceAndTarget',
  UnknownWorkload: 'UnknownWorkload',
  AlreadyMigrating: 'AlreadyMigrating',
  NoCapacity: 'NoCapacity',
  WrongWorkflowId: 'WrongWorkflowId',
  NotInWorkflow: 'NotInWorkflow',
  InvalidSyncRequest: 'InvalidSyncRequest',
  // The cut-over and the transfer.
  DataMismatch: 'DataMismatch',
  Cancelled: 'MigrationCancelled',
  TransferRefused: 'TransferRefused',
  ChunkCorrupt: 'ChunkCorrupt',
  // Workloads: their spec, and the runner that starts them and runs their hooks at a site.
  InvalidWorkloadSpec: 'InvalidWorkloadSpec',
  WorkloadExists: 'WorkloadExists',
  VolumeOutsideSite: 'VolumeOutsideSite',
  WorkloadNotInstalled: 'WorkloadNotInstalled',
  WorkloadStartFailed: 'WorkloadStartFailed',
  WorkloadUnhealthy: 'WorkloadUnhealthy',
  WorkloadHookFailed: 'WorkloadHookFailed',
  WorkloadHookTimeout: 'WorkloadHookTimeout',
  // The federation log.
  FederationUnavailable: 'FederationUnavailable',
  FederationNotRunning: 'FederationNotRunning',
  FederationChangeRejected: 'FederationChangeRejected',
  FederationChangeFailed: 'FederationChangeFailed',
  FederationCommitTimeout: 'FederationCommitTimeout',
  InvalidFederation: 'InvalidFederation',
  InvalidProposal: 'InvalidProposal',
  RequestIdReused: 'RequestIdReused',
  LeaderSuperseded: 'LeaderSuperseded',
  // Consensus messages delivered to a site's agent.
  MissingPublicKey: 'MissingPublicKey',
  MisroutedConsensusMessage: 'MisroutedConsensusMessage',
  NotAMember: 'NotAMember',
  ViewMembersChanged: 'ViewMembersChanged',
} as const;
export type FailureType = (typeof FailureType)[keyof typeof FailureType];

/** A failure Temporal must not retry: the request itself is wrong, so a retry would fail the same way. */
export function badRequest(type: FailureType, message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, type);
}

/** Failure types of fedflow activities: bad input and impossible requests are never retried. */
import { ApplicationFailure } from '@temporalio/common';

export const FailureType = {
  InvalidRequest: 'InvalidMigrationRequest',
  UnknownSite: 'UnknownSite',
  SameSite: 'SameSourceAndTarget',
  UnknownWorkload: 'UnknownWorkload',
  AlreadyMigrating: 'AlreadyMigrating',
  NoCapacity: 'NoCapacity',
  WrongWorkflowId: 'WrongWorkflowId',
  DataMismatch: 'DataMismatch',
  Cancelled: 'MigrationCancelled',
  FederationUnavailable: 'FederationUnavailable',
} as const;
export type FailureType = (typeof FailureType)[keyof typeof FailureType];

export function badRequest(type: FailureType, message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, type);
}

/**
 * The federation log, read and changed from outside a workflow: what `fedflow sites` and
 * `fedflow workloads` show, and how a workload enters or leaves the federation. The log is the
 * one record of where workloads run and what sites hold; this file only asks it and proposes to it.
 */
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { CommittedState, FederationEntry, WorkloadRecord } from '../core/consensus/entries';
import { committedStateQuery, membershipQuery, proposeUpdate, type Membership, type ProposalResult } from '../core/contracts/federation';
import { FailureType } from '../core/contracts/failures';
import { federationWorkflowId } from '../core/contracts/task-queues';

/** An error for a person: `message` says what was wrong and what would be right; `type` is machine-readable. */
export class FedflowError extends Error {
  constructor(
    message: string,
    readonly type: string,
    /** One line per problem, when there are several (an invalid workload spec); else the message. */
    readonly problems: string[] = [message],
  ) {
    super(message);
    this.name = 'FedflowError';
  }
}

export interface FederationView {
  name: string;
  committed: CommittedState;
  membership: Membership;
}

/** A workload as the log places it. */
export interface PlacedWorkload extends WorkloadRecord {
  id: string;
  site: string;
}

export class FederationLog {
  constructor(
    private readonly client: Client,
    readonly name: string,
  ) {}

  private handle() {
    return this.client.workflow.getHandle(federationWorkflowId(this.name));
  }

  /** The committed state and the membership, as the federation workflow holds them now. */
  async view(): Promise<FederationView> {
    try {
      const [committed, membership] = await Promise.all([this.handle().query(committedStateQuery), this.handle().query(membershipQuery)]);
      return { name: this.name, committed, membership };
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) {
        throw new FedflowError(`the federation '${this.name}' is not running (no workflow ${federationWorkflowId(this.name)}); start a control worker (\`fedflow up\` or \`fedflow worker\`)`, FailureType.FederationNotRunning);
      }
      throw err;
    }
  }

  /** Every workload the log places, with its record (a workload placed before records existed has none: skipped). */
  async workloads(): Promise<PlacedWorkload[]> {
    const { committed } = await this.view();
    return placedWorkloads(committed);
  }

  /**
   * Proposes entries and waits for their commit. An entry the log rejects (it is recorded, and
   * changes nothing) is an error naming the log's reason.
   */
  async propose(entries: FederationEntry[], requestId?: string): Promise<ProposalResult> {
    let r: ProposalResult;
    try {
      r = await this.handle().executeUpdate(proposeUpdate, { args: [{ entries, ...(requestId ? { requestId } : {}) }] });
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) {
        throw new FedflowError(`the federation '${this.name}' is not running; start a control worker (\`fedflow up\` or \`fedflow worker\`)`, FailureType.FederationNotRunning);
      }
      throw err;
    }
    if (r.rejected.length) {
      throw new FedflowError(`the federation log rejected it: ${r.rejected.map((x) => x.reason).join('; ')}`, FailureType.FederationChangeRejected);
    }
    return r;
  }

  /** Registers a workload, placed at once on `site` with what it runs on there. */
  addWorkload(workload: string, site: string, record: WorkloadRecord, requestId?: string): Promise<ProposalResult> {
    return this.propose([{ kind: 'workload', op: 'add', workload, site, record }], requestId);
  }

  /** Takes a workload out of the federation (its instance is stopped by the caller). */
  removeWorkload(workload: string, site: string): Promise<ProposalResult> {
    return this.propose([{ kind: 'workload', op: 'remove', workload, site }]);
  }
}

export function placedWorkloads(committed: CommittedState): PlacedWorkload[] {
  return Object.entries(committed.placements)
    .filter(([id]) => committed.workloads?.[id])
    .map(([id, site]) => ({ id, site, ...committed.workloads![id]! }))
    .sort((a, b) => a.id.localeCompare(b.id));
}

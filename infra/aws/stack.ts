/**
 * One CloudFormation stack through @aws-sdk/client-cloudformation, the way `aws cloudformation
 * deploy` drives it: a change set shows what would change (`plan`), is executed for `up` (or
 * deleted when it holds no change, so a second `up` changes nothing), and `down` deletes the stack.
 *
 * A failed create is rolled back by CloudFormation (ROLLBACK_COMPLETE); the stack that is left
 * holds no resources but blocks the name, so it is deleted too and nothing remains. A provider
 * that does not roll back (CREATE_FAILED) has its stack deleted the same way, with what it made.
 * The error names the first resource that failed and the provider's reason (DescribeStackEvents).
 */
import {
  CloudFormationClient,
  CreateChangeSetCommand,
  DeleteChangeSetCommand,
  DeleteStackCommand,
  DescribeChangeSetCommand,
  DescribeStackEventsCommand,
  DescribeStacksCommand,
  ExecuteChangeSetCommand,
  ListStackResourcesCommand,
  type Change as CfnChange,
  type Stack,
  type StackEvent,
} from '@aws-sdk/client-cloudformation';
import { InfraError, type Change, type InfraAction, type InfraResult } from '../plan';

export interface AwsStackOptions {
  client: CloudFormationClient;
  stackName: string;
  template: object;
  /** Who the stack is for, in messages: the site id. */
  site: string;
  pollMs?: number;
  timeoutMs?: number;
}

/**
 * Status of a stack that is gone, never held resources, or is a failed create (which cannot be
 * updated): `up` deletes it, with what it holds, and starts afresh.
 */
const DEAD = new Set(['DELETE_COMPLETE', 'ROLLBACK_COMPLETE', 'REVIEW_IN_PROGRESS', 'ROLLBACK_FAILED', 'CREATE_FAILED']);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The credential chain of the SDK's default provider, as docs/infra-permissions.md lists it. */
export const AWS_CREDENTIAL_CHAIN =
  'environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), the shared config and credentials files (AWS_PROFILE or the site\'s settings.profile; SSO and process credentials there), a web identity token (AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN), ECS container credentials, EC2 instance metadata (IMDS)';

export function awsError(err: unknown, what: string, site: string): InfraError {
  const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  if (e.name === 'CredentialsProviderError' || /Could not load credentials/i.test(e.message ?? '')) {
    return new InfraError(`aws ${what} for site '${site}': no AWS credentials found; the SDK's default chain tried: ${AWS_CREDENTIAL_CHAIN}. Set one of them (e.g. AWS_PROFILE=fedflow with aws configure --profile fedflow)`, 'MissingCredentials', undefined, { cause: err });
  }
  const status = e.$metadata?.httpStatusCode ? ` (HTTP ${e.$metadata.httpStatusCode})` : '';
  return new InfraError(`aws ${what} for site '${site}' failed: ${e.name ?? 'Error'}${status}: ${e.message ?? String(err)}`, 'ProviderError', undefined, { cause: err });
}

export class AwsStack {
  constructor(private readonly o: AwsStackOptions) {}

  private async send<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw awsError(err, what, this.o.site);
    }
  }

  /** The live stack, or undefined when there is none (CloudFormation answers ValidationError "does not exist"). */
  async describe(name: string = this.o.stackName): Promise<Stack | undefined> {
    try {
      const out = await this.o.client.send(new DescribeStacksCommand({ StackName: name }));
      return out.Stacks?.[0];
    } catch (err) {
      if ((err as { name?: string }).name === 'ValidationError' && /does not exist/.test((err as Error).message)) return undefined;
      throw awsError(err, `DescribeStacks(${name})`, this.o.site);
    }
  }

  async run(action: InfraAction): Promise<InfraResult> {
    if (action === 'down') return this.down();
    let stack = await this.describe();
    if (stack && DEAD.has(stack.StackStatus ?? '')) {
      // A stack a failed create or an interrupted plan left behind: it holds nothing, but blocks the name.
      if (action === 'plan') stack = undefined;
      else {
        await this.deleteAndWait(stack.StackId!);
        stack = undefined;
      }
    }
    const type = stack ? 'UPDATE' : 'CREATE';
    const changeSetName = `fedflow-${action}-${Date.now()}`;
    const created = await this.send('CreateChangeSet', () =>
      this.o.client.send(
        new CreateChangeSetCommand({
          StackName: this.o.stackName,
          ChangeSetName: changeSetName,
          ChangeSetType: type,
          TemplateBody: JSON.stringify(this.o.template),
          // The template names its IAM role's policy: CloudFormation wants that acknowledged.
          Capabilities: ['CAPABILITY_IAM', 'CAPABILITY_NAMED_IAM'],
          Tags: [{ Key: 'fedflow-stack', Value: this.o.stackName }],
          Description: `fedflow infra ${action}`,
        }),
      ),
    );
    const csId = created.Id!;
    const cs = await this.waitForChangeSet(csId);
    const empty = cs.status === 'FAILED' && /didn't contain changes|No updates are to be performed/i.test(cs.reason);
    if (cs.status === 'FAILED' && !empty) {
      await this.discardChangeSet(csId, type, created.StackId);
      throw new InfraError(`aws stack ${this.o.stackName} (site '${this.o.site}'): the change set was refused: ${cs.reason}`, 'StackFailed');
    }
    const existing = stack ? await this.resources() : [];
    const changes = toChanges(cs.changes, existing);
    if (action === 'plan' || empty) {
      await this.discardChangeSet(csId, type, created.StackId);
      return { target: 'aws', action, changes, outputs: stack ? { ...(await this.physicalIds()), ...outputsOf(stack) } : undefined };
    }
    try {
      await this.o.client.send(new ExecuteChangeSetCommand({ ChangeSetName: csId, StackName: this.o.stackName }));
    } catch (err) {
      // CloudFormation accepts the execution and reports resource failures through the stack's
      // events; an emulator may instead fail the call itself (moto 5.2.5 does, and leaves what it
      // made). Either way a new stack must leave nothing, so it is deleted, with what it holds.
      const e = awsError(err, 'ExecuteChangeSet', this.o.site);
      if (type !== 'CREATE' || e.type === 'MissingCredentials') throw e;
      await this.deleteAndWait(created.StackId ?? this.o.stackName);
      throw new InfraError(`aws stack ${this.o.stackName} (site '${this.o.site}') create failed: ${e.message.replace(/^aws ExecuteChangeSet for site '[^']*' failed: /, '')} (the provider failed ExecuteChangeSet itself and named no resource); nothing was rolled back, so the stack was deleted with what it had made, nothing is left`, 'StackFailed', undefined, { cause: err });
    }
    const done = await this.waitForStack(created.StackId ?? this.o.stackName, type === 'CREATE' ? 'CREATE' : 'UPDATE');
    return { target: 'aws', action, changes, outputs: { ...(await this.physicalIds()), ...outputsOf(done) } };
  }

  private async down(): Promise<InfraResult> {
    const stack = await this.describe();
    if (!stack) return { target: 'aws', action: 'down', changes: [{ action: 'keep', kind: 'AWS::CloudFormation::Stack', name: this.o.stackName, detail: 'not there' }] };
    const resources = await this.resources();
    await this.deleteAndWait(stack.StackId!);
    return {
      target: 'aws',
      action: 'down',
      changes: [...resources.map((r): Change => ({ action: 'delete', kind: r.type, name: r.logicalId })), { action: 'delete', kind: 'AWS::CloudFormation::Stack', name: this.o.stackName }],
    };
  }

  private async resources(): Promise<{ logicalId: string; type: string; physicalId?: string }[]> {
    const out: { logicalId: string; type: string; physicalId?: string }[] = [];
    let token: string | undefined;
    do {
      const page = await this.send('ListStackResources', () => this.o.client.send(new ListStackResourcesCommand({ StackName: this.o.stackName, NextToken: token })));
      for (const r of page.StackResourceSummaries ?? []) if (r.ResourceStatus !== 'DELETE_COMPLETE') out.push({ logicalId: r.LogicalResourceId!, type: r.ResourceType!, physicalId: r.PhysicalResourceId });
      token = page.NextToken;
    } while (token);
    return out;
  }

  /**
   * Each resource's physical id by its logical id (Vpc: vpc-..., AgentInstance: i-...). The
   * template's Outputs say the same; these also come back from emulators that skip Outputs after
   * a change set (moto 5.2.5).
   */
  private async physicalIds(): Promise<Record<string, string>> {
    return Object.fromEntries((await this.resources()).filter((r) => r.physicalId).map((r) => [r.logicalId, r.physicalId!]));
  }

  /** Deletes a change set; for a CREATE one, also the empty REVIEW_IN_PROGRESS stack it made. */
  private async discardChangeSet(csId: string, type: string, stackId: string | undefined): Promise<void> {
    await this.send('DeleteChangeSet', () => this.o.client.send(new DeleteChangeSetCommand({ ChangeSetName: csId, StackName: this.o.stackName })));
    if (type === 'CREATE' && stackId) await this.deleteAndWait(stackId);
  }

  private async waitForChangeSet(id: string): Promise<{ status: string; reason: string; changes: CfnChange[] }> {
    const deadline = Date.now() + (this.o.timeoutMs ?? 600_000);
    for (;;) {
      const changes: CfnChange[] = [];
      let token: string | undefined;
      let status = '';
      let reason = '';
      do {
        const page = await this.send('DescribeChangeSet', () => this.o.client.send(new DescribeChangeSetCommand({ ChangeSetName: id, StackName: this.o.stackName, NextToken: token })));
        status = page.Status ?? '';
        reason = page.StatusReason ?? '';
        changes.push(...(page.Changes ?? []));
        token = page.NextToken;
      } while (token);
      if (status === 'CREATE_COMPLETE' || status === 'FAILED') return { status, reason, changes };
      if (Date.now() > deadline) throw new InfraError(`aws stack ${this.o.stackName}: change set ${id} still ${status} after ${(this.o.timeoutMs ?? 600_000) / 1000} s`, 'ProviderError');
      await sleep(this.o.pollMs ?? 2_000);
    }
  }

  private async waitForStack(stackId: string, op: 'CREATE' | 'UPDATE'): Promise<Stack> {
    const deadline = Date.now() + (this.o.timeoutMs ?? 1_800_000);
    for (;;) {
      const s = await this.describe(stackId);
      const status = s?.StackStatus ?? 'DELETE_COMPLETE';
      if (status === `${op}_COMPLETE`) return s!;
      if (!status.endsWith('_IN_PROGRESS') || status === 'UPDATE_COMPLETE_CLEANUP_IN_PROGRESS') {
        if (status === 'UPDATE_COMPLETE_CLEANUP_IN_PROGRESS') {
          await sleep(this.o.pollMs ?? 2_000);
          continue;
        }
        throw await this.failure(stackId, status, op);
      }
      if (Date.now() > deadline) throw new InfraError(`aws stack ${this.o.stackName} (site '${this.o.site}') still ${status} after ${(this.o.timeoutMs ?? 1_800_000) / 1000} s; see its events in the CloudFormation console`, 'ProviderError');
      await sleep(this.o.pollMs ?? 2_000);
    }
  }

  /** The error for a stack that ended in failure, naming the first resource that failed; a failed create is removed. */
  private async failure(stackId: string, status: string, op: 'CREATE' | 'UPDATE'): Promise<InfraError> {
    const events: StackEvent[] = [];
    let token: string | undefined;
    do {
      const page = await this.send('DescribeStackEvents', () => this.o.client.send(new DescribeStackEventsCommand({ StackName: stackId, NextToken: token })));
      events.push(...(page.StackEvents ?? []));
      token = page.NextToken;
    } while (token);
    // Events come newest first; the cause is the oldest resource failure that is not a cancellation.
    const cause = events
      .slice()
      .reverse()
      .find((e) => e.ResourceStatus?.endsWith('_FAILED') && e.LogicalResourceId !== this.o.stackName && !/cancelled/i.test(e.ResourceStatusReason ?? ''));
    const what = cause ? `resource ${cause.LogicalResourceId} (${cause.ResourceType}) failed: ${cause.ResourceStatusReason ?? 'no reason given'}` : `no resource event says why (status ${status})`;
    let after = '';
    if (op === 'CREATE') {
      // CloudFormation rolls the resources back and leaves an empty ROLLBACK_COMPLETE stack; a
      // provider that does not (rollback disabled, or moto: CREATE_FAILED) leaves what it made.
      // Either way the stack is deleted, with whatever it still holds, so nothing remains.
      await this.deleteAndWait(stackId);
      after =
        status === 'CREATE_FAILED'
          ? '; the provider did not roll back (CREATE_FAILED), so the stack was deleted with what it had made, nothing is left'
          : '; the stack was rolled back and deleted, nothing is left';
    } else {
      after = `; CloudFormation rolled the stack back to its previous template (${status})`;
    }
    return new InfraError(`aws stack ${this.o.stackName} (site '${this.o.site}') ${op.toLowerCase()} failed: ${what}${after}`, 'StackFailed');
  }

  private async deleteAndWait(stackId: string): Promise<void> {
    await this.send('DeleteStack', () => this.o.client.send(new DeleteStackCommand({ StackName: stackId })));
    const deadline = Date.now() + (this.o.timeoutMs ?? 1_800_000);
    for (;;) {
      const s = await this.describe(stackId);
      const status = s?.StackStatus ?? 'DELETE_COMPLETE';
      if (status === 'DELETE_COMPLETE') return;
      if (status === 'DELETE_FAILED') {
        const err = await this.failure(stackId, status, 'UPDATE').catch((e: unknown) => e as InfraError);
        throw new InfraError(`aws stack ${this.o.stackName} (site '${this.o.site}') could not be deleted: ${err.message.replace(/^.*failed: /, '')}; run down again once the cause is fixed`, 'StackFailed');
      }
      if (Date.now() > deadline) throw new InfraError(`aws stack ${this.o.stackName} still ${status} after the timeout; run down again`, 'ProviderError');
      await sleep(this.o.pollMs ?? 2_000);
    }
  }
}

function outputsOf(s: Stack): Record<string, string> {
  return Object.fromEntries((s.Outputs ?? []).filter((o) => o.OutputKey && o.OutputValue !== undefined).map((o) => [o.OutputKey!, o.OutputValue!]));
}

function toChanges(cs: CfnChange[], existing: { logicalId: string; type: string }[]): Change[] {
  const out: Change[] = [];
  const touched = new Set<string>();
  for (const c of cs) {
    const r = c.ResourceChange;
    if (!r?.LogicalResourceId) continue;
    touched.add(r.LogicalResourceId);
    const action = r.Action === 'Add' ? 'create' : r.Action === 'Remove' ? 'delete' : 'update';
    out.push({ action, kind: r.ResourceType ?? '?', name: r.LogicalResourceId, detail: r.Replacement === 'True' ? 'replaced' : undefined });
  }
  for (const r of existing) if (!touched.has(r.logicalId)) out.push({ action: 'keep', kind: r.type, name: r.logicalId });
  return out;
}

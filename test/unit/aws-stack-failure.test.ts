/**
 * How infra/aws/stack.ts reads a failure the way CloudFormation reports it: ExecuteChangeSet is
 * accepted, the stack ends in ROLLBACK_COMPLETE, and its events (newest first) hold the resource
 * that failed with the provider's reason, then cancellations of the others. moto does not roll
 * back (test/infra/aws.test.ts covers, over the wire, its CREATE_FAILED stack through
 * scripts/moto-cfn-events.py, and stock moto failing ExecuteChangeSet itself), so the rollback
 * shape is played by a stand-in client that answers each command in process with
 * CloudFormation's documented responses.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import { AwsStack } from '../../infra/aws/stack';
import { InfraError } from '../../infra/plan';

const STACK_ID = 'arn:aws:cloudformation:us-east-1:123456789012:stack/fedflow-x-us-east-1/1';

function cloudFormationThatRollsBack() {
  const calls: string[] = [];
  let status = 'REVIEW_IN_PROGRESS';
  let describes = 0;
  const events = [
    { LogicalResourceId: 'fedflow-x-us-east-1', ResourceType: 'AWS::CloudFormation::Stack', ResourceStatus: 'ROLLBACK_COMPLETE' },
    { LogicalResourceId: 'Vpc', ResourceType: 'AWS::EC2::VPC', ResourceStatus: 'DELETE_COMPLETE' },
    { LogicalResourceId: 'AgentRole', ResourceType: 'AWS::IAM::Role', ResourceStatus: 'CREATE_FAILED', ResourceStatusReason: 'Resource creation cancelled' },
    { LogicalResourceId: 'AgentInstance', ResourceType: 'AWS::EC2::Instance', ResourceStatus: 'CREATE_FAILED', ResourceStatusReason: "The instance type 'zz9.nano' does not exist (Service: Ec2, Status Code: 400)" },
    { LogicalResourceId: 'Vpc', ResourceType: 'AWS::EC2::VPC', ResourceStatus: 'CREATE_COMPLETE' },
  ];
  const client = {
    send: async (cmd: { constructor: { name: string } }) => {
      const name = cmd.constructor.name.replace(/Command$/, '');
      calls.push(name);
      switch (name) {
        case 'DescribeStacks':
          if (status === 'GONE') throw Object.assign(new Error(`Stack with id ${STACK_ID} does not exist`), { name: 'ValidationError' });
          if (calls.filter((c) => c === 'DescribeStacks').length === 1) throw Object.assign(new Error('Stack with id fedflow-x-us-east-1 does not exist'), { name: 'ValidationError' });
          // After ExecuteChangeSet: in progress once, then rolled back.
          if (status === 'CREATE_IN_PROGRESS' && ++describes > 1) status = 'ROLLBACK_COMPLETE';
          if (status === 'DELETE_IN_PROGRESS') status = 'GONE';
          return { Stacks: [{ StackId: STACK_ID, StackName: 'fedflow-x-us-east-1', StackStatus: status === 'GONE' ? 'DELETE_COMPLETE' : status }] };
        case 'CreateChangeSet':
          return { Id: 'cs-1', StackId: STACK_ID };
        case 'DescribeChangeSet':
          return { Status: 'CREATE_COMPLETE', Changes: [{ ResourceChange: { Action: 'Add', LogicalResourceId: 'Vpc', ResourceType: 'AWS::EC2::VPC' } }] };
        case 'ExecuteChangeSet':
          status = 'CREATE_IN_PROGRESS';
          return {};
        case 'DescribeStackEvents':
          return { StackEvents: events };
        case 'DeleteStack':
          status = 'DELETE_IN_PROGRESS';
          return {};
        default:
          throw new Error(`unexpected ${name}`);
      }
    },
  } as unknown as CloudFormationClient;
  return { client, calls };
}

describe('aws stack: a create CloudFormation rolled back', () => {
  it('names the resource that failed and the reason, skips the cancellations, and deletes the rolled-back stack', async () => {
    const { client, calls } = cloudFormationThatRollsBack();
    const stack = new AwsStack({ client, stackName: 'fedflow-x-us-east-1', template: {}, site: 'aws:us-east-1', pollMs: 1 });
    await assert.rejects(stack.run('up'), (err: unknown) => {
      assert.ok(err instanceof InfraError);
      assert.equal(err.type, 'StackFailed');
      assert.equal(
        err.message,
        "aws stack fedflow-x-us-east-1 (site 'aws:us-east-1') create failed: resource AgentInstance (AWS::EC2::Instance) failed: The instance type 'zz9.nano' does not exist (Service: Ec2, Status Code: 400); the stack was rolled back and deleted, nothing is left",
      );
      return true;
    });
    assert.deepEqual(calls.slice(-3), ['DescribeStackEvents', 'DeleteStack', 'DescribeStacks']);
  });
});

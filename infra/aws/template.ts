/**
 * The CloudFormation template of one AWS site, hand-written as data: a VPC and a public subnet
 * (internet gateway and route, so the agent reaches Temporal and its peers), a security group
 * admitting the agent port from the other sites' ranges only, the agent's IAM role and instance
 * profile allowed only the EC2 calls adapters/aws makes (docs/infra-permissions.md), a launch
 * template and the agent's instance booting agent/site/cloud-init.ts's user-data. With a
 * `controlWorker`, the stack also carries the serverless control worker: its role and function.
 *
 * Resources are listed in dependency order (each after what it refers to), as CloudFormation
 * creates them; the error of a failed create relies on it.
 *
 * Every value is baked in (no Parameters), so the same config always gives the same template and
 * a second `up` finds no change.
 */
import { SITE_TAG } from '../../adapters/aws/tokens';

export interface AwsSiteTemplateInput {
  stack: string;
  siteId: string;
  cidr: string;
  subnetCidr: string;
  agentPort: number;
  /** The other sites' ranges: the only sources the agent port admits. */
  peerCidrs: string[];
  imageId: string;
  instanceType: string;
  userData: string;
  /** An internet gateway and a default route (public subnet); without, the subnet is private. */
  internetGateway: boolean;
  controlWorker?: {
    codeBucket: string;
    codeKey: string;
    memoryMb: number;
    timeoutSeconds: number;
    /** Environment of the function: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, ... (no secrets). */
    environment: Record<string, string>;
    /** Temporal's identity that invokes the function (Serverless Workers), and its external id. */
    invoker?: { principalArn: string; externalId: string };
  };
}

/** The EC2 actions adapters/aws calls (docs/providers.md, "aws"), and nothing else. */
export const AGENT_EC2_ACTIONS = {
  /** Describe calls take no resource-level permissions. */
  anyResource: ['ec2:DescribeAccountAttributes', 'ec2:DescribeInstances', 'ec2:DescribeSnapshots', 'ec2:RunInstances', 'ec2:CreateTags', 'ec2:CreateSnapshot'],
  /** Lifecycle calls, only on instances tagged with this site. */
  siteInstances: ['ec2:StartInstances', 'ec2:StopInstances', 'ec2:TerminateInstances'],
} as const;

type Json = string | number | boolean | null | Json[] | { [k: string]: Json };

const ref = (name: string): Json => ({ Ref: name });
const getAtt = (name: string, attr: string): Json => ({ 'Fn::GetAtt': [name, attr] });
const sub = (s: string): Json => ({ 'Fn::Sub': s });

export function awsSiteTemplate(i: AwsSiteTemplateInput): Record<string, Json> {
  const tags = (name: string): Json => [
    { Key: 'Name', Value: `${i.stack}-${name}` },
    { Key: 'fedflow-stack', Value: i.stack },
    { Key: SITE_TAG, Value: i.siteId },
  ];
  const resources: Record<string, Json> = {
    Vpc: { Type: 'AWS::EC2::VPC', Properties: { CidrBlock: i.cidr, EnableDnsSupport: true, EnableDnsHostnames: true, Tags: tags('vpc') } },
    Subnet: { Type: 'AWS::EC2::Subnet', Properties: { VpcId: ref('Vpc'), CidrBlock: i.subnetCidr, MapPublicIpOnLaunch: i.internetGateway, Tags: tags('subnet') } },
    ...(i.internetGateway
      ? {
          InternetGateway: { Type: 'AWS::EC2::InternetGateway', Properties: { Tags: tags('igw') } },
          GatewayAttachment: { Type: 'AWS::EC2::VPCGatewayAttachment', Properties: { VpcId: ref('Vpc'), InternetGatewayId: ref('InternetGateway') } },
          RouteTable: { Type: 'AWS::EC2::RouteTable', Properties: { VpcId: ref('Vpc'), Tags: tags('routes') } },
          DefaultRoute: { Type: 'AWS::EC2::Route', DependsOn: 'GatewayAttachment', Properties: { RouteTableId: ref('RouteTable'), DestinationCidrBlock: '0.0.0.0/0', GatewayId: ref('InternetGateway') } },
          SubnetRoutes: { Type: 'AWS::EC2::SubnetRouteTableAssociation', Properties: { SubnetId: ref('Subnet'), RouteTableId: ref('RouteTable') } },
        }
      : {}),
    AgentSecurityGroup: {
      Type: 'AWS::EC2::SecurityGroup',
      Properties: {
        GroupDescription: `fedflow agent of ${i.siteId}: the chunk endpoint, from the other sites of the federation only`,
        VpcId: ref('Vpc'),
        SecurityGroupIngress: i.peerCidrs.map((c) => ({ IpProtocol: 'tcp', FromPort: i.agentPort, ToPort: i.agentPort, CidrIp: c, Description: 'fedflow agent port from a peer site' })),
        Tags: tags('agent'),
      },
    },
    AgentRole: {
      Type: 'AWS::IAM::Role',
      Properties: {
        Description: `fedflow agent of ${i.siteId}: the EC2 calls of adapters/aws only`,
        AssumeRolePolicyDocument: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }] },
        Policies: [
          {
            PolicyName: 'fedflow-agent-ec2',
            PolicyDocument: {
              Version: '2012-10-17',
              Statement: [
                { Sid: 'AdapterCalls', Effect: 'Allow', Action: [...AGENT_EC2_ACTIONS.anyResource], Resource: '*' },
                {
                  Sid: 'SiteInstanceLifecycle',
                  Effect: 'Allow',
                  Action: [...AGENT_EC2_ACTIONS.siteInstances],
                  Resource: sub('arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:instance/*'),
                  Condition: { StringEquals: { [`aws:ResourceTag/${SITE_TAG}`]: i.siteId } },
                },
              ],
            },
          },
        ],
        Tags: tags('agent-role'),
      },
    },
    AgentInstanceProfile: { Type: 'AWS::IAM::InstanceProfile', Properties: { Roles: [ref('AgentRole')] } },
    AgentLaunchTemplate: {
      Type: 'AWS::EC2::LaunchTemplate',
      Properties: {
        LaunchTemplateName: `${i.stack}-agent`,
        LaunchTemplateData: {
          ImageId: i.imageId,
          InstanceType: i.instanceType,
          IamInstanceProfile: { Arn: getAtt('AgentInstanceProfile', 'Arn') },
          SecurityGroupIds: [ref('AgentSecurityGroup')],
          UserData: { 'Fn::Base64': i.userData },
          // IMDSv2 only: the instance role's credentials are not readable by a plain GET.
          MetadataOptions: { HttpTokens: 'required', HttpEndpoint: 'enabled' },
          TagSpecifications: [{ ResourceType: 'instance', Tags: tags('agent') }],
        },
      },
    },
    AgentInstance: {
      Type: 'AWS::EC2::Instance',
      Properties: {
        LaunchTemplate: { LaunchTemplateId: ref('AgentLaunchTemplate'), Version: getAtt('AgentLaunchTemplate', 'LatestVersionNumber') },
        SubnetId: ref('Subnet'),
        // The same values as the launch template: an instance's own properties override it, and
        // emulators that do not read launch templates (moto) boot the same instance from these.
        ImageId: i.imageId,
        InstanceType: i.instanceType,
        IamInstanceProfile: ref('AgentInstanceProfile'),
        SecurityGroupIds: [ref('AgentSecurityGroup')],
        UserData: { 'Fn::Base64': i.userData },
        Tags: tags('agent'),
      },
    },
  };
  const outputs: Record<string, Json> = {
    VpcId: { Value: ref('Vpc') },
    SubnetId: { Value: ref('Subnet') },
    SecurityGroupId: { Value: getAtt('AgentSecurityGroup', 'GroupId') },
    InstanceId: { Value: ref('AgentInstance') },
    AgentRoleArn: { Value: getAtt('AgentRole', 'Arn') },
  };
  if (i.controlWorker) {
    const cw = i.controlWorker;
    resources.ControlWorkerRole = {
      Type: 'AWS::IAM::Role',
      Properties: {
        Description: 'fedflow serverless control worker: writes its logs, nothing else (it talks only to Temporal)',
        AssumeRolePolicyDocument: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' }] },
        Policies: [
          {
            PolicyName: 'fedflow-control-worker-logs',
            PolicyDocument: {
              Version: '2012-10-17',
              Statement: [
                { Effect: 'Allow', Action: ['logs:CreateLogGroup', 'logs:CreateLogStream', 'logs:PutLogEvents'], Resource: sub('arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/lambda/' + `${i.stack}-control-worker:*`) },
              ],
            },
          },
        ],
        Tags: tags('control-worker-role'),
      },
    };
    resources.ControlWorkerFunction = {
      Type: 'AWS::Lambda::Function',
      Properties: {
        FunctionName: `${i.stack}-control-worker`,
        Description: 'fedflow control worker (task queue fedflow) on @temporalio/lambda-worker',
        Runtime: 'nodejs22.x',
        Handler: 'worker/lambda.handler',
        Code: { S3Bucket: cw.codeBucket, S3Key: cw.codeKey },
        Role: getAtt('ControlWorkerRole', 'Arn'),
        MemorySize: cw.memoryMb,
        Timeout: cw.timeoutSeconds,
        Environment: { Variables: cw.environment },
        Tags: tags('control-worker'),
      },
    };
    outputs.ControlWorkerFunctionArn = { Value: getAtt('ControlWorkerFunction', 'Arn') };
    if (cw.invoker) {
      // The role Temporal assumes to invoke the function when tasks arrive and no worker polls.
      resources.ControlWorkerInvokerRole = {
        Type: 'AWS::IAM::Role',
        Properties: {
          Description: 'Temporal (Serverless Workers) invokes the fedflow control worker with this role',
          MaxSessionDuration: 3600,
          AssumeRolePolicyDocument: {
            Version: '2012-10-17',
            Statement: [{ Effect: 'Allow', Principal: { AWS: cw.invoker.principalArn }, Action: 'sts:AssumeRole', Condition: { StringEquals: { 'sts:ExternalId': cw.invoker.externalId } } }],
          },
          Policies: [
            {
              PolicyName: 'invoke-fedflow-control-worker',
              PolicyDocument: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: ['lambda:InvokeFunction', 'lambda:GetFunction'], Resource: getAtt('ControlWorkerFunction', 'Arn') }] },
            },
          ],
          Tags: tags('control-worker-invoker'),
        },
      };
      outputs.ControlWorkerInvokerRoleArn = { Value: getAtt('ControlWorkerInvokerRole', 'Arn') };
    }
  }
  return {
    AWSTemplateFormatVersion: '2010-09-09',
    Description: `fedflow site ${i.siteId} (stack ${i.stack})`,
    Resources: resources,
    Outputs: outputs,
  };
}

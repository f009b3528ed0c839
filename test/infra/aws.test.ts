/**
 * `--target aws` against moto's CloudFormation (moto_server, the same pinned venv as the AWS
 * contract tests), over the real CloudFormation, EC2 and IAM wire protocols: plan on an empty
 * account, up and the resources seen through EC2's and IAM's describe calls, up again with no
 * change, down with nothing left; a failure injected halfway (an instance type EC2 does not
 * have, after the VPC, subnet, security group and IAM role exist) is named by its logical
 * resource and the provider's reason, and leaves nothing (moto runs through
 * scripts/moto-cfn-events.py, which reports the failure as CloudFormation does); missing
 * credentials name the chain; cfn-lint passes on every template variant.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DescribeImagesCommand, DescribeInstanceAttributeCommand, DescribeInstancesCommand, DescribeInternetGatewaysCommand, DescribeLaunchTemplatesCommand, DescribeSecurityGroupsCommand, DescribeSubnetsCommand, DescribeVpcsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { CloudFormationClient, CreateChangeSetCommand, DescribeChangeSetCommand, DescribeStacksCommand, ExecuteChangeSetCommand, ListStackResourcesCommand } from '@aws-sdk/client-cloudformation';
import { parseFederationConfig, type FederationConfig } from '../../core/federation-config';
import { REPO_ROOT } from '../../agent/site/home';
import { AGENT_EC2_ACTIONS } from '../../infra/aws/template';
import { packageControlWorker } from '../../infra/lambda-package';
import { awsTemplateFor } from '../../infra/aws/target';
import { InfraError, unchanged } from '../../infra/plan';
import { runInfra } from '../../infra/run';
import { siteUserData } from '../../infra/userdata';
import { MOTO_VENV, startMoto, type MotoHandle } from '../../scripts/moto-server';

process.env.AWS_ACCESS_KEY_ID = 'testing';
process.env.AWS_SECRET_ACCESS_KEY = 'testing';
delete process.env.AWS_PROFILE;

const REGION = 'us-east-1';
// Sites get this Temporal address and namespace in their user-data.
const ENV = { TEMPORAL_ADDRESS: 'temporal.example.net:7233', TEMPORAL_NAMESPACE: 'fedflow' };

/** A raw call to moto for a service the project has no SDK client of (moto routes by the credential scope's service). */
async function motoRest(endpoint: string, service: string, method: string, path: string, body?: Uint8Array | string): Promise<Response> {
  return fetch(`${endpoint}${path}`, {
    method,
    headers: { authorization: `AWS4-HMAC-SHA256 Credential=testing/20260101/${REGION}/${service}/aws4_request, SignedHeaders=host, Signature=0` },
    ...(body !== undefined ? { body } : {}),
  });
}

/** One IAM query call (moto routes by the credential scope's service). */
async function iam(endpoint: string, params: Record<string, string>): Promise<string> {
  const res = await fetch(endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `AWS4-HMAC-SHA256 Credential=testing/20260101/${REGION}/iam/aws4_request, SignedHeaders=host, Signature=0` },
    body: new URLSearchParams({ Version: '2010-05-08', ...params }).toString(),
  });
  return res.text();
}

describe('infra --target aws (moto CloudFormation)', () => {
  let moto: MotoHandle;
  let ec2: EC2Client;
  let cfn: CloudFormationClient;
  let ami: string;
  let scratch: string;
  const config = (federation: string, over: { instanceType?: string; internetGateway?: boolean; cidr?: string } = {}): FederationConfig =>
    parseFederationConfig({
      federation,
      infra: { agentPort: 7443, temporal: { namespace: 'fedflow' } },
      sites: [
        { id: 'aws:us-east-1', provider: 'aws', trust: 'trusted', capacity: { instances: 2 }, settings: { region: REGION, endpoint: moto.endpoint, imageId: ami, instanceType: over.instanceType ?? 't3.micro' }, infra: { cidr: over.cidr ?? '10.10.0.0/16', subnetCidr: (over.cidr ?? '10.10.0.0/16').replace(/0\.0\/16$/, '1.0/24'), internetGateway: over.internetGateway ?? false } },
        { id: 'gcp:europe-west1-b', provider: 'gcp', trust: 'trusted', capacity: { instances: 2 }, settings: { project: 'fedflow-test', zone: 'europe-west1-b', image: 'projects/debian-cloud/global/images/family/debian-12', machineType: 'e2-small' }, infra: { cidr: '10.30.0.0/16' } },
        { id: 'dc:paris', provider: 'local', trust: 'trusted', capacity: { instances: 2 }, infra: { egressCidrs: ['198.51.100.0/28'] } },
      ],
    });
  const vpcsWith = async (cidr: string) => ((await ec2.send(new DescribeVpcsCommand({ Filters: [{ Name: 'cidr', Values: [cidr] }] }))).Vpcs ?? []);
  const liveInstances = async (stack: string) =>
    ((await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'tag:fedflow-stack', Values: [stack] }, { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] }] }))).Reservations ?? []).flatMap((r) => r.Instances ?? []);

  before(async () => {
    moto = await startMoto({ MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION: 'true' }, { cfnEvents: true });
    ec2 = new EC2Client({ region: REGION, endpoint: moto.endpoint });
    cfn = new CloudFormationClient({ region: REGION, endpoint: moto.endpoint });
    ami = (await ec2.send(new DescribeImagesCommand({}))).Images?.[0]?.ImageId ?? assert.fail('moto has no AMI');
    scratch = mkdtempSync(join(tmpdir(), 'fedflow-infra-aws-'));
  });
  after(async () => {
    ec2?.destroy();
    cfn?.destroy();
    await moto?.stop();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('plan on an empty account, up, describe, up again with no change, down with nothing left', async () => {
    const cfg = config('lifecycle');
    const stack = 'fedflow-lifecycle-us-east-1';
    const plan = await runInfra('plan', 'aws', cfg, { env: ENV, pollMs: 50 });
    assert.deepEqual(plan.changes.map((c) => `${c.action} ${c.kind}`), ['AWS::EC2::VPC', 'AWS::EC2::Subnet', 'AWS::EC2::SecurityGroup', 'AWS::IAM::Role', 'AWS::IAM::InstanceProfile', 'AWS::EC2::LaunchTemplate', 'AWS::EC2::Instance'].map((k) => `create ${k}`));
    await assert.rejects(cfn.send(new DescribeStacksCommand({ StackName: stack })), /does not exist/, 'plan leaves no stack behind');
    assert.deepEqual(await vpcsWith('10.10.0.0/16'), []);

    const up = await runInfra('up', 'aws', cfg, { env: ENV, pollMs: 50 });
    assert.equal(up.changes.filter((c) => c.action === 'create').length, 7);
    const out = up.outputs ?? {};
    // The network.
    const [vpc] = await vpcsWith('10.10.0.0/16');
    assert.equal(vpc?.VpcId, out['aws:us-east-1.Vpc']);
    const subnets = (await ec2.send(new DescribeSubnetsCommand({ SubnetIds: [out['aws:us-east-1.Subnet']!] }))).Subnets ?? [];
    assert.deepEqual(subnets.map((s) => [s.VpcId, s.CidrBlock]), [[vpc?.VpcId, '10.10.1.0/24']]);
    // The firewall: the agent port, from the other sites only.
    const [sg] = (await ec2.send(new DescribeSecurityGroupsCommand({ GroupIds: [out['aws:us-east-1.AgentSecurityGroup']!] }))).SecurityGroups ?? [];
    assert.equal(sg?.VpcId, vpc?.VpcId);
    assert.deepEqual(
      (sg?.IpPermissions ?? []).flatMap((p) => (p.IpRanges ?? []).map((r) => `${p.IpProtocol} ${p.FromPort}-${p.ToPort} ${r.CidrIp}`)).sort(),
      ['tcp 7443-7443 10.30.0.0/16', 'tcp 7443-7443 198.51.100.0/28'],
    );
    // The instance, booting the site's user-data, in the subnet.
    const [inst] = await liveInstances(stack);
    assert.equal(inst?.InstanceId, out['aws:us-east-1.AgentInstance']);
    assert.equal(inst?.SubnetId, out['aws:us-east-1.Subnet']);
    assert.equal(inst?.InstanceType, 't3.micro');
    const ud = await ec2.send(new DescribeInstanceAttributeCommand({ InstanceId: inst!.InstanceId!, Attribute: 'userData' }));
    assert.equal(Buffer.from(ud.UserData?.Value ?? '', 'base64').toString('utf8'), siteUserData('aws:us-east-1', ENV.TEMPORAL_ADDRESS, 'fedflow'));
    const lts = (await ec2.send(new DescribeLaunchTemplatesCommand({ LaunchTemplateNames: [`${stack}-agent`] }))).LaunchTemplates ?? [];
    assert.equal(lts.length, 1);
    // The identity: the adapter's EC2 calls, nothing else.
    const resources = (await cfn.send(new ListStackResourcesCommand({ StackName: stack }))).StackResourceSummaries ?? [];
    const roleName = resources.find((r) => r.LogicalResourceId === 'AgentRole')?.PhysicalResourceId ?? assert.fail('no AgentRole');
    const policyXml = await iam(moto.endpoint, { Action: 'GetRolePolicy', RoleName: roleName, PolicyName: 'fedflow-agent-ec2' });
    // moto answers the document as a Python literal, so the actions are read off it as strings.
    const doc = /<PolicyDocument>([^<]*)<\/PolicyDocument>/.exec(policyXml)?.[1] ?? assert.fail(policyXml);
    assert.deepEqual([...doc.matchAll(/'((?:ec2|iam|s3|sts|\*)[^']*)'/g)].map((m) => m[1]).filter((a) => a !== '*').sort(), [...AGENT_EC2_ACTIONS.anyResource, ...AGENT_EC2_ACTIONS.siteInstances].sort());
    assert.match(doc, /'aws:ResourceTag\/fedflow-site': 'aws:us-east-1'/, 'start, stop and terminate only on instances of this site');
    const profileName = resources.find((r) => r.LogicalResourceId === 'AgentInstanceProfile')?.PhysicalResourceId ?? assert.fail('no AgentInstanceProfile');
    assert.match(await iam(moto.endpoint, { Action: 'GetInstanceProfile', InstanceProfileName: profileName }), new RegExp(`<RoleName>${roleName}</RoleName>`));

    const again = await runInfra('up', 'aws', cfg, { env: ENV, pollMs: 50 });
    assert.ok(unchanged(again), JSON.stringify(again.changes));
    assert.equal(again.changes.length, 7);
    assert.equal((await vpcsWith('10.10.0.0/16')).length, 1, 'a second up creates nothing');
    assert.equal((await liveInstances(stack)).length, 1);

    const down = await runInfra('down', 'aws', cfg, { env: ENV, pollMs: 50 });
    assert.equal(down.changes.filter((c) => c.action === 'delete').length, 8);
    await assert.rejects(cfn.send(new DescribeStacksCommand({ StackName: stack })), /does not exist/);
    assert.deepEqual(await vpcsWith('10.10.0.0/16'), []);
    assert.deepEqual(await liveInstances(stack), []);
    assert.match(await iam(moto.endpoint, { Action: 'GetRole', RoleName: roleName }), /NoSuchEntity/);
    // down again (say, after an interrupted one) finishes and changes nothing.
    assert.ok(unchanged(await runInfra('down', 'aws', cfg, { env: ENV, pollMs: 50 })));
  });

  it('a change shows in plan as an update of what it touches only', async () => {
    const cfg = config('change', { cidr: '10.11.0.0/16' });
    await runInfra('up', 'aws', cfg, { env: ENV, pollMs: 50 });
    const plan = await runInfra('plan', 'aws', config('change', { cidr: '10.11.0.0/16', instanceType: 't3.small' }), { env: ENV, pollMs: 50 });
    assert.deepEqual(plan.changes.filter((c) => c.action !== 'keep').map((c) => `${c.action} ${c.name}`), ['update fedflow-change-us-east-1/AgentLaunchTemplate', 'update fedflow-change-us-east-1/AgentInstance']);
    assert.equal((await liveInstances('fedflow-change-us-east-1'))[0]?.InstanceType, 't3.micro', 'plan changed nothing');
    await runInfra('down', 'aws', cfg, { env: ENV, pollMs: 50 });
    assert.deepEqual(await vpcsWith('10.11.0.0/16'), []);
  });

  /** What a stack could have left, seen through EC2's and IAM's describe calls. */
  const leftovers = async (c: EC2Client, endpoint: string, stack: string, cidr: string) => {
    const tagged = [{ Name: 'tag:fedflow-stack', Values: [stack] }];
    const vpcs = (await c.send(new DescribeVpcsCommand({ Filters: [{ Name: 'cidr', Values: [cidr] }] }))).Vpcs ?? [];
    const subnets = (await c.send(new DescribeSubnetsCommand({ Filters: [{ Name: 'cidr-block', Values: [cidr.replace(/0\.0\/16$/, '1.0/24')] }] }))).Subnets ?? [];
    const sgs = (await c.send(new DescribeSecurityGroupsCommand({ Filters: tagged }))).SecurityGroups ?? [];
    const lts = (await c.send(new DescribeLaunchTemplatesCommand({}))).LaunchTemplates?.filter((t) => t.LaunchTemplateName?.startsWith(stack)) ?? [];
    const instances = ((await c.send(new DescribeInstancesCommand({ Filters: [...tagged, { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] }] }))).Reservations ?? []).flatMap((r) => r.Instances ?? []);
    const roles = [...(await iam(endpoint, { Action: 'ListRoles' })).matchAll(/<RoleName>([^<]*)<\/RoleName>/g)].map((m) => m[1]!).filter((n) => n.startsWith(stack));
    const profiles = [...(await iam(endpoint, { Action: 'ListInstanceProfiles' })).matchAll(/<InstanceProfileName>([^<]*)<\/InstanceProfileName>/g)].map((m) => m[1]!).filter((n) => n.startsWith(stack));
    return { vpcs: vpcs.map((v) => v.VpcId), subnets: subnets.map((s) => s.SubnetId), sgs: sgs.map((g) => g.GroupId), lts: lts.map((t) => t.LaunchTemplateName), instances: instances.map((i) => i.InstanceId), roles, profiles };
  };
  const nothing = { vpcs: [], subnets: [], sgs: [], lts: [], instances: [], roles: [], profiles: [] };

  it('a failure halfway (an instance type EC2 does not have): the resource and the provider\'s reason are named, the stack is deleted and nothing is left', async () => {
    // moto (through scripts/moto-cfn-events.py) reports the failure as CloudFormation does, a
    // CREATE_FAILED event on AgentInstance after the VPC, subnet, security group, role, profile
    // and launch template were made, but does not roll back: fedflow's DeleteStack must.
    const stack = 'fedflow-broken-us-east-1';
    await assert.rejects(runInfra('up', 'aws', config('broken', { cidr: '10.12.0.0/16', instanceType: 'zz9.nano' }), { env: ENV, pollMs: 50 }), (err: unknown) => {
      assert.ok(err instanceof InfraError, String(err));
      assert.equal(err.type, 'StackFailed');
      assert.match(err.message, /fedflow-broken-us-east-1 \(site 'aws:us-east-1'\) create failed: resource AgentInstance \(AWS::EC2::Instance\) failed: .*The instance type 'zz9\.nano' does not exist.*InvalidInstanceType\.NotFound/);
      assert.match(err.message, /did not roll back \(CREATE_FAILED\), so the stack was deleted with what it had made, nothing is left/);
      return true;
    });
    await assert.rejects(cfn.send(new DescribeStacksCommand({ StackName: stack })), /does not exist/);
    assert.deepEqual(await leftovers(ec2, moto.endpoint, stack, '10.12.0.0/16'), nothing, 'what was made before the failure is gone');
    // The same config fixed goes up in the name the failed run had.
    const up = await runInfra('up', 'aws', config('broken', { cidr: '10.12.0.0/16' }), { env: ENV, pollMs: 50 });
    assert.equal(up.changes.filter((c) => c.action === 'create').length, 7);
    await runInfra('down', 'aws', config('broken', { cidr: '10.12.0.0/16' }), { env: ENV, pollMs: 50 });
    assert.deepEqual(await leftovers(ec2, moto.endpoint, stack, '10.12.0.0/16'), nothing);
  });

  it('a stack a failed create left behind (CREATE_FAILED, say after an interrupted up) is deleted by the next up, which starts afresh', async () => {
    const stack = 'fedflow-leftover-us-east-1';
    const brokenCfg = config('leftover', { cidr: '10.16.0.0/16', instanceType: 'zz9.nano' });
    const broken = awsTemplateFor(brokenCfg, brokenCfg.sites[0]!, { temporalAddress: ENV.TEMPORAL_ADDRESS, temporalNamespace: 'fedflow' });
    // Made here with CloudFormation's own calls, as a run killed before its clean-up would leave it.
    const cs = await cfn.send(new CreateChangeSetCommand({ StackName: stack, ChangeSetName: 'interrupted', ChangeSetType: 'CREATE', TemplateBody: JSON.stringify(broken), Capabilities: ['CAPABILITY_NAMED_IAM'] }));
    for (let i = 0; (await cfn.send(new DescribeChangeSetCommand({ ChangeSetName: cs.Id! }))).Status !== 'CREATE_COMPLETE'; i++) {
      assert.ok(i < 200, 'change set never ready');
      await new Promise((r) => setTimeout(r, 50));
    }
    await cfn.send(new ExecuteChangeSetCommand({ ChangeSetName: cs.Id! }));
    assert.equal((await cfn.send(new DescribeStacksCommand({ StackName: stack }))).Stacks?.[0]?.StackStatus, 'CREATE_FAILED');
    assert.equal((await leftovers(ec2, moto.endpoint, stack, '10.16.0.0/16')).vpcs.length, 1, 'the failed create left its VPC');
    const cfg = config('leftover', { cidr: '10.16.0.0/16' });
    const up = await runInfra('up', 'aws', cfg, { env: ENV, pollMs: 50 });
    assert.equal(up.changes.filter((c) => c.action === 'create').length, 7);
    assert.equal((await leftovers(ec2, moto.endpoint, stack, '10.16.0.0/16')).vpcs.length, 1, 'one VPC: the old one went with the failed stack');
    await runInfra('down', 'aws', cfg, { env: ENV, pollMs: 50 });
    assert.deepEqual(await leftovers(ec2, moto.endpoint, stack, '10.16.0.0/16'), nothing);
  });

  it('on stock moto, which fails ExecuteChangeSet itself and names no resource: the stack is still deleted and nothing is left', async () => {
    const stock = await startMoto({ MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION: 'true' });
    const stockEc2 = new EC2Client({ region: REGION, endpoint: stock.endpoint });
    try {
      const image = (await stockEc2.send(new DescribeImagesCommand({}))).Images?.[0]?.ImageId ?? assert.fail('moto has no AMI');
      const base = config('stock', { cidr: '10.17.0.0/16', instanceType: 'zz9.nano' });
      const cfg = parseFederationConfig({ ...structuredClone(base), sites: base.sites.map((s) => (s.provider === 'aws' ? { ...s, settings: { ...s.settings, endpoint: stock.endpoint, imageId: image } } : s)) });
      await assert.rejects(runInfra('up', 'aws', cfg, { env: ENV, pollMs: 50 }), (err: unknown) => {
        assert.ok(err instanceof InfraError, String(err));
        assert.equal(err.type, 'StackFailed');
        assert.match(err.message, /fedflow-stock-us-east-1 .*create failed: InvalidInstanceType\.NotFound .*The instance type 'zz9\.nano' does not exist/);
        assert.match(err.message, /named no resource\); nothing was rolled back, so the stack was deleted with what it had made, nothing is left/);
        assert.doesNotMatch(err.message, /rolled back and deleted/);
        return true;
      });
      assert.deepEqual(await leftovers(stockEc2, stock.endpoint, 'fedflow-stock-us-east-1', '10.17.0.0/16'), nothing);
    } finally {
      stockEc2.destroy();
      await stock.stop();
    }
  });

  it('with an internet gateway: a public subnet routed through it (moto cannot delete a stack route table, so no down here)', async () => {
    const cfg = config('public', { cidr: '10.13.0.0/16', internetGateway: true });
    const up = await runInfra('up', 'aws', cfg, { env: ENV, pollMs: 50 });
    assert.deepEqual(up.changes.filter((c) => c.action === 'create').map((c) => c.kind).filter((k) => /Gateway|Route/.test(k)), ['AWS::EC2::InternetGateway', 'AWS::EC2::VPCGatewayAttachment', 'AWS::EC2::RouteTable', 'AWS::EC2::Route', 'AWS::EC2::SubnetRouteTableAssociation']);
    const igws = (await ec2.send(new DescribeInternetGatewaysCommand({ Filters: [{ Name: 'attachment.vpc-id', Values: [up.outputs!['aws:us-east-1.Vpc']!] }] }))).InternetGateways ?? [];
    assert.equal(igws.length, 1);
    assert.ok(unchanged(await runInfra('up', 'aws', cfg, { env: ENV, pollMs: 50 })));
  });

  it('with a control worker: the stack deploys the Lambda function, from the packaged zip in S3, and its role', async () => {
    // The function's code is the zip `fedflow infra package-lambda` builds, uploaded to S3 (moto's here) under infra.controlWorker's key.
    const pkg = await packageControlWorker({ outFile: join(scratch, 'control-worker.zip'), configFile: join(REPO_ROOT, 'config', 'federation.yaml') });
    const zip = readFileSync(pkg.outFile);
    assert.ok((await motoRest(moto.endpoint, 's3', 'PUT', '/fedflow-artifacts')).ok);
    assert.ok((await motoRest(moto.endpoint, 's3', 'PUT', '/fedflow-artifacts/control-worker.zip', zip)).ok);
    const base = config('serverless', { cidr: '10.15.0.0/16' });
    const cfg = parseFederationConfig({ ...structuredClone(base), infra: { ...base.infra, controlWorker: { site: 'aws:us-east-1', codeBucket: 'fedflow-artifacts', codeKey: 'control-worker.zip', memoryMb: 1024, timeoutSeconds: 300, invoker: { principalArn: 'arn:aws:iam::123456789012:role/temporal-server', externalId: 'fedflow-ext-1' } } } });
    const up = await runInfra('up', 'aws', cfg, { env: ENV, pollMs: 50 });
    assert.deepEqual(up.changes.filter((c) => /Lambda|ControlWorker/.test(c.kind + c.name)).map((c) => `${c.action} ${c.kind} ${c.name.split('/').pop()}`), ['create AWS::IAM::Role ControlWorkerRole', 'create AWS::Lambda::Function ControlWorkerFunction', 'create AWS::IAM::Role ControlWorkerInvokerRole']);
    const invoker = up.outputs?.['aws:us-east-1.ControlWorkerInvokerRole'] ?? assert.fail('no invoker role');
    const trust = await iam(moto.endpoint, { Action: 'GetRole', RoleName: invoker });
    assert.match(decodeURIComponent(trust), /arn:aws:iam::123456789012:role\/temporal-server/);
    assert.match(decodeURIComponent(trust), /fedflow-ext-1/);
    const fn = (await (await motoRest(moto.endpoint, 'lambda', 'GET', '/2015-03-31/functions/fedflow-serverless-us-east-1-control-worker')).json()) as { Configuration?: { Handler?: string; Runtime?: string; Timeout?: number; MemorySize?: number; Role?: string; CodeSize?: number; CodeSha256?: string; Environment?: { Variables?: Record<string, string> } } };
    assert.equal(fn.Configuration?.CodeSize, zip.length, 'the function holds the packaged zip');
    assert.equal(fn.Configuration?.CodeSha256, createHash('sha256').update(zip).digest('base64'));
    assert.equal(fn.Configuration?.Handler, 'worker/lambda.handler');
    assert.equal(fn.Configuration?.Timeout, 300);
    assert.equal(fn.Configuration?.MemorySize, 1024);
    assert.deepEqual(fn.Configuration?.Environment?.Variables, { TEMPORAL_ADDRESS: ENV.TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE: 'fedflow' });
    assert.match(String(fn.Configuration?.Role), /fedflow-serverless-us-east-1-ControlWorkerRole/);
    assert.ok(unchanged(await runInfra('up', 'aws', cfg, { env: ENV, pollMs: 50 })));
    await runInfra('down', 'aws', cfg, { env: ENV, pollMs: 50 });
    assert.equal((await motoRest(moto.endpoint, 'lambda', 'GET', '/2015-03-31/functions/fedflow-serverless-us-east-1-control-worker')).status, 404);
    assert.deepEqual(await vpcsWith('10.15.0.0/16'), []);
  });

  it('missing credentials: the error names the chain that was tried, and nothing is created', async () => {
    const saved = { ...process.env };
    try {
      for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI', 'AWS_CONTAINER_CREDENTIALS_FULL_URI']) delete process.env[k];
      process.env.AWS_SHARED_CREDENTIALS_FILE = join(scratch, 'no-credentials');
      process.env.AWS_CONFIG_FILE = join(scratch, 'no-config');
      process.env.AWS_EC2_METADATA_DISABLED = 'true';
      await assert.rejects(runInfra('up', 'aws', config('nocreds', { cidr: '10.14.0.0/16' }), { env: ENV, pollMs: 50 }), (err: unknown) => {
        assert.ok(err instanceof InfraError, String(err));
        assert.equal(err.type, 'MissingCredentials');
        assert.match(err.message, /environment \(AWS_ACCESS_KEY_ID.*shared config and credentials files.*web identity token.*ECS container credentials.*EC2 instance metadata/);
        return true;
      });
    } finally {
      process.env = saved;
    }
    assert.deepEqual(await vpcsWith('10.14.0.0/16'), []);
  });

  it('cfn-lint passes on every template variant (private, public, with the control worker)', () => {
    const lint = join(MOTO_VENV, 'bin', 'cfn-lint');
    const base = config('lint');
    const withWorker = parseFederationConfig({ ...structuredClone(base), infra: { ...base.infra, controlWorker: { site: 'aws:us-east-1', codeBucket: 'fedflow-artifacts', codeKey: 'control-worker.zip', invoker: { principalArn: 'arn:aws:iam::123456789012:role/temporal-server', externalId: 'fedflow-ext-1' } } } });
    const variants = { private: base, public: config('lint', { internetGateway: true }), worker: withWorker };
    for (const [name, cfg] of Object.entries(variants)) {
      const file = join(scratch, `${name}.json`);
      writeFileSync(file, JSON.stringify(awsTemplateFor(cfg, cfg.sites[0]!, { temporalAddress: ENV.TEMPORAL_ADDRESS, temporalNamespace: 'fedflow' }), null, 2));
      const r = spawnSync(lint, [file], { encoding: 'utf8' });
      assert.equal(r.status, 0, `cfn-lint ${name}: ${r.stdout}${r.stderr}`);
    }
  });
});

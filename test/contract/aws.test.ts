/**
 * The provider contract against moto (EC2 emulator), with a fault-injecting proxy in front of it.
 * Credentials come from the environment, the SDK's standard chain, set here to moto's dummies.
 */
import { DescribeImagesCommand, DescribeInstanceAttributeCommand, EC2Client } from '@aws-sdk/client-ec2';
import { AwsProvider } from '../../adapters/aws/provider';
import { startMoto } from '../../scripts/moto-server';
import { startEc2FaultProxy } from '../fakes/ec2-fault-proxy';
import { providerContract } from './provider-contract';

process.env.AWS_ACCESS_KEY_ID = 'testing';
process.env.AWS_SECRET_ACCESS_KEY = 'testing';
delete process.env.AWS_PROFILE;

const REGION = 'us-east-1';
const SITE = 'aws:us-east-1';

providerContract('aws (moto)', async () => {
  // moto accepts any instance type unless told to validate them, as EC2 does.
  const moto = await startMoto({ MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION: 'true' });
  const proxy = await startEc2FaultProxy(moto.endpoint);
  const direct = new EC2Client({ region: REGION, endpoint: moto.endpoint });
  const images = await direct.send(new DescribeImagesCommand({}));
  const imageId = images.Images?.[0]?.ImageId;
  if (!imageId) throw new Error('moto returned no AMIs to boot');
  const provider = new AwsProvider({
    site: SITE,
    region: REGION,
    endpoint: proxy.endpoint,
    instanceType: 't3.micro',
    capacityInstances: 5,
    maxAttempts: 3,
    requestTimeoutMs: 1_000,
  });
  return {
    provider,
    spec: { name: 'contract-vm', image: imageId, size: 't3.micro', tags: { app: 'kv' }, userData: '#cloud-config\nruncmd:\n  - [fedflow, agent, --site, aws:us-east-1]\n' },
    invalidSpec: { name: 'bad-vm', image: imageId, size: 'no-such.type' },
    missingRef: { provider: 'aws', site: SITE, id: 'i-0123456789abcdef0' },
    pollMs: 200,
    volumeOf: (s) => {
      const v = s.volumes?.[0];
      if (!v) throw new Error(`instance ${s.ref.id} has no EBS volume in DescribeInstances`);
      return v;
    },
    faults: { plan: proxy.faults, describeMatch: 'EC2 DescribeInstances', slowDelayMs: 2_500 },
    userDataOf: async (ref) => {
      const out = await direct.send(new DescribeInstanceAttributeCommand({ InstanceId: ref.id, Attribute: 'userData' }));
      const b64 = out.UserData?.Value;
      return b64 === undefined ? undefined : Buffer.from(b64, 'base64').toString('utf8');
    },
    close: async () => {
      direct.destroy();
      provider.client.destroy();
      await proxy.close();
      await moto.stop();
    },
  };
});

/**
 * End to end across providers: the sample workload moves from a local site to an AWS site whose
 * EC2 API is moto on loopback. The instance is created in moto through the SDK, the data is synced
 * to the agent that stands for that site, the route switches and the source is decommissioned.
 * A migration that fails after the target instance exists leaves nothing running in moto.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DescribeImagesCommand, DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { sampleValue } from '../../agent/workload/sample';
import { deploySampleWorkload } from '../../worker/deploy-sample';
import { CLOUD_INSTANCE_TAG } from '../../activities/site';
import { FedflowClient, FedflowError } from '../../client';
import { startMoto, type MotoHandle } from '../../scripts/moto-server';
import { useServerAndFederation } from '../helpers/federation';

process.env.AWS_ACCESS_KEY_ID = 'testing';
process.env.AWS_SECRET_ACCESS_KEY = 'testing';
delete process.env.AWS_PROFILE;

const KEYS = 200;

describe('migration from a local site to an AWS site (moto)', () => {
  let moto: MotoHandle;
  let ec2: EC2Client;
  let imageId: string | undefined;

  async function liveInstances(): Promise<{ id: string; tags: Record<string, string> }[]> {
    const res = await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] }] }));
    return (res.Reservations ?? []).flatMap((r) => r.Instances ?? []).map((i) => ({ id: i.InstanceId!, tags: Object.fromEntries((i.Tags ?? []).map((t) => [t.Key!, t.Value!])) }));
  }

  before(async () => {
    moto = await startMoto();
    ec2 = new EC2Client({ region: 'us-east-1', endpoint: moto.endpoint });
    imageId = (await ec2.send(new DescribeImagesCommand({}))).Images?.find((i) => /^ami-([0-9a-f]{8}|[0-9a-f]{17})$/.test(i.ImageId ?? ''))?.ImageId;
    assert.ok(imageId, 'moto offers an AMI');
  });
  // The config names moto's endpoint and AMI, known once the hook above ran.
  const suite = useServerAndFederation(() => ({
    config: {
      federation: 'to-aws',
      sites: [
        { id: 'dc:paris', provider: 'local', trust: 'trusted', capacity: { instances: 2 } },
        {
          id: 'aws:us-east-1',
          provider: 'aws',
          trust: 'trusted',
          capacity: { instances: 2 },
          // No credentials here: the SDK's chain finds them (the environment, in this test).
          settings: { region: 'us-east-1', endpoint: moto.endpoint, imageId, instanceType: 't3.micro' },
        },
      ],
    },
  }));

  before(async () => {
    await deploySampleWorkload({ client: suite.env.client, config: suite.fed.config, home: suite.fed.home, keys: KEYS, valueBytes: 200 });
  });
  after(async () => {
    ec2?.destroy();
    await moto?.stop();
  });

  it('a failure after the target instance exists leaves nothing in moto', async () => {
    const c = FedflowClient.fromClient(suite.env.client);
    await c.startMigration({ workloadId: 'kv-demo', targetSite: 'aws:us-east-1' });
    // Hold the migration once the target instance is up, then stop the source instance: the
    // cut-over cannot freeze it and fails (non-retryable), and the saga compensates.
    for (let i = 0; ; i++) {
      const p = await c.getProgress('kv-demo');
      if (p.steps.find((s) => s.id === 'start')?.status === 'done') break;
      assert.ok(i < 600, `target never started: ${JSON.stringify(p.steps)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    await c.pause('kv-demo');
    assert.equal((await liveInstances()).length, 1, 'the target instance was created in moto');
    const source = (await suite.fed.workload('kv-demo'))!.instance;
    await suite.fed.provider('dc:paris').stopInstance(source);
    await c.resume('kv-demo');
    await assert.rejects(c.waitForResult('kv-demo'), (err: unknown) => {
      assert.ok(err instanceof FedflowError);
      assert.equal(err.type, 'SourceNotRunning', err.message);
      return true;
    });
    assert.deepEqual(await liveInstances(), [], 'compensation terminated the moto instance');
    assert.equal(suite.fed.provider('aws:us-east-1').liveInstances().length, 0, 'and its local stand-in');
    assert.equal((await suite.fed.workload('kv-demo'))!.site, 'dc:paris');
    assert.deepEqual((await suite.fed.committed()).reservations, {}, 'the reservation is released');
    // The operator starts the source again before the next migration.
    await deploySampleWorkload({ client: suite.env.client, config: suite.fed.config, home: suite.fed.home });
  });

  it('moves kv-demo to aws:us-east-1: instance in moto, data synced, route switched, source gone', async () => {
    const c = FedflowClient.fromClient(suite.env.client);
    await c.startMigration({ workloadId: 'kv-demo', targetSite: 'aws:us-east-1' });
    const r = await c.waitForResult('kv-demo');
    assert.equal(r.target, 'aws:us-east-1');
    assert.equal(r.keys, KEYS);

    const live = await liveInstances();
    assert.equal(live.length, 1, 'one instance in moto');
    assert.equal(live[0]!.tags['fedflow-workload'], 'kv-demo');
    const standIn = suite.fed.provider('aws:us-east-1').liveInstances();
    assert.equal(standIn.length, 1);
    const st = await suite.fed.provider('aws:us-east-1').describeInstance(standIn[0]!);
    assert.equal(st.tags[CLOUD_INSTANCE_TAG], live[0]!.id, 'the agent stands for the moto instance');

    const route = (await suite.fed.workload('kv-demo'))!;
    assert.equal(route.site, 'aws:us-east-1');
    const all = (await (await fetch(`${route.address}/kv`)).json()) as Record<string, string>;
    assert.equal(Object.keys(all).length, KEYS);
    for (let i = 0; i < KEYS; i++) assert.equal(all[`key-${String(i).padStart(6, '0')}`], sampleValue(i, 200));
    assert.equal(suite.fed.provider('dc:paris').liveInstances().length, 0, 'source decommissioned');
  });
});

/**
 * The agent identities infra creates allow exactly the calls docs/providers.md lists for each
 * adapter: no call without its permission, no permission without a call.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT } from '../../agent/site/home';
import { AGENT_AZURE_ACTIONS, AWS_AGENT_ACTIONS, AZURE_CALL_PERMISSIONS, AZURE_NIC_FROM_SUBNET, GCP_AGENT_PERMISSIONS, GCP_CALL_PERMISSIONS } from '../../infra/permissions';

const providers = readFileSync(join(REPO_ROOT, 'docs', 'providers.md'), 'utf8');
const section = (title: string) => {
  const start = providers.indexOf(`### ${title}`);
  assert.ok(start >= 0, `docs/providers.md has no section '### ${title}'`);
  const end = providers.indexOf('\n### ', start + 4);
  return providers.slice(start, end < 0 ? providers.indexOf('\n## ', start) : end);
};
/** The calls column of a section's table: `Name(`, `Name` and `client.method` in backticks. */
const calls = (text: string, re: RegExp) => [...new Set([...text.matchAll(re)].map((m) => m[1]!))].sort();

describe('infra permissions match docs/providers.md', () => {
  it('aws: the agent role allows each EC2 call of the adapter, and nothing else', () => {
    const ec2 = calls(section('aws (EC2)'), /`((?:Describe|Run|Start|Stop|Terminate|Create)[A-Za-z]+)(?:\(|`)/g).map((c) => `ec2:${c}`);
    assert.deepEqual([...AWS_AGENT_ACTIONS].sort(), ec2);
  });

  it('azure: the agent role holds the permission of each ARM call, and nothing else', () => {
    const used = calls(section('azure (ARM, Microsoft.Compute)'), /`(usage\.list|(?:virtualMachines|disks|snapshots)\.[a-zA-Z]+)/g);
    for (const c of used) assert.ok(AZURE_CALL_PERMISSIONS[c], `docs/providers.md calls ${c}; infra/permissions.ts does not say what it needs`);
    const needed = new Set([...used.flatMap((c) => AZURE_CALL_PERMISSIONS[c]!), ...AZURE_NIC_FROM_SUBNET]);
    assert.deepEqual([...AGENT_AZURE_ACTIONS].sort(), [...needed].sort());
  });

  it('gcp: the documented role holds the permission of each compute call', () => {
    const used = calls(section('gcp (compute/v1, REST)'), /`((?:regions|instances|zoneOperations|snapshots|disks)\.[a-zA-Z]+)/g);
    for (const c of used) assert.ok(GCP_CALL_PERMISSIONS[c], `docs/providers.md calls ${c}; infra/permissions.ts does not say what it needs`);
    assert.deepEqual(Object.keys(GCP_CALL_PERMISSIONS).sort(), used);
    const doc = readFileSync(join(REPO_ROOT, 'docs', 'infra-permissions.md'), 'utf8');
    for (const p of GCP_AGENT_PERMISSIONS) assert.ok(doc.includes(p), `docs/infra-permissions.md does not list ${p}`);
  });
});

/**
 * What each cloud's agent identity may do: exactly the calls of adapters/ (docs/providers.md,
 * "API calls per method"), as each cloud names the permission. AWS and Azure templates grant
 * these (infra/aws/template.ts, infra/azure/template.ts), and GCP's custom role holds them
 * (infra/gcp/identity.ts, through the IAM REST API).
 * test/unit/infra-permissions.test.ts checks these lists against docs/providers.md.
 */
import { AGENT_EC2_ACTIONS } from './aws/template';
import { AGENT_AZURE_ACTIONS } from './azure/template';

export const AWS_AGENT_ACTIONS = [...AGENT_EC2_ACTIONS.anyResource, ...AGENT_EC2_ACTIONS.siteInstances];
export { AGENT_AZURE_ACTIONS };

/** The adapter's Azure SDK calls, each with the permission ARM checks for it. */
export const AZURE_CALL_PERMISSIONS: Record<string, string[]> = {
  'usage.list': ['Microsoft.Compute/locations/usages/read'],
  'virtualMachines.list': ['Microsoft.Compute/virtualMachines/read'],
  'virtualMachines.get': ['Microsoft.Compute/virtualMachines/read'],
  'virtualMachines.createOrUpdate': ['Microsoft.Compute/virtualMachines/write', 'Microsoft.Compute/disks/write', 'Microsoft.Network/networkInterfaces/join/action'],
  'virtualMachines.update': ['Microsoft.Compute/virtualMachines/write'],
  'virtualMachines.start': ['Microsoft.Compute/virtualMachines/start/action'],
  'virtualMachines.deallocate': ['Microsoft.Compute/virtualMachines/deallocate/action'],
  'virtualMachines.delete': ['Microsoft.Compute/virtualMachines/delete', 'Microsoft.Network/networkInterfaces/delete'],
  'disks.get': ['Microsoft.Compute/disks/read'],
  'disks.update': ['Microsoft.Compute/disks/write'],
  'snapshots.get': ['Microsoft.Compute/snapshots/read'],
  'snapshots.createOrUpdate': ['Microsoft.Compute/snapshots/write', 'Microsoft.Compute/disks/read'],
};
/** A VM created with `settings.subnetId` gets its NIC from the VM's networkInterfaceConfigurations. */
export const AZURE_NIC_FROM_SUBNET = ['Microsoft.Network/networkInterfaces/read', 'Microsoft.Network/networkInterfaces/write', 'Microsoft.Network/virtualNetworks/subnets/join/action'];

/** The adapter's Compute Engine calls, each with the IAM permission it needs. */
export const GCP_CALL_PERMISSIONS: Record<string, string[]> = {
  'regions.get': ['compute.regions.get'],
  'instances.list': ['compute.instances.list'],
  'instances.insert': ['compute.instances.create', 'compute.disks.create', 'compute.subnetworks.use', 'compute.instances.setMetadata', 'compute.instances.setLabels', 'compute.images.useReadOnly'],
  'instances.get': ['compute.instances.get'],
  'instances.start': ['compute.instances.start'],
  'instances.stop': ['compute.instances.stop'],
  'instances.delete': ['compute.instances.delete', 'compute.disks.delete'],
  'instances.setLabels': ['compute.instances.setLabels'],
  'zoneOperations.wait': ['compute.zoneOperations.get'],
  'snapshots.get': ['compute.snapshots.get'],
  'disks.get': ['compute.disks.get'],
  'disks.setLabels': ['compute.disks.setLabels'],
  'disks.createSnapshot': ['compute.disks.createSnapshot', 'compute.snapshots.create', 'compute.snapshots.setLabels'],
};
export const GCP_AGENT_PERMISSIONS = [...new Set(Object.values(GCP_CALL_PERMISSIONS).flat())].sort();

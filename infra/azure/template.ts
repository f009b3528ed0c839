/**
 * The ARM JSON template of one Azure site: a network security group admitting the agent port
 * from the other sites only, a virtual network and subnet behind it, a network interface (with a
 * public address unless the site is reached over VPN), a user-assigned identity holding a custom
 * role with only the Microsoft.Compute actions adapters/azure calls, and the agent's VM booting
 * the site's user-data as customData. Values are baked in (no parameters), so the same config
 * gives the same template and what-if finds no change the second time.
 *
 * Template functions used (and so evaluated by the test fake): resourceId, resourceGroup().id,
 * guid, reference(...).principalId.
 */
export interface AzureSiteTemplateInput {
  stack: string;
  siteId: string;
  location: string;
  cidr: string;
  subnetCidr: string;
  agentPort: number;
  peerCidrs: string[];
  /** publisher:offer:sku:version, or an image resource id. */
  image: string;
  vmSize: string;
  adminUsername: string;
  sshPublicKey: string;
  userData: string;
  publicIp: boolean;
}

/** The actions adapters/azure calls (docs/providers.md, "azure"), and what creating its VMs' NICs joins. */
export const AGENT_AZURE_ACTIONS = [
  'Microsoft.Compute/locations/usages/read',
  'Microsoft.Compute/virtualMachines/read',
  'Microsoft.Compute/virtualMachines/write',
  'Microsoft.Compute/virtualMachines/delete',
  'Microsoft.Compute/virtualMachines/start/action',
  'Microsoft.Compute/virtualMachines/deallocate/action',
  'Microsoft.Compute/disks/read',
  'Microsoft.Compute/disks/write',
  'Microsoft.Compute/snapshots/read',
  'Microsoft.Compute/snapshots/write',
  'Microsoft.Network/networkInterfaces/read',
  'Microsoft.Network/networkInterfaces/write',
  'Microsoft.Network/networkInterfaces/delete',
  'Microsoft.Network/networkInterfaces/join/action',
  'Microsoft.Network/virtualNetworks/subnets/join/action',
] as const;

/** api-version per resource type: the template's, and the one `down` deletes each with. */
export const AZURE_API_VERSIONS: Record<string, string> = {
  'Microsoft.Network/networkSecurityGroups': '2024-05-01',
  'Microsoft.Network/virtualNetworks': '2024-05-01',
  'Microsoft.Network/publicIPAddresses': '2024-05-01',
  'Microsoft.Network/networkInterfaces': '2024-05-01',
  'Microsoft.ManagedIdentity/userAssignedIdentities': '2023-01-31',
  'Microsoft.Authorization/roleDefinitions': '2022-04-01',
  'Microsoft.Authorization/roleAssignments': '2022-04-01',
  'Microsoft.Compute/virtualMachines': '2024-07-01',
};

/** Deletion order for `down` and a rollback: dependents first. */
export const AZURE_DELETE_ORDER = [
  'Microsoft.Compute/virtualMachines',
  'Microsoft.Authorization/roleAssignments',
  'Microsoft.Authorization/roleDefinitions',
  'Microsoft.ManagedIdentity/userAssignedIdentities',
  'Microsoft.Network/networkInterfaces',
  'Microsoft.Network/publicIPAddresses',
  'Microsoft.Network/virtualNetworks',
  'Microsoft.Network/networkSecurityGroups',
];

type Json = string | number | boolean | null | Json[] | { [k: string]: Json };

function imageReference(image: string): Json {
  if (image.startsWith('/')) return { id: image };
  const [publisher, offer, sku, version] = image.split(':');
  return { publisher: publisher!, offer: offer!, sku: sku!, version: version! };
}

export function azureSiteTemplate(i: AzureSiteTemplateInput): { [k: string]: Json } {
  const n = (suffix: string) => `${i.stack}-${suffix}`;
  const tags = { 'fedflow-stack': i.stack, 'fedflow-site': i.siteId };
  const id = (type: string, ...names: string[]) => `[resourceId('${type}', ${names.map((x) => `'${x}'`).join(', ')})]`;
  const res = (type: string, name: string, body: { [k: string]: Json }): { [k: string]: Json } => ({ type, apiVersion: AZURE_API_VERSIONS[type]!, name, location: i.location, tags, ...body });
  const roleName = `[guid(resourceGroup().id, '${i.stack}', 'agent-role')]`;
  const identityId = id('Microsoft.ManagedIdentity/userAssignedIdentities', n('agent-identity'));
  const resources: { [k: string]: Json }[] = [
    res('Microsoft.Network/networkSecurityGroups', n('agent-nsg'), {
      properties: {
        securityRules: i.peerCidrs.map((c, k) => ({
          name: `agent-port-from-peer-${k + 1}`,
          properties: { description: 'fedflow agent port from a peer site', protocol: 'Tcp', sourceAddressPrefix: c, sourcePortRange: '*', destinationAddressPrefix: '*', destinationPortRange: String(i.agentPort), access: 'Allow', priority: 100 + k, direction: 'Inbound' },
        })),
      },
    }),
    res('Microsoft.Network/virtualNetworks', n('vnet'), {
      dependsOn: [id('Microsoft.Network/networkSecurityGroups', n('agent-nsg'))],
      properties: {
        addressSpace: { addressPrefixes: [i.cidr] },
        subnets: [{ name: 'agents', properties: { addressPrefix: i.subnetCidr, networkSecurityGroup: { id: id('Microsoft.Network/networkSecurityGroups', n('agent-nsg')) } } }],
      },
    }),
    ...(i.publicIp ? [res('Microsoft.Network/publicIPAddresses', n('agent-ip'), { sku: { name: 'Standard' }, properties: { publicIPAllocationMethod: 'Static' } })] : []),
    res('Microsoft.Network/networkInterfaces', n('agent-nic'), {
      dependsOn: [id('Microsoft.Network/virtualNetworks', n('vnet')), ...(i.publicIp ? [id('Microsoft.Network/publicIPAddresses', n('agent-ip'))] : [])],
      properties: {
        ipConfigurations: [
          {
            name: 'primary',
            properties: {
              privateIPAllocationMethod: 'Dynamic',
              subnet: { id: id('Microsoft.Network/virtualNetworks/subnets', n('vnet'), 'agents') },
              ...(i.publicIp ? { publicIPAddress: { id: id('Microsoft.Network/publicIPAddresses', n('agent-ip')) } } : {}),
            },
          },
        ],
      },
    }),
    res('Microsoft.ManagedIdentity/userAssignedIdentities', n('agent-identity'), {}),
    {
      type: 'Microsoft.Authorization/roleDefinitions',
      apiVersion: AZURE_API_VERSIONS['Microsoft.Authorization/roleDefinitions']!,
      name: roleName,
      properties: {
        roleName: n('agent'),
        description: `fedflow agent of ${i.siteId}: the Microsoft.Compute calls of adapters/azure only`,
        type: 'CustomRole',
        permissions: [{ actions: [...AGENT_AZURE_ACTIONS], notActions: [] }],
        assignableScopes: ['[resourceGroup().id]'],
      },
    },
    {
      type: 'Microsoft.Authorization/roleAssignments',
      apiVersion: AZURE_API_VERSIONS['Microsoft.Authorization/roleAssignments']!,
      name: `[guid(resourceGroup().id, '${i.stack}', 'agent-assignment')]`,
      dependsOn: [identityId, `[resourceId('Microsoft.Authorization/roleDefinitions', ${roleName.slice(1, -1)})]`],
      properties: {
        roleDefinitionId: `[resourceId('Microsoft.Authorization/roleDefinitions', ${roleName.slice(1, -1)})]`,
        principalId: `[reference(${identityId.slice(1, -1)}, '${AZURE_API_VERSIONS['Microsoft.ManagedIdentity/userAssignedIdentities']}').principalId]`,
        principalType: 'ServicePrincipal',
      },
    },
    res('Microsoft.Compute/virtualMachines', n('agent'), {
      dependsOn: [id('Microsoft.Network/networkInterfaces', n('agent-nic')), identityId],
      identity: { type: 'UserAssigned', userAssignedIdentities: { [identityId]: {} } },
      properties: {
        hardwareProfile: { vmSize: i.vmSize },
        storageProfile: { imageReference: imageReference(i.image), osDisk: { name: n('agent-osdisk'), createOption: 'FromImage', deleteOption: 'Delete' } },
        osProfile: {
          computerName: n('agent').slice(0, 63),
          adminUsername: i.adminUsername,
          customData: Buffer.from(i.userData, 'utf8').toString('base64'),
          linuxConfiguration: { disablePasswordAuthentication: true, ssh: { publicKeys: [{ path: `/home/${i.adminUsername}/.ssh/authorized_keys`, keyData: i.sshPublicKey }] } },
        },
        networkProfile: { networkInterfaces: [{ id: id('Microsoft.Network/networkInterfaces', n('agent-nic')), properties: { deleteOption: 'Delete' } }] },
      },
    }),
  ];
  return {
    $schema: 'https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#',
    contentVersion: '1.0.0.0',
    resources,
    outputs: {
      vmId: { type: 'string', value: id('Microsoft.Compute/virtualMachines', n('agent')) },
      subnetId: { type: 'string', value: id('Microsoft.Network/virtualNetworks/subnets', n('vnet'), 'agents') },
    },
  };
}

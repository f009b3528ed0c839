/**
 * The cloud-init user-data a cloud instance boots with: it starts the fedflow agent for its site
 * (a worker on `fedflow-site-<siteId>` with the site's chunk endpoint), connected to Temporal
 * through the standard environment. No secret is written here: the Temporal API key and the
 * transfer secret come from the instance's secret store (named, not embedded) at boot.
 */
export interface CloudInitOptions {
  siteId: string;
  workloadId: string;
  /** Temporal frontend the agent connects to (TEMPORAL_ADDRESS). */
  temporalAddress?: string;
  temporalNamespace?: string;
  /** Where infra installed fedflow on the image. */
  installDir?: string;
}

export function agentCloudInit(o: CloudInitOptions): string {
  const dir = o.installDir ?? '/opt/fedflow';
  const env = [
    `FEDFLOW_SITE=${o.siteId}`,
    `FEDFLOW_WORKLOAD=${o.workloadId}`,
    ...(o.temporalAddress ? [`TEMPORAL_ADDRESS=${o.temporalAddress}`] : []),
    ...(o.temporalNamespace ? [`TEMPORAL_NAMESPACE=${o.temporalNamespace}`] : []),
  ];
  return [
    '#cloud-config',
    'write_files:',
    '  - path: /etc/fedflow/agent.env',
    '    permissions: "0644"',
    '    content: |',
    ...env.map((e) => `      ${e}`),
    'runcmd:',
    `  - [ systemctl, enable, --now, fedflow-agent.service ]`,
    `  # fedflow-agent.service (deploy/fedflow-agent.service, installed with fedflow in ${dir}) runs \`${dir}/bin/fedflow agent --site \${FEDFLOW_SITE}\` with /etc/fedflow/agent.env`,
    '',
  ].join('\n');
}

/**
 * The cloud-init user-data a site's instance boots with. With a `release` it installs fedflow for
 * real and starts the site's agent:
 *
 *   write_files  /etc/fedflow/agent.env          the unit's EnvironmentFile (0600: it may hold the
 *                                                transfer secret)
 *                /etc/fedflow/federation.yaml    the federation config, when given
 *                /var/lib/fedflow/tls/...        the CA's certificate, the site's certificate and
 *                                                its key (0600), when given (`fedflow certs` layout)
 *                /etc/fedflow/install-release.sh the installer below (0700)
 *   runcmd       sh /etc/fedflow/install-release.sh: fetch the release artifact (scripts/release.ts)
 *                from its URL with curl, check its sha256 (nothing is unpacked when it differs),
 *                unpack it and run its install.sh, which makes the fedflow user, puts the release
 *                in /opt/fedflow, hands /var/lib/fedflow (and the key) to that user, installs the
 *                units and runs `systemctl enable --now fedflow-agent.service`.
 *
 * Without a release the image is expected to carry fedflow in `installDir` already (a baked image),
 * and only the environment is written and the unit enabled.
 *
 * Secrets: the site's key and the transfer secret, when given, are in the user-data, which the
 * instance's metadata service serves and the cloud's describe calls return to whoever holds that
 * permission; they never enter a Temporal payload, history or log. Leave them out to put them in
 * place another way (the agent refuses to start until its key is there, and systemd retries it).
 */
import { stringify } from 'yaml';
import { siteDirName } from './home';

export interface ReleaseRef {
  /** Where the instance fetches the artifact: https (or http: the sha256 pins the bytes), e.g. a presigned S3 URL. */
  url: string;
  /** The artifact's sha256, hex (dist/<artifact>.sha256). */
  sha256: string;
}

export interface SiteTlsText {
  /** PEM texts: the federation CA's certificate, the site's certificate, the site's private key. */
  ca: string;
  cert: string;
  key: string;
}

export interface CloudInitOptions {
  siteId: string;
  workloadId: string;
  /** Temporal frontend the agent connects to (TEMPORAL_ADDRESS). */
  temporalAddress?: string;
  temporalNamespace?: string;
  /** Where fedflow is installed (the units run /opt/fedflow/bin/fedflow). */
  installDir?: string;
  /** The release artifact to fetch and install; absent: fedflow is already in the image. */
  release?: ReleaseRef;
  /** The federation config (YAML or JSON text) for /etc/fedflow/federation.yaml. */
  federationConfig?: string;
  /** The site's TLS material (`fedflow certs` output), written under /var/lib/fedflow/tls. */
  tls?: SiteTlsText;
  /** The federation's transfer secret (hex), for agent.env. */
  transferSecret?: string;
}

/** A cloud-init that cannot be written: says what was wrong and what would be right. */
export class CloudInitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CloudInitError';
  }
}

/** Problems with a release reference, one line each (none when right). */
export function releaseRefProblems(r: ReleaseRef): string[] {
  const problems: string[] = [];
  let url: URL | undefined;
  // WHATWG URL parsing drops tabs and newlines quietly: a URL carrying them must be refused here,
  // or it could start a new line (a key) in the cloud-config or in the install script.
  if (/[\s\x00-\x1f\x7f]/.test(r.url)) problems.push(`release url ${JSON.stringify(r.url.slice(0, 120))} has whitespace or a control character: give the URL as one line with no spaces (percent-encode them)`);
  try {
    url = new URL(r.url);
  } catch {
    problems.push(`release url '${r.url}' is not a URL: give the https URL the instance fetches the artifact from, e.g. https://my-bucket.s3.amazonaws.com/fedflow-0.1.0-linux-x64.tar.gz`);
  }
  if (url && url.protocol !== 'https:' && url.protocol !== 'http:') problems.push(`release url '${r.url}' is ${url.protocol.replace(':', '')}: the instance fetches it with curl over https (or http), so give the object's https URL (a presigned S3 URL, a Blob SAS URL or a GCS signed URL for a private object)`);
  if (!/^[0-9a-f]{64}$/.test(r.sha256)) problems.push(`release sha256 '${r.sha256}' is not 64 lowercase hex digits: give the artifact's digest from dist/<artifact>.sha256 (\`sha256sum\`)`);
  return problems;
}

/** Single-quoted for sh: safe for any text. */
const shQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function installScript(r: ReleaseRef): string {
  return [
    '#!/bin/sh',
    '# fedflow: fetch the release artifact, check it, install it and start the agent (agent/site/cloud-init.ts).',
    'set -eu',
    `url=${shQuote(r.url)}`,
    `sha256=${r.sha256}`,
    // Messages name the URL without its query: a presigned URL's signature stays out of the boot log.
    'where="${url%%\\?*}"',
    // On the disk the release goes to, so install.sh moves it into place rather than copying.
    'mkdir -p /opt',
    'work="$(mktemp -d /opt/.fedflow-release.XXXXXX)"',
    'trap \'rm -rf "$work"\' EXIT',
    // The network may come up after cloud-init's final stage starts: retry, also a refused connection.
    'curl --fail --silent --show-error --location --retry 10 --retry-delay 3 --retry-connrefused --output "$work/release.tar.gz" "$url"',
    'echo "$sha256  $work/release.tar.gz" | sha256sum --check --quiet - || { echo "fedflow: the artifact at $where does not have sha256 $sha256; not installed" >&2; exit 1; }',
    'tar -xzf "$work/release.tar.gz" -C "$work"',
    'set -- "$work"/fedflow-*/install.sh',
    '[ -f "$1" ] || { echo "fedflow: the artifact at $where has no fedflow-<version>/install.sh" >&2; exit 1; }',
    'sh "$1" fedflow-agent.service',
    '',
  ].join('\n');
}

interface WriteFile {
  path: string;
  permissions: string;
  content: string;
}

export function agentCloudInit(o: CloudInitOptions): string {
  const dir = o.installDir ?? '/opt/fedflow';
  const problems = o.release ? releaseRefProblems(o.release) : [];
  if (o.release && dir !== '/opt/fedflow') problems.push(`installDir '${dir}': a release installs into /opt/fedflow (the units' ExecStart), so give no installDir with a release`);
  if (o.tls) {
    if (!/-----BEGIN CERTIFICATE-----/.test(o.tls.ca)) problems.push('tls.ca is not a PEM certificate: give the text of the federation\'s ca.pem');
    if (!/-----BEGIN CERTIFICATE-----/.test(o.tls.cert)) problems.push(`tls.cert is not a PEM certificate: give the text of sites/${siteDirName(o.siteId)}/cert.pem`);
    if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(o.tls.key)) problems.push(`tls.key is not a PEM private key: give the text of sites/${siteDirName(o.siteId)}/key.pem`);
  }
  // These become lines of agent.env and of the header comment: one line each, no control characters.
  for (const [field, v] of [['siteId', o.siteId], ['workloadId', o.workloadId], ['temporalAddress', o.temporalAddress], ['temporalNamespace', o.temporalNamespace], ['installDir', o.installDir]] as const) {
    if (v !== undefined && /[\s\x00-\x1f\x7f]/.test(v)) problems.push(`${field} ${JSON.stringify(v.slice(0, 120))} has whitespace or a control character: give it as one word`);
  }
  if (o.transferSecret !== undefined && !/^[0-9a-f]{64,}$/i.test(o.transferSecret)) problems.push('transferSecret must be at least 64 hex digits (32 bytes), e.g. from `openssl rand -hex 32`');
  if (problems.length) throw new CloudInitError(`cannot write the cloud-init of site '${o.siteId}':\n  ${problems.join('\n  ')}`);

  const env = [
    `FEDFLOW_SITE=${o.siteId}`,
    `FEDFLOW_WORKLOAD=${o.workloadId}`,
    ...(o.temporalAddress ? [`TEMPORAL_ADDRESS=${o.temporalAddress}`] : []),
    ...(o.temporalNamespace ? [`TEMPORAL_NAMESPACE=${o.temporalNamespace}`] : []),
    ...(o.transferSecret ? [`FEDFLOW_TRANSFER_SECRET=${o.transferSecret}`] : []),
  ];
  const files: WriteFile[] = [{ path: '/etc/fedflow/agent.env', permissions: '0600', content: `${env.join('\n')}\n` }];
  if (o.federationConfig !== undefined) files.push({ path: '/etc/fedflow/federation.yaml', permissions: '0644', content: o.federationConfig.endsWith('\n') ? o.federationConfig : `${o.federationConfig}\n` });
  if (o.tls) {
    // The layout the agent reads by default (FEDFLOW_HOME=/var/lib/fedflow, agent/transfer/certs.ts);
    // install.sh hands the directory to the fedflow user before the agent starts.
    const site = `/var/lib/fedflow/tls/sites/${siteDirName(o.siteId)}`;
    files.push({ path: '/var/lib/fedflow/tls/ca.pem', permissions: '0644', content: o.tls.ca }, { path: `${site}/cert.pem`, permissions: '0644', content: o.tls.cert }, { path: `${site}/key.pem`, permissions: '0600', content: o.tls.key });
  }
  if (o.release) files.push({ path: '/etc/fedflow/install-release.sh', permissions: '0700', content: installScript(o.release) });
  const runcmd = o.release ? [['sh', '/etc/fedflow/install-release.sh']] : [['systemctl', 'enable', '--now', 'fedflow-agent.service']];
  const header = [
    '#cloud-config',
    `# fedflow site agent for ${o.siteId}: ${o.release ? `installs the release ${o.release.url.replace(/[?#].*$/, '')} (sha256 ${o.release.sha256}) into ${dir}` : `fedflow is already installed in ${dir}`},`,
    `# then fedflow-agent.service runs \`${dir}/bin/fedflow agent --site \${FEDFLOW_SITE}\` with /etc/fedflow/agent.env`,
  ];
  return `${header.join('\n')}\n${stringify({ write_files: files, runcmd }, { lineWidth: 0 })}`;
}

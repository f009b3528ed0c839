/**
 * The federation's certificates: a CA, and per site an EC P-256 key and a certificate whose SAN
 * names the site (agent/transfer/site-identity.ts), signed by the CA, valid for both ends of a
 * connection (serverAuth + clientAuth). Keys are made with node:crypto and written 0600 by this
 * code (never by a tool with its own umask); certificates are signed with the openssl CLI.
 *
 * Layout of a certificate directory (`fedflow certs --out <dir>`; `<FEDFLOW_HOME>/tls` for the
 * local federation, which `fedflow up` fills):
 *
 *   ca.pem                     the federation CA's certificate: every agent holds it
 *   ca.key                     the CA's key (0600): stays where certificates are made, never on an agent
 *   sites/<site dir>/cert.pem  the site's certificate
 *   sites/<site dir>/key.pem   the site's key (0600): only on that site's agent
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { mkdirPrivate } from '../durable-files';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { FederationConfig } from '../../core/federation-config';
import { siteDirName } from '../site/home';
import { siteSubjectAltName } from './site-identity';

const OPENSSL = process.env.OPENSSL ?? 'openssl';

/** Certificates that cannot be made or read: says what is missing and how to make it. */
export class CertError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CertError';
  }
}
export const CA_DAYS = 3650;
export const SITE_CERT_DAYS = 825;

export interface SiteTlsPaths {
  ca: string;
  cert: string;
  key: string;
}

export const tlsDir = (home: string) => join(home, 'tls');
export const caCertPath = (dir: string) => join(dir, 'ca.pem');
export const caKeyPath = (dir: string) => join(dir, 'ca.key');
export const siteCertPath = (dir: string, site: string) => join(dir, 'sites', siteDirName(site), 'cert.pem');
export const siteKeyPath = (dir: string, site: string) => join(dir, 'sites', siteDirName(site), 'key.pem');

/** Where a site's TLS material is: the config's paths (relative ones from `home`), else `<home>/tls`. */
export function siteTlsPaths(config: FederationConfig, siteId: string, home: string): SiteTlsPaths {
  const site = config.sites.find((s) => s.id === siteId);
  if (!site) throw new CertError(`site '${siteId}' is not in federation '${config.federation}' (sites: ${config.sites.map((s) => s.id).join(', ')})`);
  const at = (p: string) => (isAbsolute(p) ? p : resolve(home, p));
  const dir = tlsDir(home);
  return {
    ca: config.tls.ca ? at(config.tls.ca) : caCertPath(dir),
    cert: site.tls ? at(site.tls.cert) : siteCertPath(dir, siteId),
    key: site.tls ? at(site.tls.key) : siteKeyPath(dir, siteId),
  };
}

function openssl(args: string[], input?: string): string {
  try {
    return execFileSync(OPENSSL, args, { input, stdio: ['pipe', 'pipe', 'pipe'], encoding: 'utf8' });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw new CertError(`making certificates needs the openssl command, which was not found (install it: apt-get install openssl, or set OPENSSL to its path)`);
    throw new CertError(`openssl ${args[0]} failed: ${(e.stderr ?? e.message).trim().slice(0, 500)}`);
  }
}

/** Writes `text` to `path` with `mode`, atomically (temp file + rename), making the directory. */
function writeAtomic(path: string, text: string, mode: number): void {
  mkdirPrivate(dirname(path));
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, text, { mode, flag: 'wx' });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

function newKey(path: string): void {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1', privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
  writeAtomic(path, privateKey, 0o600);
}

/** Makes the federation's CA in `dir` unless one is there. Returns whether it made one. */
export function ensureCa(dir: string, federation: string): boolean {
  if (existsSync(caCertPath(dir))) return false;
  if (existsSync(caKeyPath(dir))) throw new CertError(`${caKeyPath(dir)} exists without ${caCertPath(dir)}: remove the key or restore the certificate`);
  newKey(caKeyPath(dir));
  const pem = openssl(['req', '-x509', '-new', '-key', caKeyPath(dir), '-days', String(CA_DAYS), '-subj', `/O=fedflow/CN=fedflow federation ${federation} CA`,
    '-addext', 'basicConstraints=critical,CA:TRUE,pathlen:0', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  writeAtomic(caCertPath(dir), pem, 0o644);
  return true;
}

/**
 * Makes `site`'s key and certificate in `dir`, signed by the CA there, unless they exist.
 * Returns whether it made them.
 */
export function ensureSiteCert(dir: string, federation: string, site: string): boolean {
  const certPath = siteCertPath(dir, site);
  const keyPath = siteKeyPath(dir, site);
  if (existsSync(certPath) && existsSync(keyPath)) return false;
  if (!existsSync(caKeyPath(dir))) throw new CertError(`cannot sign a certificate for '${site}': the CA key ${caKeyPath(dir)} is not here (certificates are made where the CA key is: \`fedflow certs --out ${dir}\`)`);
  rmSync(certPath, { force: true });
  newKey(keyPath);
  const csr = openssl(['req', '-new', '-key', keyPath, '-subj', `/O=fedflow/OU=${federation}/CN=${site}`]);
  const ext = join(dirname(keyPath), `ext.${process.pid}.cnf`);
  writeFileSync(ext, `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=${siteSubjectAltName(federation, site)}\n`);
  try {
    const pem = openssl(['x509', '-req', '-CA', caCertPath(dir), '-CAkey', caKeyPath(dir), '-set_serial', `0x${randomBytes(16).toString('hex')}`, '-days', String(SITE_CERT_DAYS), '-extfile', ext], csr);
    writeAtomic(certPath, pem, 0o644);
  } finally {
    rmSync(ext, { force: true });
  }
  return true;
}

/**
 * `fedflow certs`: the CA and a key and certificate for every site of the federation in `dir`,
 * keeping what is there. Returns the lines to print (paths, never key material).
 */
export function makeFederationCerts(dir: string, config: FederationConfig, sites = config.sites.map((s) => s.id)): string[] {
  const lines: string[] = [];
  lines.push(`${ensureCa(dir, config.federation) ? 'made' : 'kept'} CA ${caCertPath(dir)} (key ${caKeyPath(dir)}, 0600: keep it off the agents)`);
  for (const site of sites) {
    if (!config.sites.some((s) => s.id === site)) throw new CertError(`site '${site}' is not in federation '${config.federation}' (sites: ${config.sites.map((s) => s.id).join(', ')})`);
    lines.push(`${ensureSiteCert(dir, config.federation, site) ? 'made' : 'kept'} ${site}: ${siteCertPath(dir, site)}, key ${siteKeyPath(dir, site)} (0600)`);
  }
  return lines;
}

/**
 * The local federation's certificates in `<home>/tls`, made when missing (`fedflow up`, `npm
 * start`, and a worker started on a home without them). Only for what the config leaves at its
 * default place: material the config names is the operator's to make.
 */
export function ensureLocalCerts(home: string, config: FederationConfig, sites = config.sites.map((s) => s.id)): string[] {
  if (config.tls.mode !== 'mutual-tls') return [];
  const dir = tlsDir(home);
  // Worker processes sharing a home start together: one makes the CA, the others wait for it
  // (two CAs made at once would leave site certificates signed by a CA that is not ca.pem).
  return withDirLock(dir, () => ensureLocalCertsLocked(dir, config, sites));
}

const LOCK_STALE_MS = 60_000;

function withDirLock<T>(dir: string, fn: () => T): T {
  mkdirPrivate(dir);
  const lock = join(dir, '.lock');
  const deadline = Date.now() + 2 * LOCK_STALE_MS;
  for (;;) {
    try {
      closeSync(openSync(lock, 'wx', 0o600));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      try {
        if (Date.now() - statSync(lock).mtimeMs > LOCK_STALE_MS) rmSync(lock, { force: true });
      } catch {
        /* gone meanwhile */
      }
      if (Date.now() > deadline) throw new CertError(`${lock} is held by another process for over ${(2 * LOCK_STALE_MS) / 1000} s; remove it if no fedflow process is making certificates`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    }
  }
  try {
    return fn();
  } finally {
    rmSync(lock, { force: true });
  }
}

function ensureLocalCertsLocked(dir: string, config: FederationConfig, sites: string[]): string[] {
  const lines: string[] = [];
  if (!config.tls.ca && ensureCa(dir, config.federation)) lines.push(`made the federation CA ${caCertPath(dir)}`);
  if (config.tls.ca) return lines;
  for (const site of sites) {
    if (config.sites.find((s) => s.id === site)?.tls) continue;
    if (ensureSiteCert(dir, config.federation, site)) lines.push(`made ${site}'s key and certificate in ${dirname(siteCertPath(dir, site))}`);
  }
  return lines;
}

export function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new CertError(`cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (make it with \`fedflow certs\`, or set its path in the federation config)`);
  }
}

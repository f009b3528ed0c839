/**
 * A workload's address as the federation log records it, read as a TCP endpoint for the front.
 * The log holds what the instance says it serves on: `http://127.0.0.1:41234` for the sample,
 * `tcp://127.0.0.1:5432` or `127.0.0.1:5432` for a database. The front forwards bytes, so only
 * the host and the port matter; the scheme is kept for nothing.
 */

export interface Backend {
  host: string;
  port: number;
}

/** A bad address: the message names what was given and what would be right. */
export class BackendAddressError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BackendAddressError';
  }
}

const FORMS = 'host:port, [v6]:port or scheme://host:port (e.g. 127.0.0.1:5432, tcp://db.internal:5432, http://127.0.0.1:8080)';

export function parseBackend(address: string): Backend {
  if (typeof address !== 'string' || !address.trim()) throw new BackendAddressError(`a workload address must be a non-empty string, one of ${FORMS}; got ${JSON.stringify(address)}`);
  const given = address.trim();
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(given) ? given : `tcp://${given}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new BackendAddressError(`workload address '${given.slice(0, 80)}' is not ${FORMS}`);
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) throw new BackendAddressError(`workload address '${given.slice(0, 80)}' names no host; use ${FORMS}`);
  // URL leaves the port empty when it is the scheme's default; a default is no help for tcp://.
  const port = url.port ? Number(url.port) : ({ 'http:': 80, 'https:': 443 } as Record<string, number>)[url.protocol];
  if (port === undefined || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new BackendAddressError(`workload address '${given.slice(0, 80)}' names no port in 1..65535; use ${FORMS}`);
  }
  return { host, port };
}

/** `host:port` (IPv6 in brackets): how the front names a backend in its counters and logs. */
export function backendKey(b: Backend): string {
  return b.host.includes(':') ? `[${b.host}]:${b.port}` : `${b.host}:${b.port}`;
}

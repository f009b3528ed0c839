/**
 * A throwaway certificate authority and a 127.0.0.1 server certificate, made with the openssl CLI
 * in a temp dir at test time, so the Azure fake can speak real TLS and the SDK can be told to
 * trust exactly this CA (through an https.Agent) rather than turning verification off.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCa {
  ca: string;
  cert: string;
  key: string;
  dir: string;
  cleanup(): void;
}

const OPENSSL = process.env.OPENSSL ?? '/usr/bin/openssl';

export function makeTestCa(): TestCa {
  const dir = mkdtempSync(join(tmpdir(), 'fedflow-test-ca-'));
  const p = (f: string) => join(dir, f);
  const run = (args: string[]) => execFileSync(OPENSSL, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run(['req', '-x509', ...ec, '-keyout', p('ca.key'), '-out', p('ca.crt'), '-days', '1', '-subj', '/CN=fedflow test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  run(['req', ...ec, '-keyout', p('server.key'), '-out', p('server.csr'), '-subj', '/CN=127.0.0.1']);
  writeFileSync(p('server.ext'), 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n');
  run(['x509', '-req', '-in', p('server.csr'), '-CA', p('ca.crt'), '-CAkey', p('ca.key'), '-CAcreateserial', '-out', p('server.crt'), '-days', '1', '-extfile', p('server.ext')]);
  return {
    ca: readFileSync(p('ca.crt'), 'utf8'),
    cert: readFileSync(p('server.crt'), 'utf8'),
    key: readFileSync(p('server.key'), 'utf8'),
    dir,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

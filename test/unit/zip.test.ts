/**
 * infra/zip.ts (fflate) read back by an independent reader (Python's zipfile): names (UTF-8 too),
 * bytes, CRCs, Unix modes, and the same bytes for the same input.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { zipBytes } from '../../infra/zip';

const READ = `
import json, sys, zipfile, hashlib
z = zipfile.ZipFile(sys.argv[1])
bad = z.testzip()
print(json.dumps({'bad': bad, 'entries': [{'name': i.filename, 'size': i.file_size, 'method': i.compress_type, 'mode': i.external_attr >> 16, 'sha': hashlib.sha256(z.read(i)).hexdigest()} for i in z.infolist()]}))
`;

describe('zip writer', () => {
  it('writes what Python\'s zipfile reads back: names, bytes, CRCs, Unix modes; the same bytes for the same input', () => {
    const text = Buffer.from('fedflow '.repeat(5000));
    const noise = randomBytes(4096);
    const entries = [
      { name: 'worker/lambda.js', data: text },
      { name: 'node_modules/x/bin/run', data: noise, mode: 0o755 },
      { name: 'config/fédération.yaml', data: Buffer.from('federation: x\n') },
      { name: 'empty', data: Buffer.alloc(0) },
    ];
    const zip = zipBytes(entries);
    assert.deepEqual(zipBytes(entries), zip, 'the same input gives the same bytes');
    const dir = mkdtempSync(join(tmpdir(), 'fedflow-zip-'));
    try {
      writeFileSync(join(dir, 'a.zip'), zip);
      const r = spawnSync('python3', ['-c', READ, join(dir, 'a.zip')], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { bad: string | null; entries: { name: string; size: number; method: number; mode: number; sha: string }[] };
      assert.equal(out.bad, null, 'every CRC matches');
      const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
      assert.equal(out.entries[0]!.method, 8, 'text is deflated');
      assert.deepEqual(
        out.entries.map(({ method: _m, ...e }) => e),
        [
          { name: 'worker/lambda.js', size: text.length, mode: 0o100644, sha: sha(text) },
          { name: 'node_modules/x/bin/run', size: noise.length, mode: 0o100755, sha: sha(noise) },
          { name: 'config/fédération.yaml', size: 14, mode: 0o100644, sha: sha(Buffer.from('federation: x\n')) },
          { name: 'empty', size: 0, mode: 0o100644, sha: sha(Buffer.alloc(0)) },
        ],
      );
      assert.ok(zip.length < text.length / 10 + noise.length + 1024, `deflated: ${zip.length} bytes`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

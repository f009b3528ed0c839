/**
 * `fedflow secrets set <name> --site <id>`: a workload secret stored at a site, its value from
 * stdin, 0600 in a 0700 directory, replaced whole; bad input (unknown site, bad name, empty stdin)
 * is refused with the reason and writes nothing.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { REPO_ROOT } from '../../agent/site/home';
import { readWorkloadSecret, workloadSecretPath } from '../../agent/workload/secrets';

const home = mkdtempSync(join(tmpdir(), 'fedflow-secrets-'));
const siteDir = join(home, 'sites', 'dc_paris');

function secrets(input: string, ...args: string[]) {
  const r = spawnSync(join(REPO_ROOT, 'bin', 'fedflow'), ['secrets', 'set', ...args], { input, encoding: 'utf8', env: { ...process.env, FEDFLOW_HOME: home }, timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('fedflow secrets set', () => {
  after(() => rmSync(home, { recursive: true, force: true }));

  it('stores the value from stdin at the site, 0600, and a second set replaces it', () => {
    const r = secrets('hunter2\n', 'pg-password', '--site', 'dc:paris');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /stored secret 'pg-password' for site dc:paris .*\(0600, 7 bytes\)/);
    assert.ok(!r.stdout.includes('hunter2') && !r.stderr.includes('hunter2'), 'the value is never printed');
    const file = workloadSecretPath(siteDir, 'pg-password');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(dirname(file)).mode & 0o777, 0o700);
    assert.deepEqual(readWorkloadSecret(siteDir, 'pg-password'), { ok: true, value: 'hunter2' });
    assert.equal(secrets('correct horse', 'pg-password', '--site', 'dc:paris').code, 0);
    assert.equal(readFileSync(file, 'utf8'), 'correct horse');
  });

  it('run as root, hands the secret to the owner of the home (the user the agent runs as)', { skip: process.getuid?.() !== 0 ? 'needs root' : false }, () => {
    const owned = mkdtempSync(join(tmpdir(), 'fedflow-secrets-owned-'));
    try {
      const nobody = { uid: 65534, gid: 65534 };
      chownSync(owned, nobody.uid, nobody.gid);
      const r = spawnSync(join(REPO_ROOT, 'bin', 'fedflow'), ['secrets', 'set', 'redis-auth', '--site', 'dc:paris'], { input: 'x', encoding: 'utf8', env: { ...process.env, FEDFLOW_HOME: owned }, timeout: 60_000 });
      assert.equal(r.status, 0, r.stderr);
      const file = workloadSecretPath(join(owned, 'sites', 'dc_paris'), 'redis-auth');
      for (const p of [file, dirname(file), dirname(dirname(file))]) {
        const st = statSync(p);
        assert.deepEqual([st.uid, st.gid], [nobody.uid, nobody.gid], `${p} belongs to the home's owner`);
      }
    } finally {
      rmSync(owned, { recursive: true, force: true });
    }
  });

  it('refuses an unknown site, a bad name and an empty stdin, and writes nothing', () => {
    const site = secrets('v', 'other', '--site', 'dc:nowhere');
    assert.equal(site.code, 1);
    assert.match(site.stderr, /site 'dc:nowhere' is not in federation 'local' \(its sites: dc:paris/);
    const name = secrets('v', '../escape', '--site', 'dc:paris');
    assert.equal(name.code, 1);
    assert.match(name.stderr, /secret name '\.\.\/escape' is not valid: a secret name is lowercase letters/);
    const empty = secrets('', 'empty', '--site', 'dc:paris');
    assert.equal(empty.code, 1);
    assert.match(empty.stderr, /stdin was empty; pipe the value in \(nothing was written\)/);
    for (const n of ['other', 'empty']) assert.equal(existsSync(workloadSecretPath(siteDir, n)), false, n);
    assert.equal(existsSync(join(home, 'sites', 'dc_paris', 'escape')), false);
  });
});

/**
 * The workload runner with real services: PostgreSQL 15 (Debian's binaries, an initdb'd data
 * directory) and Redis (Debian's redis-server, AOF on) started from their shipped specs, written
 * to, verified, frozen, started again on the same data and verified again; and the failures a
 * spec's hooks and checks can have, each with a real fault.
 *
 * PostgreSQL refuses to run as root: its spec says `user: nobody`, which the runner uses when the
 * test runs as root. The test's directory is then made passable (chmod 711) for that user.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT } from '../../agent/site/home';
import { launchedWith, processStartTime } from '../../agent/workload/exec';
import { workloadSecretPath, writeWorkloadSecret } from '../../agent/workload/secrets';
import { INSTANCE_ENV, instanceTag, WorkloadError, WorkloadRunner } from '../../agent/workload/runner';
import { SiteWorkloads } from '../../activities/site-workloads';
import { LocalProvider } from '../../adapters/local/provider';
import { loadWorkloadSpecFile } from '../../agent/workload/spec-file';
import { FailureType } from '../../core/contracts/failures';
import { parseWorkloadSpec, type WorkloadSpec } from '../../core/workload-spec';

const run = promisify(execFile);

function example(name: string): WorkloadSpec {
  return loadWorkloadSpecFile(join(REPO_ROOT, 'workloads', `${name}.yaml`));
}

/** The sample's spec with some fields replaced: a fast, dependency-free instance to break hooks on. */
function sampleWith(id: string, patch: (s: Record<string, unknown> & { hooks: Record<string, unknown> }) => void): WorkloadSpec {
  const raw = JSON.parse(JSON.stringify(example('kv'))) as Record<string, unknown> & { hooks: Record<string, unknown> };
  raw.id = id;
  patch(raw);
  const r = parseWorkloadSpec(raw);
  if (!r.ok) throw new Error(r.problems.join('\n'));
  return r.spec;
}

async function psql(port: number, sql: string): Promise<string> {
  const { stdout } = await run('psql', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-AtX', '-v', 'ON_ERROR_STOP=1', '-c', sql]);
  return stdout.trim();
}

async function redis(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args]);
  return stdout.trim();
}

function expectWorkloadError(type: FailureType, re: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof WorkloadError, `expected a WorkloadError, got ${String(err)}`);
    assert.equal(err.type, type, err.message);
    assert.match(err.message, re);
    return true;
  };
}

describe('workload runner', () => {
  let home: string;
  let runner: WorkloadRunner;
  const started = new Set<string>();

  before(() => {
    home = mkdtempSync(join(tmpdir(), 'fedflow-runner-'));
    // mkdtemp makes it 0700: the spec's unprivileged user must pass through it to the site.
    chmodSync(home, 0o711);
    const siteDir = join(home, 'sites', 'dc_paris');
    mkdirSync(siteDir, { recursive: true });
    runner = new WorkloadRunner({ site: 'dc:paris', siteDir, fedflowRoot: REPO_ROOT });
  });
  after(async () => {
    for (const id of started) await runner.stop(id).catch(() => undefined);
    rmSync(home, { recursive: true, force: true });
  });

  it('PostgreSQL: initdb, start, write, verify, freeze (clean stop), start again on the same data, same digest', async () => {
    const spec = example('postgres');
    await runner.install(spec);
    assert.ok(existsSync(join(runner.volumeRoot('postgres'), 'pgdata', 'PG_VERSION')), 'the volume is an initdb-ed data directory');
    started.add('postgres');
    const s = await runner.start('postgres');
    assert.match(s.address, /^postgresql:\/\/postgres@127\.0\.0\.1:\d+\/postgres$/);
    await psql(s.port, 'CREATE TABLE orders (id int PRIMARY KEY, item text, qty int); INSERT INTO orders SELECT g, md5(g::text), g % 7 FROM generate_series(1, 2000) g');
    assert.equal(await psql(s.port, 'SELECT count(*) FROM orders'), '2000');
    const before = await runner.verify('postgres');
    assert.match(before.digest, /^[0-9a-f]{32}$/);
    assert.equal(before.privateBoot, false);
    // The spec's flush hook (a CHECKPOINT, run before each pre-copy capture) writes a checkpoint while it serves.
    const checkpointLsn = () => psql(s.port, 'SELECT checkpoint_lsn FROM pg_control_checkpoint()');
    const lsnBefore = await checkpointLsn();
    const flushed = await runner.flush('postgres');
    assert.ok(flushed && flushed.ms >= 0, 'the flush hook ran');
    assert.notEqual(await checkpointLsn(), lsnBefore, 'a new checkpoint was written');

    const frozen = await runner.freeze('postgres');
    assert.equal(frozen.stopped, true, 'the fast shutdown (SIGINT) stops the server');
    assert.equal(processStartTime(s.pid), undefined, 'the postmaster is gone');
    assert.equal(runner.info('postgres').status, 'frozen');
    assert.equal(await runner.flush('postgres'), undefined, 'a frozen instance is not flushed');
    // Verified on the frozen data: booted privately, checked, stopped again.
    const atFreeze = await runner.verify('postgres');
    assert.equal(atFreeze.privateBoot, true);
    assert.equal(atFreeze.digest, before.digest);
    assert.equal(runner.info('postgres').running, false, 'the private boot is stopped again');

    // As a volume synced from another site arrives: owned by the agent, with its default mode.
    // The runner hands it back to the spec's user with the spec's mode, or PostgreSQL would refuse it.
    const pgdata = join(runner.volumeRoot('postgres'), 'pgdata');
    chmodSync(pgdata, 0o755);
    if (process.getuid?.() === 0) {
      chownSync(pgdata, 0, 0);
      chownSync(join(pgdata, 'PG_VERSION'), 0, 0);
    }
    const again = await runner.start('postgres');
    assert.equal(statSync(pgdata).mode & 0o777, 0o700);
    assert.equal(again.port, s.port, 'the same port, kept across restarts');
    assert.equal((await runner.healthy('postgres')).healthy, true);
    assert.equal((await runner.verify('postgres')).digest, before.digest, 'same data after a restart on the same directory');
    // The digest does see the data: one changed row changes it.
    await psql(again.port, "UPDATE orders SET qty = qty + 1 WHERE id = 1234");
    assert.notEqual((await runner.verify('postgres')).digest, before.digest);
    await runner.stop('postgres');
    assert.equal((await runner.healthy('postgres')).healthy, false);
  });

  it('PostgreSQL: a start or a private boot its agent crashed in is found by the next agent and stopped; the next start and verification go through', async () => {
    // The health check passes only while a file exists: without it, a start (or a private boot)
    // stays between its spawn and its first passing check, as when the agent dies in it. A second
    // runner on the same site stands for the agent restarted. Before the runner found the
    // workload's processes that no record names (its strays, by the tag in their environment),
    // the second start found PostgreSQL's lock file held ("postmaster.pid already exists") and failed.
    const gate = mkdtempSync(join(tmpdir(), 'fedflow-halfstart-'));
    chmodSync(gate, 0o777);
    const ok = join(gate, 'ok');
    const raw = JSON.parse(JSON.stringify(example('postgres'))) as Record<string, unknown> & { health: Record<string, unknown> };
    raw.id = 'pg-halfstart';
    raw.health = { command: ['sh', '-c', `test -e ${ok} && pg_isready -q -h {host} -p {port} -U postgres`], periodSeconds: 0.05, timeoutSeconds: 2, startTimeoutSeconds: 60 };
    const parsed = parseWorkloadSpec(raw);
    if (!parsed.ok) throw new Error(parsed.problems.join('\n'));
    const id = parsed.spec.id;
    const siteDir = join(home, 'sites', 'dc_paris');
    const launched = () => launchedWith(INSTANCE_ENV, instanceTag(siteDir, id)).map((p) => p.pid);
    const alive = (pid: number | undefined) => pid !== undefined && processStartTime(pid) !== undefined;
    const waitFor = async (what: string, cond: () => boolean) => {
      for (const t0 = Date.now(); !cond(); await new Promise((r) => setTimeout(r, 20))) {
        if (Date.now() - t0 > 30_000) throw new Error(`timed out waiting for ${what}`);
      }
    };
    try {
      await runner.install(parsed.spec);
      started.add(id);
      // 1. A start that never sees its check pass.
      const first = runner.start(id);
      first.catch(() => undefined);
      await waitFor('its server spawned', () => launched().length === 1);
      const [halfStarted] = launched();
      assert.equal(runner.info(id).running, false, 'not running until its check passes');
      assert.equal(runner.strays(id).length, 1, 'a process of the workload that no record names');
      writeFileSync(ok, '');
      const restarted = new WorkloadRunner({ site: 'dc:paris', siteDir, fedflowRoot: REPO_ROOT });
      const s = await restarted.start(id);
      assert.equal(alive(halfStarted), false, 'the half-started server was stopped');
      assert.notEqual(s.pid, halfStarted);
      assert.deepEqual(launched(), [s.pid], 'the new server is the only one');
      await psql(s.port, 'CREATE TABLE t (n int); INSERT INTO t SELECT generate_series(1, 100)');
      const before = await restarted.verify(id);

      // 2. A private boot (the verification of a frozen instance) that never sees its check pass.
      await restarted.freeze(id);
      rmSync(ok);
      const boot = restarted.verify(id);
      boot.catch(() => undefined);
      await waitFor('the private boot spawned', () => launched().length === 1);
      const [privateBoot] = launched();
      writeFileSync(ok, '');
      const again = new WorkloadRunner({ site: 'dc:paris', siteDir, fedflowRoot: REPO_ROOT });
      const after = await again.verify(id);
      assert.equal(after.privateBoot, true);
      assert.equal(after.digest, before.digest, 'the frozen data verifies as before');
      assert.equal(alive(privateBoot), false, 'the private boot left behind was stopped');
      // Its own private boot is stopped after the digest is returned (a cut-over's target waits for
      // the digest, not for the stop): a start at once first waits for that stop (stopStrays), else
      // its PostgreSQL would meet the boot's postmaster.pid ("lock file already exists").
      const next = await again.start(id);
      assert.deepEqual(launched(), [next.pid], 'its own private boot stopped before the start, whose server is the only one');
      await Promise.allSettled([first, boot]);
      await again.stop(id);
      assert.deepEqual(launched(), [], 'and none is left');
    } finally {
      rmSync(gate, { recursive: true, force: true });
    }
  });

  it('a verification\'s private boot answers before it is stopped; its stop runs on by itself, and a start right after waits for it', async () => {
    // A service whose clean stop (the freeze hook, POST /stop) takes 300 ms; SIGTERM would stop it
    // at once. Each way out is written to its volume, so the test sees which stop ended each boot.
    const prog = [
      "const fs = require('fs'); const out = (w) => fs.appendFileSync('{volume}/stops', w + '\\n');",
      "process.on('SIGTERM', () => { out('SIGTERM'); process.exit(0); });",
      "require('http').createServer((q, r) => { r.end('ok'); if (q.url === '/stop') setTimeout(() => { out('hook'); process.exit(0); }, 300); }).listen({port}, '{host}');",
    ].join(' ');
    const spec = sampleWith('slow-stop', (s) => {
      s.run = { local: { command: ['{node}', '-e', prog] } };
      s.health = { tcp: {}, periodSeconds: 0.02 };
      s.hooks.freeze = { http: { method: 'POST', path: '/stop' }, stopsInstance: true, timeoutSeconds: 5 };
      s.hooks.thaw = { start: true };
      s.verify = { command: ['echo', 'the frozen data'] };
    });
    await runner.install(spec);
    started.add(spec.id);
    const stops = () => readFileSync(join(runner.volumeRoot(spec.id), 'data', 'stops'), 'utf8').trim().split('\n');
    const waitFor = async (what: string, cond: () => boolean) => {
      for (const t0 = Date.now(); !cond(); await new Promise((r) => setTimeout(r, 20))) {
        if (Date.now() - t0 > 10_000) throw new Error(`timed out waiting for ${what}`);
      }
    };
    await runner.start(spec.id);
    await runner.freeze(spec.id);
    assert.deepEqual(stops(), ['hook']);

    // 1. The digest comes back while the boot is still being stopped (its stop takes 300 ms);
    // left alone, the stop ends it, and the record no longer names it.
    const first = await runner.verify(spec.id);
    assert.deepEqual([first.privateBoot, first.digest], [true, 'the frozen data']);
    assert.equal(runner.strays(spec.id).length, 1, 'the private boot still runs when its digest is returned');
    await waitFor('the private boot to stop by itself', () => runner.strays(spec.id).length === 0);
    assert.deepEqual(stops(), ['hook', 'hook'], 'stopped by its clean stop');
    assert.equal(runner.info(spec.id).running, false);

    // 2. A start right after a verification waits for the boot's clean stop: it does not stop it
    // a second time, another way (SIGTERM), while the freeze hook is still stopping it.
    await runner.verify(spec.id);
    const s = await runner.start(spec.id);
    assert.deepEqual(stops(), ['hook', 'hook', 'hook'], 'the boot ended by its own stop, not by a SIGTERM from the start');
    assert.equal(runner.strays(spec.id, s.pid).length, 0);
    assert.equal(runner.info(spec.id).running, true);
  });

  it('Redis with AOF: start, write, verify, freeze (SIGTERM), start again on the same data, same digest', async () => {
    const spec = example('redis');
    await runner.install(spec);
    started.add('redis');
    const s = await runner.start('redis');
    for (let i = 0; i < 200; i++) await redis(s.port, 'SET', `key:${i}`, `value-${i}-${'x'.repeat(i % 50)}`);
    await redis(s.port, 'HSET', 'h', 'a', '1', 'b', '2');
    const before = await runner.verify('redis');
    assert.match(before.digest, /^[0-9a-f]{40}$/);
    assert.notEqual(before.digest, '0'.repeat(40), 'a non-empty dataset');

    const frozen = await runner.freeze('redis');
    assert.equal(frozen.stopped, true);
    const files = readdirSync(join(runner.volumeRoot('redis'), 'data'), { recursive: true }).map(String);
    assert.ok(files.some((f) => f.includes('appendonly')), `the AOF is on the volume: ${files.join(', ')}`);
    assert.equal((await runner.verify('redis')).digest, before.digest, 'verified on the frozen data');

    const again = await runner.start('redis');
    assert.equal((await runner.verify('redis')).digest, before.digest, 'replayed from the AOF: same data');
    assert.equal(await redis(again.port, 'GET', 'key:7'), `value-7-${'x'.repeat(7)}`);
    await redis(again.port, 'SET', 'key:7', 'changed');
    assert.notEqual((await runner.verify('redis')).digest, before.digest);
    // Thaw after a stopping freeze starts it again.
    await runner.freeze('redis');
    await runner.thaw('redis');
    assert.equal(await redis(again.port, 'GET', 'key:7'), 'changed');
  });

  it('the sample (workloads/kv.yaml): HTTP health, freeze refuses writes, verify, thaw takes writes again', async () => {
    await runner.install(example('kv'));
    started.add('kv');
    const s = await runner.start('kv');
    assert.equal((await fetch(`${s.address}/kv/a`, { method: 'PUT', body: 'one' })).status, 200);
    const before = await runner.verify('kv');
    assert.equal((JSON.parse(before.digest) as { keys: number }).keys, 1);
    const frozen = await runner.freeze('kv');
    assert.equal(frozen.stopped, false, 'an HTTP freeze leaves it serving reads');
    assert.equal((await fetch(`${s.address}/kv/b`, { method: 'PUT', body: 'two' })).status, 503, 'no writes while frozen');
    assert.equal((await runner.verify('kv')).digest, before.digest);
    await runner.thaw('kv');
    assert.equal((await fetch(`${s.address}/kv/b`, { method: 'PUT', body: 'two' })).status, 200);
    assert.notEqual((await runner.verify('kv')).digest, before.digest);
  });

  it('secretEnv: the value comes from the site 0600 file, never from the spec; a missing or loose file is refused before anything starts', async () => {
    const value = 's3cret with spaces';
    const spec = sampleWith('with-secret', (s) => {
      (s.run as { local: Record<string, unknown> }).local.secretEnv = { KV_TOKEN: 'kv-token' };
      s.verify = { command: ['sh', '-c', 'printf %s "$KV_TOKEN" | sha256sum | cut -c1-64'] };
    });
    assert.ok(!JSON.stringify(spec).includes(value), 'the spec holds the name only');
    const file = workloadSecretPath(runner.siteDir, 'kv-token');
    await assert.rejects(runner.install(spec), expectWorkloadError(FailureType.WorkloadStartFailed, /secretEnv\.KV_TOKEN names secret 'kv-token', but at site dc:paris .*kv-token does not exist; set it there with `fedflow secrets set kv-token --site dc:paris`/));
    assert.equal(runner.installed(spec.id), false, 'nothing installed without its secret');
    assert.equal(existsSync(runner.volumeRoot(spec.id)), false, 'no volume created');
    writeWorkloadSecret(runner.siteDir, 'kv-token', `${value}\n`);
    await runner.install(spec);
    started.add(spec.id);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(dirname(file)).mode & 0o777, 0o700);
    chmodSync(file, 0o644);
    await assert.rejects(runner.start(spec.id), expectWorkloadError(FailureType.WorkloadStartFailed, /has mode 0644, readable by others than its owner; make it 0600/));
    chmodSync(file, 0o600);
    await runner.start(spec.id);
    const { digest } = await runner.verify(spec.id);
    assert.equal(digest, createHash('sha256').update(value).digest('hex'), 'the check saw the value, without its trailing newline');
  });

  it('an image volume is a sparse disk-image file of its size, and templates name each volume', async () => {
    const spec = sampleWith('with-disk', (s) => {
      s.volumes = [{ name: 'data' }, { name: 'disk', kind: 'image', sizeMiB: 4, path: 'images/disk.img' }];
      s.verify = { command: ['stat', '-c', '%s %n', '{volume.disk}'] };
    });
    await runner.install(spec);
    started.add(spec.id);
    await runner.start(spec.id);
    const { digest } = await runner.verify(spec.id);
    assert.equal(digest, `${4 * 1024 * 1024} ${join(runner.volumeRoot('with-disk'), 'images', 'disk.img')}`);
  });

  it('a freeze hook that exits non-zero is a failure naming the hook, its exit code and its stderr', async () => {
    const spec = sampleWith('hook-fails', (s) => {
      s.hooks.freeze = { command: 'echo "cannot flush: disk on fire" >&2; exit 3', timeoutSeconds: 5 };
    });
    await runner.install(spec);
    started.add(spec.id);
    await runner.start(spec.id);
    await assert.rejects(runner.freeze(spec.id), expectWorkloadError(FailureType.WorkloadHookFailed, /^freeze hook of workload 'hook-fails' at dc:paris \(echo .*\) exited with code 3: cannot flush: disk on fire$/));
    // Not frozen, but begun: the hook may have half-frozen it, so the thaw (the compensation) runs its hook.
    assert.equal(runner.info(spec.id).status, 'freezing', 'a failed freeze is recorded as begun, not done');
    await runner.thaw(spec.id);
    assert.equal(runner.info(spec.id).status, 'running');
  });

  it('a flush hook runs while the instance serves; one that fails or hangs is named; a spec without one flushes nothing', async () => {
    /** The sample with `flush` as its flush hook (none if undefined), installed and started. */
    const runningWith = async (id: string, flush: Record<string, unknown> | undefined) => {
      const spec = sampleWith(id, (s) => {
        if (flush) s.hooks.flush = flush;
      });
      await runner.install(spec);
      started.add(spec.id);
      await runner.start(spec.id);
      return spec;
    };
    const spec = await runningWith('flushes', { command: 'echo flushed >> {volume}/flushes', timeoutSeconds: 5 });
    const r = await runner.flush(spec.id);
    assert.ok(r && r.ms >= 0);
    assert.equal(readFileSync(join(runner.volumeRoot(spec.id), 'data', 'flushes'), 'utf8'), 'flushed\n', 'the hook ran once, with its templates filled in');
    assert.equal(runner.info(spec.id).status, 'running', 'a flush does not freeze');
    // Through the site's workloads, as a pre-copy capture asks (the volume is named after the workload).
    const site = new SiteWorkloads('dc:paris', new LocalProvider({ site: 'dc:paris', dir: join(home, 'sites', 'dc_paris'), capacityInstances: 8 }), runner);
    const viaSite = await site.flushVolume(spec.id);
    assert.ok(viaSite && 'ms' in viaSite, JSON.stringify(viaSite));
    assert.equal(await site.flushVolume('vol-of-no-workload'), undefined, 'a volume that is no workload\'s: nothing to flush');
    assert.equal(await site.flushVolume('../flushes'), undefined, 'not a workload id: never a path');
    // A freeze that leaves the process running (the sample's HTTP freeze): a frozen instance is not flushed.
    await runner.freeze(spec.id);
    assert.equal(await runner.flush(spec.id), undefined);
    assert.equal(readFileSync(join(runner.volumeRoot(spec.id), 'data', 'flushes'), 'utf8'), 'flushed\nflushed\n', 'two flushes ran, none while frozen');
    await runner.thaw(spec.id);

    const failing = await runningWith('flush-fails', { command: 'echo tried >> {volume}/tries; echo "checkpoint refused" >&2; exit 4', timeoutSeconds: 5 });
    await assert.rejects(runner.flush(failing.id), expectWorkloadError(FailureType.WorkloadHookFailed, /^flush hook of workload 'flush-fails' at dc:paris \(echo .*\) exited with code 4: checkpoint refused$/));
    assert.equal(runner.info(failing.id).status, 'running');
    // Through the site: the failure is returned, not thrown, and the hook is not run again for a while.
    const first = await site.flushVolume(failing.id);
    assert.ok(first && 'error' in first && /exited with code 4: checkpoint refused$/.test(first.error), JSON.stringify(first));
    const again = await site.flushVolume(failing.id);
    assert.ok(again && 'error' in again && /^skipped: the flush failed \d+ s ago \(flush hook of workload 'flush-fails'/.test(again.error), JSON.stringify(again));
    assert.equal(readFileSync(join(runner.volumeRoot(failing.id), 'data', 'tries'), 'utf8'), 'tried\ntried\n', 'run by the runner, then once through the site; the skip ran nothing');

    const hangs = await runningWith('flush-hangs', { command: ['sleep', '30'], timeoutSeconds: 0.5 });
    const t0 = Date.now();
    await assert.rejects(runner.flush(hangs.id), expectWorkloadError(FailureType.WorkloadHookTimeout, /^flush hook of workload 'flush-hangs' at dc:paris \(sleep 30\) did not finish within 0\.5 s and was killed$/));
    assert.ok(Date.now() - t0 < 5_000, `gave up after ${Date.now() - t0} ms`);

    const plain = await runningWith('no-flush', undefined);
    assert.equal(await runner.flush(plain.id), undefined, 'no flush hook, nothing run');
  });

  it('a freeze hook that hangs past its timeout is killed and reported as a timeout', async () => {
    const spec = sampleWith('hook-hangs', (s) => {
      s.hooks.freeze = { command: ['sleep', '30'], timeoutSeconds: 0.5 };
    });
    await runner.install(spec);
    started.add(spec.id);
    await runner.start(spec.id);
    const t0 = Date.now();
    await assert.rejects(runner.freeze(spec.id), expectWorkloadError(FailureType.WorkloadHookTimeout, /^freeze hook of workload 'hook-hangs' at dc:paris \(sleep 30\) did not finish within 0\.5 s and was killed$/));
    assert.ok(Date.now() - t0 < 5_000, `gave up after ${Date.now() - t0} ms, not 30 s`);
    const { stdout } = await run('ps', ['-eo', 'args']);
    assert.ok(!stdout.split('\n').some((l) => l.trim() === 'sleep 30'), 'the hung hook was killed');
  });

  it('an HTTP freeze that never answers, and a clean stop the instance ignores, time out with the hook named', async () => {
    // A server that takes the request and never answers, and ignores SIGTERM.
    const stubborn = `process.on('SIGTERM', () => console.log('ignoring SIGTERM')); require('http').createServer(() => undefined).listen({port}, '{host}')`;
    const http = sampleWith('http-hangs', (s) => {
      s.run = { local: { command: ['{node}', '-e', stubborn] } };
      s.health = { tcp: {}, periodSeconds: 0.1 };
      s.hooks.freeze = { http: { method: 'POST', path: '/freeze' }, timeoutSeconds: 0.5 };
    });
    await runner.install(http);
    started.add(http.id);
    await runner.start(http.id);
    await assert.rejects(runner.freeze(http.id), expectWorkloadError(FailureType.WorkloadHookTimeout, /^freeze hook of workload 'http-hangs' at dc:paris \(POST \/freeze\) did not answer within 0\.5 s$/));

    const stop = sampleWith('stop-ignored', (s) => {
      s.run = { local: { command: ['{node}', '-e', stubborn] } };
      s.health = { tcp: {}, periodSeconds: 0.1 };
      s.hooks.freeze = { stop: { signal: 'SIGTERM' }, timeoutSeconds: 0.5 };
      s.hooks.thaw = { start: true };
    });
    await runner.install(stop);
    started.add(stop.id);
    const st = await runner.start(stop.id);
    await assert.rejects(runner.freeze(stop.id), expectWorkloadError(FailureType.WorkloadHookTimeout, new RegExp(`^freeze hook of workload 'stop-ignored' at dc:paris \\(stop with SIGTERM\\) did not stop the instance \\(pid ${st.pid}\\) within 0\\.5 s$`)));
    // No half-stopped instance is left for the thaw to mistake for a running one: the stop that
    // timed out is finished with SIGKILL, and the record says frozen (stopped by the freeze).
    assert.equal(processStartTime(st.pid), undefined, 'killed after the freeze timed out');
    assert.deepEqual([runner.info(stop.id).status, runner.info(stop.id).running], ['frozen', false]);
    // The thaw (start: true) brings it back on its data.
    await runner.thaw(stop.id);
    const back = runner.info(stop.id);
    assert.deepEqual([back.status, back.running], ['running', true]);
    // stop() does not give up: SIGKILL after the freeze's timeout.
    await runner.stop(stop.id);
    assert.equal(processStartTime(back.pid!), undefined);
  });

  it('a thaw hook that fails names the thaw hook; an HTTP hook answering an error names the status', async () => {
    const spec = sampleWith('thaw-fails', (s) => {
      s.hooks.thaw = { http: { method: 'POST', path: '/admin/no-such-thing' }, timeoutSeconds: 5 };
    });
    await runner.install(spec);
    started.add(spec.id);
    await runner.start(spec.id);
    await runner.freeze(spec.id);
    await assert.rejects(runner.thaw(spec.id), expectWorkloadError(FailureType.WorkloadHookFailed, /^thaw hook of workload 'thaw-fails' at dc:paris \(POST \/admin\/no-such-thing\) answered HTTP 404/));
  });

  it('a verification that prints nothing, or fails, is a failure', async () => {
    const silent = sampleWith('verify-silent', (s) => {
      s.verify = { command: 'true' };
    });
    await runner.install(silent);
    started.add(silent.id);
    await runner.start(silent.id);
    await assert.rejects(runner.verify(silent.id), expectWorkloadError(FailureType.WorkloadHookFailed, /printed nothing; it must print a digest/));
    const failing = sampleWith('verify-fails', (s) => {
      s.verify = { command: 'echo "relation accounts does not exist" >&2; exit 2' };
    });
    await runner.install(failing);
    started.add(failing.id);
    await runner.start(failing.id);
    await assert.rejects(runner.verify(failing.id), expectWorkloadError(FailureType.WorkloadHookFailed, /^verify of workload 'verify-fails' at dc:paris \(echo .*\) exited with code 2: relation accounts does not exist$/));
  });

  it('an instance that never passes its health check is stopped and reported, with its log', async () => {
    const spec = sampleWith('never-healthy', (s) => {
      s.run = { local: { command: 'echo starting up; exec sleep 60' } };
      s.health = { tcp: {}, periodSeconds: 0.1, startTimeoutSeconds: 1 };
    });
    await runner.install(spec);
    const t0 = Date.now();
    await assert.rejects(runner.start(spec.id), expectWorkloadError(FailureType.WorkloadUnhealthy, /did not pass its health check within 1 s \(last: TCP 127\.0\.0\.1:\d+: connect ECONNREFUSED.*\); it was stopped\. Its log: starting up/));
    assert.ok(Date.now() - t0 < 5_000);
    assert.equal(runner.info(spec.id).running, false);
  });

  it('health checks are periodSeconds apart from start to start, as Kubernetes times probes: a slow check does not stretch the period', async () => {
    // Each check writes when it began, takes 0.2 s and fails; the period is 0.5 s. Timed from one
    // check's end to the next's start they would begin 0.7 s apart; from start to start, 0.5 s.
    const dir = mkdtempSync(join(tmpdir(), 'fedflow-probe-period-'));
    try {
      chmodSync(dir, 0o777);
      const log = join(dir, 'checks');
      const spec = sampleWith('slow-checks', (s) => {
        s.run = { local: { command: 'exec sleep 60' } };
        s.health = { command: ['sh', '-c', `date +%s%N >> ${log}; sleep 0.2; exit 1`], periodSeconds: 0.5, timeoutSeconds: 2, startTimeoutSeconds: 3.5 };
      });
      await runner.install(spec);
      await assert.rejects(runner.start(spec.id), expectWorkloadError(FailureType.WorkloadUnhealthy, /did not pass its health check within 3\.5 s \(last: command exited with code 1\)/));
      const starts = readFileSync(log, 'utf8').trim().split('\n').map((l) => Number(BigInt(l) / 1_000_000n));
      const gaps = starts.slice(1).map((t, i) => t - starts[i]!);
      assert.ok(gaps.length >= 3, `only ${starts.length} checks in 3.5 s`);
      const median = [...gaps].sort((a, b) => a - b)[gaps.length >> 1]!;
      assert.ok(median >= 450 && median < 650, `the checks began a median ${median} ms apart (gaps ${gaps.join(', ')} ms); expected ~500 (the period), not ~700 (period + check)`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an instance that exits while starting is reported with its output', async () => {
    const spec = sampleWith('exits', (s) => {
      s.run = { local: { command: 'echo "FATAL: bad config" >&2; exit 1' } };
    });
    await runner.install(spec);
    await assert.rejects(runner.start(spec.id), expectWorkloadError(FailureType.WorkloadStartFailed, /exited while starting .*FATAL: bad config/));
  });

  it('refuses a volume that resolves outside the site, one problem per volume, and creates nothing', async () => {
    const spec = sampleWith('escape', (s) => {
      s.volumes = [{ name: 'data', path: '../../../../etc' }, { name: 'ok' }, { name: 'abs', path: '/var/lib/x' }, { name: 'root', path: '.' }];
    });
    await assert.rejects(runner.install(spec), (err: unknown) => {
      assert.ok(err instanceof WorkloadError);
      assert.equal(err.type, FailureType.VolumeOutsideSite);
      assert.equal(err.problems.length, 3, err.problems.join('\n'));
      assert.match(err.problems[2]!, /^volumes\.3\.path: '\.' is the workload's volume root itself/);
      assert.match(err.problems[0]!, /^volumes\.0\.path: '\.\.\/\.\.\/\.\.\/\.\.\/etc' resolves to .*, outside the workload's volume root .*volumes\/escape in site dc:paris's directory/);
      assert.match(err.problems[1]!, /^volumes\.2\.path: '\/var\/lib\/x' resolves to \/var\/lib\/x, outside/);
      return true;
    });
    assert.equal(existsSync(runner.workloadDir('escape')), false, 'nothing installed');
    assert.equal(existsSync(runner.volumeRoot('escape')), false, 'no volume created');

    // A symlink inside the site that points out of it is outside too.
    const outside = mkdtempSync(join(tmpdir(), 'fedflow-outside-'));
    mkdirSync(join(runner.siteDir, 'volumes'), { recursive: true });
    symlinkSync(outside, runner.volumeRoot('linked'));
    const linked = sampleWith('linked', () => undefined);
    await assert.rejects(runner.install(linked), expectWorkloadError(FailureType.VolumeOutsideSite, /volumes\.0\.path: 'data' resolves to .*fedflow-outside-.*\/data, outside/));
    assert.equal(existsSync(join(outside, 'data')), false);
    rmSync(outside, { recursive: true, force: true });
  });

  it('a volume init that fails is reported and leaves the volume empty, so the next install runs it again', async () => {
    const spec = sampleWith('init-fails', (s) => {
      s.volumes = [{ name: 'data', init: { command: 'echo half > {volume}/marker; echo "initdb: out of disk" >&2; exit 1' } }];
    });
    await assert.rejects(runner.install(spec), expectWorkloadError(FailureType.WorkloadHookFailed, /^init of volume 'data' of workload 'init-fails' \(echo half .*\) exited with code 1: initdb: out of disk$/));
    assert.deepEqual(readdirSync(join(runner.volumeRoot('init-fails'), 'data')), [], 'emptied again');
    const fixed = sampleWith('init-fails', (s) => {
      s.volumes = [{ name: 'data', init: { command: 'echo done > {volume}/marker' } }];
    });
    await runner.install(fixed);
    assert.equal(readFileSync(join(runner.volumeRoot('init-fails'), 'data', 'marker'), 'utf8'), 'done\n');
    // A migration's target installs without init: its volume comes from the sync.
    const target = new WorkloadRunner({ site: 'dc:frankfurt', siteDir: join(home, 'sites', 'dc_frankfurt'), fedflowRoot: REPO_ROOT });
    mkdirSync(target.siteDir, { recursive: true });
    await target.install(fixed, { initVolumes: false });
    assert.deepEqual(readdirSync(join(target.volumeRoot('init-fails'), 'data')), []);
  });

  it('names what is installed when asked for a workload that is not', async () => {
    await assert.rejects(runner.start('nope'), expectWorkloadError(FailureType.WorkloadNotInstalled, /workload 'nope' is not installed at site dc:paris \(installed: .*postgres.*\)/));
  });
});

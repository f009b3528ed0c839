/**
 * The workload spec's validation: the shipped examples pass, and every bad input is refused with
 * one line per problem, each naming the field, what was wrong and what is expected.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT } from '../../agent/site/home';
import { loadWorkloadSpecFile, parseWorkloadSpecText, WorkloadSpecError } from '../../agent/workload/spec-file';
import { fillTemplates, MAX_SPEC_BYTES, parseWorkloadSpec } from '../../core/workload-spec';

/** A valid spec to break one field at a time. */
function good(): Record<string, unknown> {
  return {
    id: 'pg',
    run: { local: { command: ['postgres', '-D', '{volume}', '-p', '{port}'] } },
    volumes: [{ name: 'pgdata' }],
    health: { tcp: {} },
    hooks: { freeze: { stop: { signal: 'SIGINT' } }, thaw: { start: true } },
    verify: { command: 'psql -p {port} -Atc "select 1"' },
  };
}

function problems(raw: unknown): string[] {
  const r = parseWorkloadSpec(raw);
  assert.equal(r.ok, false, 'expected the spec to be refused');
  return r.ok ? [] : r.problems;
}

/** Exactly one problem, on `path`, matching `re`. */
function oneProblem(raw: unknown, path: string, re: RegExp): void {
  const p = problems(raw);
  assert.equal(p.length, 1, p.join('\n'));
  assert.ok(p[0]!.startsWith(`${path}: `), `expected a problem at ${path}: ${p[0]}`);
  assert.match(p[0]!, re);
}

// Tests break specs in every shape on purpose, so the builder is loosely typed.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = Record<string, any>;
const edit = (f: (s: Loose) => void) => {
  const s = good() as Loose;
  f(s);
  return s;
};

describe('workload spec', () => {
  it('the shipped examples validate: the sample, PostgreSQL and Redis', () => {
    for (const name of ['kv', 'postgres', 'redis']) {
      const spec = loadWorkloadSpecFile(join(REPO_ROOT, 'workloads', `${name}.yaml`));
      assert.equal(spec.id, name);
      assert.ok(spec.run.local, `${name} runs locally`);
    }
    const pg = loadWorkloadSpecFile(join(REPO_ROOT, 'workloads', 'postgres.yaml'));
    assert.equal(pg.volumes[0]!.kind, 'directory');
    assert.ok(pg.volumes[0]!.init, 'the PostgreSQL volume is initdb-ed once');
    assert.equal(pg.hooks.freeze.stop?.signal, 'SIGINT', 'a fast shutdown; the runner waits for the exit');
    assert.equal(pg.hooks.thaw.start, true);
    assert.deepEqual(pg.hooks.flush?.command?.slice(-2), ['-c', 'CHECKPOINT'], 'a checkpoint before each pre-copy capture');
    const redis = loadWorkloadSpecFile(join(REPO_ROOT, 'workloads', 'redis.yaml'));
    assert.equal(redis.hooks.flush, undefined, 'the flush hook is optional');
  });

  it('fills in defaults as Kubernetes probes have them', () => {
    const r = parseWorkloadSpec(good());
    assert.ok(r.ok);
    assert.deepEqual([r.spec.health.periodSeconds, r.spec.health.timeoutSeconds, r.spec.health.failureThreshold, r.spec.health.initialDelaySeconds], [1, 1, 3, 0]);
    assert.equal(r.spec.hooks.freeze.timeoutSeconds, 30);
    assert.equal(r.spec.volumes[0]!.kind, 'directory');
    assert.equal(r.spec.run.local!.address, 'tcp://{host}:{port}');
  });

  it('accepts a cloud-only spec (image, size, user-data)', () => {
    const r = parseWorkloadSpec(edit((s) => (s.run = { aws: { image: 'ami-0123', size: 't3.small', userData: '#cloud-config' } })));
    assert.ok(r.ok, r.ok ? '' : r.problems.join('\n'));
  });

  it('reports every problem at once, each with its path', () => {
    const p = problems({
      id: 'Bad_ID',
      run: { local: { command: 5, colour: 'red' } },
      volumes: [{ name: 'd' }, { name: 'd', kind: 'image' }],
      health: { http: { path: 'x' }, tcp: {}, periodSeconds: -1 },
      hooks: { freeze: {}, thaw: { start: true } },
      verify: { command: ['echo {bogus}'] },
      extra: 1,
    });
    const paths = p.map((l) => l.split(': ')[0]).sort();
    assert.deepEqual(paths, [
      '(top level)',
      'health.http.path',
      'health.periodSeconds',
      'health.tcp',
      'hooks.freeze',
      'hooks.thaw.start',
      'id',
      'run.local',
      'run.local.command',
      'verify.command.0',
      'volumes.1.name',
      'volumes.1.sizeMiB',
    ]);
  });

  it('a missing field is named as required, with the expected type', () => {
    oneProblem(edit((s) => delete s.id), 'id', /is required; expected a string/);
    oneProblem(edit((s) => delete s.health), 'health', /is required; expected an object/);
    oneProblem(edit((s) => delete s.hooks.thaw), 'hooks.thaw', /is required/);
  });

  it('a value of the wrong type says what it got and what is expected', () => {
    oneProblem(edit((s) => (s.volumes = 'data')), 'volumes', /got string data; expected a list/);
    oneProblem(edit((s) => (s.health.failureThreshold = 'three')), 'health.failureThreshold', /got string three; expected a number/);
    oneProblem(edit((s) => (s.run.local.command = [])), 'run.local.command', /non-empty/);
  });

  it('bad ids, names and enums', () => {
    oneProblem(edit((s) => (s.id = 'Has Spaces')), 'id', /lowercase letters, digits and dashes.*got Has Spaces/);
    oneProblem(edit((s) => (s.volumes[0].name = '9x')), 'volumes.0.name', /starting with a letter/);
    oneProblem(edit((s) => (s.volumes[0].kind = 'nfs')), 'volumes.0.kind', /got nfs; expected one of "directory", "image"/);
    oneProblem(edit((s) => (s.hooks.freeze.stop.signal = 'SIGKILL')), 'hooks.freeze.stop.signal', /expected one of "SIGTERM"/);
    oneProblem(edit((s) => (s.run.local.user = 'Root User')), 'run.local.user', /login name/);
    oneProblem(edit((s) => (s.run.local.port = 70000)), 'run.local.port', /70000/);
  });

  it('run needs a provider; a cloud run needs an image and a size', () => {
    oneProblem(edit((s) => (s.run = {})), 'run', /at least one provider: local, aws, azure or gcp/);
    const p = problems(edit((s) => (s.run = { gcp: { image: '' } })));
    assert.deepEqual(p.map((l) => l.split(': ')[0]).sort(), ['run.gcp.image', 'run.gcp.size']);
    const unknown = problems(edit((s) => (s.run = { openstack: { image: 'x', size: 'y' } })));
    assert.deepEqual(unknown, ["run: unknown field 'openstack'; remove it (is it misspelt?)", 'run: run needs at least one provider: local, aws, azure or gcp']);
  });

  it('volumes: at least one, unique names and paths, image volumes have a size', () => {
    oneProblem(edit((s) => (s.volumes = [])), 'volumes', /at least one volume/);
    oneProblem(edit((s) => s.volumes.push({ name: 'pgdata' })), 'volumes.1.name', /used twice/);
    oneProblem(edit((s) => s.volumes.push({ name: 'other', path: 'pgdata' })), 'volumes.1.path', /used by another volume/);
    oneProblem(edit((s) => s.volumes.push({ name: 'disk', kind: 'image' })), 'volumes.1.sizeMiB', /needs sizeMiB/);
    oneProblem(edit((s) => (s.volumes[0].sizeMiB = 10)), 'volumes.0.sizeMiB', /for image volumes/);
    oneProblem(edit((s) => (s.volumes[0].mode = 'rwx------')), 'volumes.0.mode', /octal permissions such as "0700".*got rwx------/);
    const r = parseWorkloadSpec(edit((s) => s.volumes.push({ name: 'disk', kind: 'image', sizeMiB: 64 })));
    assert.ok(r.ok);
  });

  it('health check: exactly one of http, tcp, command; positive times', () => {
    oneProblem(edit((s) => (s.health = {})), 'health', /needs exactly one of http, tcp, command/);
    oneProblem(edit((s) => (s.health = { tcp: {}, command: 'true' })), 'health.command', /both 'tcp' and 'command'/);
    oneProblem(edit((s) => (s.health.timeoutSeconds = 0)), 'health.timeoutSeconds', /more than 0 seconds/);
    oneProblem(edit((s) => (s.health.failureThreshold = 1.5)), 'health.failureThreshold', /got number 1\.5; expected a whole number/);
    oneProblem(edit((s) => (s.health.startTimeoutSeconds = 99999)), 'health.startTimeoutSeconds', /at most 3600/);
  });

  it('a TCP check\'s exchange: text or hex, at most one of each; a send needs an expect', () => {
    assert.ok(parseWorkloadSpec(edit((s) => (s.health = { tcp: { send: 'PING\r\n', expect: '+PONG' } }))).ok);
    assert.ok(parseWorkloadSpec(edit((s) => (s.health = { tcp: { sendHex: '00000008', expectHex: '52' } }))).ok);
    assert.ok(parseWorkloadSpec(edit((s) => (s.health = { tcp: { expect: '220 ' } }))).ok, 'expect alone: a service that speaks first');
    oneProblem(edit((s) => (s.health = { tcp: { sendHex: '0g', expect: 'R' } })), 'health.tcp.sendHex', /bytes written as hex, two digits a byte/);
    oneProblem(edit((s) => (s.health = { tcp: { sendHex: 'abc', expect: 'R' } })), 'health.tcp.sendHex', /two digits a byte/);
    oneProblem(edit((s) => (s.health = { tcp: { sendHex: 'a', expect: 'R' } })), 'health.tcp.sendHex', /^health\.tcp\.sendHex: bytes written as hex, two digits a byte .*\(got a\)$/);
    oneProblem(edit((s) => (s.health = { tcp: { sendHex: '', expect: 'R' } })), 'health.tcp.sendHex', /must not be empty/);
    oneProblem(edit((s) => (s.health = { tcp: { send: 'a', sendHex: '61', expect: 'R' } })), 'health.tcp.sendHex', /both 'send' and 'sendHex'; give at most one/);
    oneProblem(edit((s) => (s.health = { tcp: { expect: 'R', expectHex: '52' } })), 'health.tcp.expectHex', /both 'expect' and 'expectHex'/);
    oneProblem(edit((s) => (s.health = { tcp: { send: 'PING\r\n' } })), 'health.tcp', /a TCP check that sends needs expect/);
    oneProblem(edit((s) => (s.health = { tcp: { expect: '' } })), 'health.tcp.expect', /must not be empty/);
    oneProblem(edit((s) => (s.health = { tcp: { port: 5 } })), 'health.tcp', /port/);
  });

  it('hooks: freeze is a command, an HTTP call or a clean stop; thaw fits the freeze', () => {
    oneProblem(edit((s) => (s.hooks.freeze = { command: 'x', http: { path: '/f' }, stopsInstance: true })), 'hooks.freeze.http', /both 'command' and 'http'/);
    oneProblem(edit((s) => (s.hooks.freeze = { stop: {}, timeoutSeconds: -2 })), 'hooks.freeze.timeoutSeconds', /more than 0/);
    // A freeze that stops the instance needs a thaw that starts it; a thaw that starts needs a stopping freeze.
    oneProblem(edit((s) => (s.hooks.thaw = { command: 'x' })), 'hooks.thaw', /thaw must start it again/);
    oneProblem(edit((s) => (s.hooks.freeze = { http: { method: 'POST', path: '/admin/freeze' } })), 'hooks.thaw.start', /does not stop it/);
    oneProblem(edit((s) => (s.hooks.thaw = { start: false })), 'hooks.thaw.start', /got false; expected one of true/);
    oneProblem(edit((s) => (s.hooks.freeze.http = { method: 'PATCH', path: '/x' })), 'hooks.freeze.http.method', /expected one of "GET"/);
    oneProblem(edit((s) => (s.hooks.snapshot = {})), 'hooks', /unknown field 'snapshot'/);
  });

  it('hooks: the optional flush is a command or an HTTP call, with a timeout', () => {
    const ok = parseWorkloadSpec(edit((s) => (s.hooks.flush = { command: ['psql', '-p', '{port}', '-c', 'CHECKPOINT'] })));
    assert.ok(ok.ok);
    assert.equal(ok.spec.hooks.flush?.timeoutSeconds, 30, 'a default timeout');
    assert.ok(parseWorkloadSpec(edit((s) => (s.hooks.flush = { http: { method: 'POST', path: '/admin/flush' }, timeoutSeconds: 5 }))).ok);
    oneProblem(edit((s) => (s.hooks.flush = {})), 'hooks.flush', /the flush hook needs exactly one of command, http/);
    oneProblem(edit((s) => (s.hooks.flush = { command: 'x', http: { path: '/f' } })), 'hooks.flush.http', /the flush hook has both 'command' and 'http'/);
    oneProblem(edit((s) => (s.hooks.flush = { command: 'x', stop: {} })), 'hooks.flush', /unknown field 'stop'.*misspelt/);
    oneProblem(edit((s) => (s.hooks.flush = { command: 'x', timeoutSeconds: 0 })), 'hooks.flush.timeoutSeconds', /more than 0/);
    oneProblem(edit((s) => (s.hooks.flush = { command: 'x', timeoutSeconds: 301 })), 'hooks.flush.timeoutSeconds', /timeoutSeconds must be at most 300 seconds/);
    oneProblem(edit((s) => (s.hooks.flush = { command: 'psql -p {prot}' })), 'hooks.flush.command', /unknown template \{prot\}/);
  });

  it('verify: a command or an HTTP call', () => {
    oneProblem(edit((s) => (s.verify = {})), 'verify', /exactly one of command, http/);
    oneProblem(edit((s) => (s.verify = { http: { path: 'digest' } })), 'verify.http.path', /starts with \//);
  });

  it('secrets: a literal value under a secret-looking name is refused (the spec goes into the log); secretEnv names a site file instead', () => {
    oneProblem(edit((s) => (s.run.local.env = { PGPASSWORD: 'hunter2' })), 'run.local.env.PGPASSWORD', /looks like a secret.*federation log.*fedflow secrets set <name> --site <id>.*secretEnv: \{ PGPASSWORD: <name> \}/);
    for (const k of ['REDISCLI_AUTH', 'AWS_SECRET_ACCESS_KEY', 'API_TOKEN', 'MYSQL_PWD_PASSWD', 'TLS_PRIVATE_KEY']) assert.equal(problems(edit((s) => (s.run.local.env = { [k]: 'x' }))).length, 1, k);
    const ok = parseWorkloadSpec(edit((s) => (s.run.local = { ...s.run.local, env: { PGUSER: 'app', PATH: '/usr/bin' }, secretEnv: { PGPASSWORD: 'pg-password' } })));
    assert.ok(ok.ok);
    assert.deepEqual(ok.spec.run.local?.secretEnv, { PGPASSWORD: 'pg-password' });
    oneProblem(edit((s) => (s.run.local.secretEnv = { PGPASSWORD: '../etc/shadow' })), 'run.local.secretEnv.PGPASSWORD', /a secret name is lowercase letters/);
    oneProblem(edit((s) => (s.run.local.secretEnv = { '1BAD': 'x' })), 'run.local.secretEnv.1BAD', /environment variable name/);
    oneProblem(edit((s) => ((s.run.local.env = { PGUSER: 'app' }), (s.run.local.secretEnv = { PGUSER: 'pg-user' }))), 'run.local.env.PGUSER', /also set by run\.local\.secretEnv/);
  });

  it('templates: only known names, and only volumes the spec has', () => {
    oneProblem(edit((s) => (s.run.local.command = ['x', '{volume.logs}'])), 'run.local.command.1', /unknown template \{volume\.logs\}.*NAME one of pgdata/);
    oneProblem(edit((s) => (s.run.local.env = { PGPORT: '{prot}' })), 'run.local.env.PGPORT', /unknown template \{prot\}; known: \{id\}, \{host\}, \{port\}/);
    // JSON or SQL braces are not templates.
    assert.ok(parseWorkloadSpec(edit((s) => (s.verify.command = `psql -c "select '{\\"a\\": 1}'::json, '{}'"`))).ok);
  });

  it('echoes only a short prefix of a bad value', () => {
    const secretish = `A${'x'.repeat(5000)}`;
    const p = problems(edit((s) => (s.id = secretish)));
    assert.equal(p.length, 1);
    assert.ok(p[0]!.length < 200, p[0]);
    assert.match(p[0]!, /got Ax{39}…\)/);
  });

  it('refuses a spec too big to travel in the federation log', () => {
    const p = problems(edit((s) => (s.run.local.env = { BIG: 'y'.repeat(MAX_SPEC_BYTES) })));
    assert.match(p[0]!, /at most 16384/);
  });

  it('refuses a non-object and unparsable text, with the line', () => {
    assert.match(problems('postgres')[0]!, /^\(top level\): got string postgres; expected an object/);
    assert.throws(
      () => parseWorkloadSpecText('id: [1\nrun: {', 'bad.yaml'),
      (err: unknown) => err instanceof WorkloadSpecError && err.source === 'bad.yaml' && /^line \d+: /.test(err.problems[0]!) && /invalid workload spec bad\.yaml/.test(err.message),
    );
    assert.throws(() => loadWorkloadSpecFile('/nonexistent/spec.yaml'), /cannot read the file: ENOENT/);
  });

  it('fills templates', () => {
    const v = { id: 'pg', host: '127.0.0.1', port: 5433, dataDir: '/s/run', node: '/bin/node', fedflowRoot: '/repo', volumes: [['pgdata', '/s/v/pgdata'], ['wal', '/s/v/wal']] as [string, string][] };
    assert.equal(fillTemplates('-D {volume} -X {volume.wal} -p {port} -h {host} {id} {dataDir} {node} {fedflowRoot} {"json": 1}', v), '-D /s/v/pgdata -X /s/v/wal -p 5433 -h 127.0.0.1 pg /s/run /bin/node /repo {"json": 1}');
  });
});

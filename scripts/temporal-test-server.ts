/**
 * Finds or fetches Temporal's time-skipping test server, for the workflow tier (test/workflow/).
 *
 * `TestWorkflowEnvironment.createTimeSkipping()` downloads a native build of the test server from
 * temporal.download, which this machine (and CI) cannot reach. The same server is published on
 * Maven Central as the Java artifact `io.temporal:temporal-test-server`, and Maven Central is
 * reachable, so: Maven fetches its jars (scripts/temporal-test-server.pom.xml) into the user's
 * cache, and a small wrapper script there runs `java -cp <jars> io.temporal.testserver.TestServer`
 * with the arguments the SDK passes (`<port>` then any extraArgs). The SDK starts that wrapper as
 * an `existing-path` executable.
 *
 * Order, first hit wins:
 *   1. $TEMPORAL_TEST_SERVER (an executable taking `<port> [--enable-time-skipping]`)
 *   2. the cached wrapper and jars
 *   3. a fetch with `mvn` from Maven Central (needs java and mvn; cached for next time)
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isExecutable, onPath, toolCacheDir } from './tool-cache';

/** Pinned here and in scripts/temporal-test-server.pom.xml: the cache directory is named after it. */
export const TEMPORAL_TEST_SERVER_VERSION = '1.38.0';
const POM = join(__dirname, 'temporal-test-server.pom.xml');
const MAIN_CLASS = 'io.temporal.testserver.TestServer';
/** Jars a complete fetch holds (the pom's direct dependencies): a cache without one is fetched again. */
const REQUIRED_JARS = [`temporal-test-server-${TEMPORAL_TEST_SERVER_VERSION}.jar`, 'slf4j-nop-1.7.36.jar'];

export class TemporalTestServerNotFound extends Error {
  constructor(readonly tried: string[]) {
    super(
      [
        'could not find or fetch the Temporal test server. Tried, in order:',
        ...tried.map((t, i) => `  ${i + 1}. ${t}`),
        'Fix it with one of:',
        '  - install a JDK (17 or newer) and Maven, and run again: the server is fetched from Maven Central and cached;',
        '  - set TEMPORAL_TEST_SERVER=/path/to/an/executable that takes `<port> [--enable-time-skipping]`.',
      ].join('\n'),
    );
    this.name = 'TemporalTestServerNotFound';
  }
}

export function testServerCacheDir(): string {
  return toolCacheDir('temporal-test-server', TEMPORAL_TEST_SERVER_VERSION);
}


/**
 * The wrapper the SDK runs.
 * - `exec`, so the SDK's kill of its child (at teardown) reaches the JVM itself.
 * - A watchdog beside it ends the JVM when the process that started it is gone: a test process
 *   killed before its teardown must not leave a server behind (the JVM would outlive it).
 * - No flag of its own, so time skipping starts locked, as with the native build: the testing
 *   client unlocks it while it waits for a workflow's result, and `env.sleep()` skips explicitly.
 */
function wrapperScript(java: string, lib: string): string {
  return [
    '#!/bin/sh',
    `# Written by fedflow scripts/temporal-test-server.ts; args: <port> [--enable-time-skipping]. ${WRAPPER_MARK}`,
    'parent=$PPID; me=$$',
    '( while kill -0 "$parent" 2>/dev/null && kill -0 "$me" 2>/dev/null; do sleep 1; done; kill "$me" 2>/dev/null ) </dev/null >/dev/null 2>&1 &',
    `exec "${java}" -XX:+UseSerialGC -cp "${lib}/*" ${MAIN_CLASS} "$@"`,
    '',
  ].join('\n');
}
/** Bumped when the wrapper changes, so a cached older one is rewritten. */
const WRAPPER_MARK = '# wrapper v2';

function writeWrapper(path: string, java: string, lib: string): void {
  writeFileSync(`${path}.tmp`, wrapperScript(java, lib));
  chmodSync(`${path}.tmp`, 0o755);
  renameSync(`${path}.tmp`, path);
}

export interface FoundTestServer {
  path: string;
  source: 'env' | 'cache' | 'maven';
  fetchMs?: number;
}

export function findTemporalTestServer(opts: { fetch?: boolean; log?: (line: string) => void } = {}): FoundTestServer {
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const tried: string[] = [];

  const fromEnv = process.env.TEMPORAL_TEST_SERVER;
  if (fromEnv) {
    if (isExecutable(fromEnv)) return { path: fromEnv, source: 'env' };
    tried.push(`TEMPORAL_TEST_SERVER=${fromEnv}: not an executable file`);
  } else tried.push('TEMPORAL_TEST_SERVER: not set');

  const dir = testServerCacheDir();
  const wrapper = join(dir, 'temporal-test-server');
  const lib = join(dir, 'lib');
  if (REQUIRED_JARS.every((jar) => existsSync(join(lib, jar)))) {
    const java = onPath('java');
    if (isExecutable(wrapper) && readFileSync(wrapper, 'utf8').includes(WRAPPER_MARK)) return { path: wrapper, source: 'cache' };
    if (java) {
      writeWrapper(wrapper, java, lib);
      return { path: wrapper, source: 'cache' };
    }
    tried.push(`cached jars ${lib}: there, but \`java\` is not on PATH`);
  } else tried.push(`cached jars ${lib}: not there (or not all of ${REQUIRED_JARS.join(', ')})`);

  if (opts.fetch === false) throw new TemporalTestServerNotFound([...tried, 'Maven fetch: not attempted (fetch disabled)']);
  const java = onPath('java');
  const mvn = onPath('mvn');
  if (!java || !mvn) throw new TemporalTestServerNotFound([...tried, `Maven fetch: ${!java ? '`java`' : '`mvn`'} is not on PATH`]);

  mkdirSync(dir, { recursive: true });
  // Fetch into a scratch directory and rename, so an interrupted fetch never leaves half the jars in the cache.
  const scratch = mkdtempSync(join(dir, '.fetch-'));
  log(`fedflow: fetching the Temporal test server ${TEMPORAL_TEST_SERVER_VERSION} from Maven Central (once; cached in ${dir}) ...`);
  const t0 = Date.now();
  const res = spawnSync(mvn, ['-q', '-B', '-Dstyle.color=never', '-f', POM, 'dependency:copy-dependencies', '-DincludeScope=runtime', `-DoutputDirectory=${join(scratch, 'lib')}`], {
    // Maven reports on stdout: keep it off ours, which carries only the result line.
    stdio: ['ignore', 2, 'inherit'],
  });
  const fetchMs = Date.now() - t0;
  const jars = existsSync(join(scratch, 'lib')) ? readdirSync(join(scratch, 'lib')) : [];
  if (res.status !== 0 || !REQUIRED_JARS.every((jar) => jars.includes(jar))) {
    rmSync(scratch, { recursive: true, force: true });
    throw new TemporalTestServerNotFound([...tried, `Maven fetch (mvn dependency:copy-dependencies -f ${POM}): exit ${res.status ?? res.signal}`]);
  }
  rmSync(lib, { recursive: true, force: true });
  renameSync(join(scratch, 'lib'), lib);
  rmSync(scratch, { recursive: true, force: true });
  writeWrapper(wrapper, java, lib);
  log(`fedflow: fetched the Temporal test server (${jars.length} jars) in ${(fetchMs / 1000).toFixed(1)} s -> ${wrapper}`);
  return { path: wrapper, source: 'maven', fetchMs };
}

if (require.main === module) {
  try {
    process.stdout.write(JSON.stringify(findTemporalTestServer()) + '\n');
  } catch (err) {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  }
}

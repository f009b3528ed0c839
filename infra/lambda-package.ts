/**
 * Builds the serverless control worker's zip (`fedflow infra package-lambda`), laid out as the
 * repository is, so the handler is `worker/lambda.handler` and every `__dirname`-relative path of
 * the code holds:
 *
 *   worker/lambda.js, and each project file it reaches, compiled from TypeScript one by one
 *   worker/workflow-bundle.js     the pre-built workflow bundle (infra/lambda-bundle.ts)
 *   worker/build-id               the build id the function polls as (fedflow-control:<id>): a
 *                                 digest of everything else in the zip, so a new build is a new
 *                                 worker deployment version and the same build is the same one
 *   config/federation.yaml        the federation config (the default path the code reads)
 *   node_modules/...              the production dependency closure of what the code requires,
 *                                 with @temporalio/core-bridge's Linux x64 binary only
 *
 * The files the code reaches come from esbuild's analysis of worker/lambda.ts (esbuild comes with
 * tsx, a build-time tool; the compiled output is plain CommonJS with the same imports as the
 * sources). Packages are copied from this checkout's node_modules, so package on Linux x64 (the
 * function's platform; CI is), where the optional native packages (@swc/core's) are the right ones.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { builtinModules } from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import { buildControlWorkerBundle } from './lambda-bundle';
import { zipBytes, type ZipEntry } from './zip';

export const LAMBDA_PLATFORM = 'x86_64-unknown-linux-gnu';
const ROOT = join(__dirname, '..');

export interface PackageOptions {
  /** The zip to write. */
  outFile: string;
  /** The federation config shipped as config/federation.yaml. */
  configFile: string;
  /** The workflows to bundle (default: the production workflows). */
  workflowsPath?: string;
}

export interface PackageResult {
  outFile: string;
  buildId: string;
  zipBytes: number;
  unzippedBytes: number;
  files: number;
  packages: string[];
}

/** The package name of a bare specifier (`@scope/name/sub` → `@scope/name`), or undefined for a builtin or a path. */
function packageOf(spec: string): string | undefined {
  if (spec.startsWith('node:') || spec.startsWith('.') || spec.startsWith('/')) return undefined;
  const parts = spec.split('/');
  const name = spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
  return builtinModules.includes(name) ? undefined : name;
}

/** Node's lookup of a package from a directory: `<dir>/node_modules/<name>`, then each parent's. */
function findPackage(name: string, from: string): string | undefined {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dirname(dir) === dir || !relative(ROOT, dir) || relative(ROOT, dir).startsWith('..')) {
      const top = join(ROOT, 'node_modules', name);
      return existsSync(join(top, 'package.json')) ? top : undefined;
    }
  }
}

/** The directories of `names` and of everything they depend on at run time (dependencies, optional ones present). */
function dependencyClosure(names: string[]): string[] {
  const dirs = new Set<string>();
  const visit = (name: string, from: string, optional: boolean) => {
    const dir = findPackage(name, from);
    if (!dir) {
      if (optional) return;
      throw new Error(`package '${name}' (needed from ${relative(ROOT, from) || '.'}) is not in node_modules: run npm ci first`);
    }
    if (dirs.has(dir)) return;
    dirs.add(dir);
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string>; optionalDependencies?: Record<string, string>; peerDependencies?: Record<string, string>; peerDependenciesMeta?: Record<string, { optional?: boolean }> };
    for (const d of Object.keys(pkg.dependencies ?? {})) visit(d, dir, false);
    for (const d of Object.keys(pkg.optionalDependencies ?? {})) visit(d, dir, true);
    // Peers are the installer's to provide; the ones present are taken (e.g. @temporalio/* of lambda-worker).
    for (const d of Object.keys(pkg.peerDependencies ?? {})) visit(d, dir, true);
  };
  for (const n of names) visit(n, ROOT, false);
  // Type packages some libraries list as dependencies (@types/node, ...) do nothing at run time.
  return [...dirs].filter((d) => !relative(ROOT, d).split(sep).includes('@types')).sort();
}

/** Files of a package directory the function needs: no type declarations, docs, or other platforms' binaries. */
function packageFiles(dir: string): string[] {
  const out: string[] = [];
  const isBridge = relative(ROOT, dir).split(sep).join('/').endsWith('@temporalio/core-bridge');
  const walk = (d: string, rel: string) => {
    for (const ent of readdirSync(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${ent.name}` : ent.name;
      if (ent.isDirectory()) {
        // Nested node_modules are packages of their own, copied when the closure reaches them.
        if (ent.name === 'node_modules') continue;
        if (isBridge && !rel && ['sdk-core', 'src', 'bridge-macros', 'scripts', 'target'].includes(ent.name)) continue;
        if (isBridge && rel === 'releases' && ent.name !== LAMBDA_PLATFORM) continue;
        walk(join(d, ent.name), r);
      } else if (ent.isFile() && !/\.d\.[cm]?ts$|\.md$|\.ts\.map$/i.test(ent.name) && !(isBridge && /^Cargo\./.test(ent.name))) out.push(r);
    }
  };
  walk(dir, '');
  if (isBridge && !out.includes(`releases/${LAMBDA_PLATFORM}/index.node`)) throw new Error(`@temporalio/core-bridge has no ${LAMBDA_PLATFORM} binary in ${dir}: package on Linux x64, or install the SDK there`);
  return out;
}

/** The project's files worker/lambda.ts reaches, and the packages they require. */
async function analyse(): Promise<{ sources: string[]; packages: string[] }> {
  const esbuild = await import('esbuild');
  const r = await esbuild.build({ entryPoints: [join(ROOT, 'worker', 'lambda.ts')], bundle: true, write: false, metafile: true, platform: 'node', format: 'cjs', packages: 'external', logLevel: 'silent', absWorkingDir: ROOT });
  const sources = Object.keys(r.metafile.inputs).filter((f) => !f.startsWith('node_modules/'));
  const packages = new Set<string>();
  for (const input of Object.values(r.metafile.inputs)) for (const imp of input.imports) if (imp.external) {
    const p = packageOf(imp.path);
    if (p) packages.add(p);
  }
  return { sources, packages: [...packages].sort() };
}

export async function packageControlWorker(o: PackageOptions): Promise<PackageResult> {
  const esbuild = await import('esbuild');
  const entries: ZipEntry[] = [];
  const { sources, packages } = await analyse();
  for (const src of sources) {
    const abs = join(ROOT, src);
    if (/\.json$/.test(src)) {
      entries.push({ name: src, data: readFileSync(abs) });
      continue;
    }
    // One file in, one CommonJS file out: imports keep their relative paths, which now end in .js.
    const out = await esbuild.transform(readFileSync(abs, 'utf8'), { loader: 'ts', format: 'cjs', platform: 'node', target: 'node22', sourcefile: src });
    entries.push({ name: src.replace(/\.ts$/, '.js'), data: Buffer.from(out.code) });
  }
  // The bundle goes into the zip only: built in a directory of its own, removed after, so nothing
  // is left beside the output zip.
  const bundleDir = mkdtempSync(join(tmpdir(), 'fedflow-lambda-bundle-'));
  try {
    const bundleFile = join(bundleDir, 'workflow-bundle.js');
    await buildControlWorkerBundle(bundleFile, o.workflowsPath);
    entries.push({ name: 'worker/workflow-bundle.js', data: readFileSync(bundleFile) });
  } finally {
    rmSync(bundleDir, { recursive: true, force: true });
  }
  entries.push({ name: 'config/federation.yaml', data: readFileSync(o.configFile) });
  const closure = dependencyClosure(packages);
  for (const dir of closure) {
    for (const f of packageFiles(dir)) {
      const abs = join(dir, f);
      const mode = statSync(abs).mode & 0o111 ? 0o755 : 0o644;
      entries.push({ name: `${relative(ROOT, dir).split(sep).join('/')}/${f}`, data: readFileSync(abs), mode });
    }
  }
  const digest = createHash('sha256');
  for (const e of entries) digest.update(e.name).update('\0').update(e.data);
  const buildId = digest.digest('hex').slice(0, 16);
  entries.push({ name: 'worker/build-id', data: Buffer.from(buildId) });
  const zip = zipBytes(entries);
  mkdirSync(dirname(o.outFile), { recursive: true });
  writeFileSync(o.outFile, zip);
  return {
    outFile: o.outFile,
    buildId,
    zipBytes: zip.length,
    unzippedBytes: entries.reduce((n, e) => n + e.data.length, 0),
    files: entries.length,
    packages: closure.map((d) => relative(join(ROOT, 'node_modules'), d).split(sep).join('/')),
  };
}

/**
 * Builds the workflow bundle the serverless control worker loads (FEDFLOW_WORKFLOW_BUNDLE), so
 * that no invocation spends its window bundling:
 *   node --import tsx infra/lambda-bundle.ts dist/lambda/workflow-bundle.js
 * infra/lambda-package.ts puts it into the function's zip with the rest (`fedflow infra package-lambda`).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';

const quiet = { info() {}, warn() {}, error: console.error, debug() {}, trace() {}, log() {} };

/** Bundles `workflowsPath` (default: the production workflows) into `outFile`; returns its size in bytes. */
export async function buildControlWorkerBundle(outFile: string, workflowsPath: string = require.resolve('../workflows')): Promise<number> {
  const { code } = await bundleWorkflowCode({ workflowsPath, logger: quiet as never });
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, code);
  return Buffer.byteLength(code);
}

if (require.main === module) {
  const out = process.argv[2] ?? 'dist/lambda/workflow-bundle.js';
  buildControlWorkerBundle(out)
    .then((n) => console.log(`wrote ${out} (${n} bytes)`))
    .catch((err) => {
      console.error(err);
      process.exit(1);
    });
}

/**
 * Reading a workload spec from a YAML or JSON file (JSON is YAML too), then validating it with
 * core/workload-spec.ts. Every problem comes back at once, one line each.
 */
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { parseWorkloadSpec, type WorkloadSpec } from '../../core/workload-spec';

export class WorkloadSpecError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`invalid workload spec ${source}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'WorkloadSpecError';
  }
}

/** Parses spec text (YAML or JSON); throws a WorkloadSpecError listing every problem. */
export function parseWorkloadSpecText(text: string, source = '<inline>'): WorkloadSpec {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length) {
    throw new WorkloadSpecError(
      source,
      doc.errors.map((e) => `line ${e.linePos?.[0]?.line ?? '?'}: ${e.message.split('\n')[0]}; expected YAML or JSON`),
    );
  }
  const parsed = parseWorkloadSpec(doc.toJS());
  if (!parsed.ok) throw new WorkloadSpecError(source, parsed.problems);
  return parsed.spec;
}

export function loadWorkloadSpecFile(path: string): WorkloadSpec {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new WorkloadSpecError(path, [`cannot read the file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; give the path of a YAML or JSON spec, e.g. workloads/postgres.yaml`]);
  }
  return parseWorkloadSpecText(text, path);
}

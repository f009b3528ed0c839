/** Digs the ApplicationFailure out of a failed workflow, to assert on its type and retryability. */
import { ApplicationFailure } from '@temporalio/common';

export function applicationFailureOf(err: unknown): ApplicationFailure | undefined {
  let cur: unknown = err;
  while (cur instanceof Error) {
    if (cur instanceof ApplicationFailure) return cur;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

export async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  try {
    await p;
  } catch (err) {
    const f = applicationFailureOf(err);
    if (!f) throw new Error(`expected an ApplicationFailure, got ${String(err)}`);
    return f;
  }
  throw new Error('expected the workflow to fail, but it completed');
}

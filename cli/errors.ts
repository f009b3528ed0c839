/**
 * How the CLI reports a failure: one line on stderr for a person, or with `--json` one object
 * `{"error": {"type", "message"}}` on stdout for a program; either way the exit code is non-zero.
 */
import { CommanderError } from 'commander';
import { FedflowError } from '../client';
import { ConfigError } from '../core/federation-config';
import { InfraError } from '../infra/plan';

export interface CliError {
  /** Machine-readable: a FedflowError's type, a failure type, 'UsageError', or the error's class. */
  type: string;
  /** For a person: what was wrong and what would be right. */
  message: string;
  /** One line per problem, when there were several (an invalid workload spec). */
  problems?: string[];
}

/** The failure as the CLI tells it. Stacks are for bugs: only an unexpected error keeps one (text mode). */
export function describeError(err: unknown): CliError & { expected: boolean } {
  if (err instanceof FedflowError) return { type: err.type, message: err.message, expected: true, ...(err.problems.length > 1 || err.problems[0] !== err.message ? { problems: err.problems } : {}) };
  if (err instanceof ConfigError) return { type: 'ConfigError', message: err.message, expected: true };
  if (err instanceof InfraError) return { type: err.type, message: err.message, expected: true, ...(err.problems.length > 1 ? { problems: err.problems } : {}) };
  if (err instanceof CommanderError) return { type: 'UsageError', message: err.message.replace(/^error: /, ''), expected: true };
  if (err instanceof Error) return { type: err.name || 'Error', message: err.message, expected: false };
  return { type: 'Error', message: String(err), expected: false };
}

/** Whether this run asked for JSON: `--json` anywhere, so a usage error before any action is JSON too. */
export function wantsJson(argv: readonly string[] = process.argv.slice(2)): boolean {
  const end = argv.indexOf('--');
  return (end >= 0 ? argv.slice(0, end) : argv).includes('--json');
}

export function errorJson(err: unknown): { error: CliError } {
  const { type, message, problems } = describeError(err);
  return { error: { type, message, ...(problems ? { problems } : {}) } };
}

/** Prints the failure in the form asked for. Returns the exit code. */
export function reportFailure(err: unknown, json: boolean): number {
  if (err instanceof CommanderError && err.exitCode === 0) return 0; // --help, --version
  if (json) {
    process.stdout.write(JSON.stringify(errorJson(err)) + '\n');
    return 1;
  }
  const d = describeError(err);
  if (d.expected) console.error(`fedflow: ${d.message}`);
  else console.error(err);
  return 1;
}

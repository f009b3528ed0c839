/**
 * What every infra target answers: the changes it would make (`plan`), made (`up`) or undid
 * (`down`), one line each, and the error type the CLI prints without a stack.
 */
export const INFRA_TARGETS = ['aws', 'azure', 'gcp', 'temporal'] as const;
export type InfraTarget = (typeof INFRA_TARGETS)[number];

export const INFRA_ACTIONS = ['plan', 'up', 'down'] as const;
export type InfraAction = (typeof INFRA_ACTIONS)[number];

export interface Change {
  action: 'create' | 'update' | 'delete' | 'keep';
  /** The provider's resource type, e.g. AWS::EC2::VPC, namespace, search attribute. */
  kind: string;
  name: string;
  detail?: string;
}

export interface InfraResult {
  target: InfraTarget;
  action: InfraAction;
  /** Every resource the target manages, with what happened (or would happen) to it. */
  changes: Change[];
  /** Ids and addresses the stack exposes (subnet id, instance id, ...). */
  outputs?: Record<string, string>;
}

/** True when the result changed (or would change) nothing. */
export function unchanged(r: InfraResult): boolean {
  return r.changes.every((c) => c.action === 'keep');
}

export function formatResult(r: InfraResult): string {
  const lines = r.changes.map((c) => `  ${c.action.padEnd(6)} ${c.kind} ${c.name}${c.detail ? ` (${c.detail})` : ''}`);
  const verb = r.action === 'plan' ? 'would change' : 'changed';
  const n = r.changes.filter((c) => c.action !== 'keep').length;
  const head = `${r.target} ${r.action}: ${n === 0 ? 'no changes' : `${verb} ${n} of ${r.changes.length} resource(s)`}`;
  const outs = Object.entries(r.outputs ?? {}).map(([k, v]) => `  output ${k} = ${v}`);
  return [head, ...lines, ...outs].join('\n');
}

/**
 * A failure the user can act on: bad input, missing credentials, a stack the provider rolled back.
 * `problems` holds one line per problem when there were several.
 */
export class InfraError extends Error {
  constructor(
    message: string,
    readonly type: 'InvalidInfraConfig' | 'MissingCredentials' | 'StackFailed' | 'ProviderError' | 'NotSupported',
    readonly problems: string[] = [message],
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'InfraError';
  }
}

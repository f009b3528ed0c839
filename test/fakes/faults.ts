/**
 * Fault injection shared by the fakes: a test arms a fault for requests whose key
 * (`METHOD path` or, for EC2, the Action) matches, for a number of times. Every request is also
 * counted, so a test can check that the SDK really retried (two requests for one call).
 */
export const FaultKind = {
  Throttle: 'throttle',
  Unavailable: 'unavailable',
  Auth: 'auth',
  Slow: 'slow',
} as const;
export type FaultKind = (typeof FaultKind)[keyof typeof FaultKind];

export interface Fault {
  kind: FaultKind;
  /** Substring or pattern tested against the request key; absent matches everything. */
  match?: string | RegExp;
  /** How many matching requests get the fault. */
  times: number;
  /** For `slow`: delay before the real answer. */
  delayMs?: number;
}

function matches(m: string | RegExp | undefined, key: string): boolean {
  if (m === undefined) return true;
  return typeof m === 'string' ? key.includes(m) : m.test(key);
}

export class FaultPlan {
  private faults: Fault[] = [];
  private readonly seen: string[] = [];

  inject(fault: Fault): void {
    this.faults.push({ ...fault });
  }

  /** Called by a fake for every request: records it and returns the fault to apply, if any. */
  take(key: string): Fault | undefined {
    this.seen.push(key);
    const f = this.faults.find((x) => x.times > 0 && matches(x.match, key));
    if (f) f.times -= 1;
    return f;
  }

  /** How many requests matching `m` the fake has received so far. */
  count(m?: string | RegExp): number {
    return this.seen.filter((k) => matches(m, k)).length;
  }

  clear(): void {
    this.faults = [];
  }
}

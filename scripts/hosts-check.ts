/** Whether this machine can run the hosts tier (test/hosts/): root and iproute2's `ip netns`. */
import { execFileSync } from 'node:child_process';

/** Why this machine cannot run the hosts tier, or undefined when it can. */
export function hostsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'the hosts tier needs root (network namespaces, veth pairs, a bridge)';
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
  } catch {
    return 'the hosts tier needs iproute2 (`ip`): apt-get install iproute2';
  }
  return undefined;
}


/**
 * Hosts for the hosts tier: Linux network namespaces, each with one veth into a bridge and its own
 * address on the bridge's /24, and the bridge's own address in the test's namespace so the test
 * reaches every host. Every name carries this process's id, so two runs never share one, and
 * `teardown()` removes what `createHosts` made: every process still inside a namespace (only ones
 * this test started there), the namespaces (which takes their veths), and the bridge. It also runs
 * on the process's exit, so a failed or interrupted test leaves nothing behind.
 */
import { execFileSync } from 'node:child_process';
export { hostsUnavailable } from '../../scripts/hosts-check';

export interface Host {
  /** The namespace's name (`ip netns exec <ns> ...`). */
  ns: string;
  /** Its address on the bridge. */
  ip: string;
  /** The bridge's end of its link (in the test's namespace): down is a pulled cable. */
  veth: string;
}

export interface Hosts {
  bridge: string;
  /** The test's own address on the bridge. */
  gateway: string;
  hosts: Record<string, Host>;
  /** `ip netns exec <ns>`: the prefix of a command run on that host. */
  exec(host: string): string[];
  /** Shapes the host's egress with `tc tbf` (rate in Mbit/s), or removes the shaping (undefined). */
  shape(host: string, rateMbps: number | undefined): void;
  /**
   * Cuts the host off: its link's bridge end goes down, as a pulled cable, so nothing goes in or
   * out (packets are dropped, not refused: peers see silence, and TCP retransmits). Its processes
   * run on. Undone by heal(); teardown() needs neither.
   */
  partition(host: string): void;
  /** Brings the host's link back up: its TCP connections resume if they outlived the cut. */
  heal(host: string): void;
  teardown(): void;
}

const ip = (args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });

export function createHosts(names: string[]): Hosts {
  const tag = (process.pid % 100_000).toString(36);
  const bridge = `ffbr${tag}`;
  // 10.213.<n>.0/24, n from the pid: two runs on one machine get two subnets.
  const subnet = `10.213.${(process.pid % 250) + 1}`;
  const gateway = `${subnet}.1`;
  const hosts: Record<string, Host> = {};
  let torn = false;
  const teardown = () => {
    if (torn) return;
    torn = true;
    for (const h of Object.values(hosts)) {
      // Processes inside the namespace are ours (nothing else runs in a namespace this test made).
      let pids: string[] = [];
      try {
        pids = ip(['netns', 'pids', h.ns]).split('\n').filter(Boolean);
      } catch {
        /* namespace already gone */
      }
      for (const pid of pids) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          /* exited meanwhile */
        }
      }
      try {
        ip(['netns', 'del', h.ns]);
      } catch {
        /* never made, or gone */
      }
    }
    try {
      ip(['link', 'del', bridge]);
    } catch {
      /* never made, or gone */
    }
    process.removeListener('exit', teardown);
  };
  process.on('exit', teardown);
  try {
    ip(['link', 'add', bridge, 'type', 'bridge']);
    ip(['addr', 'add', `${gateway}/24`, 'dev', bridge]);
    ip(['link', 'set', bridge, 'up']);
    names.forEach((name, i) => {
      const ns = `ffh${tag}-${i}`;
      const host = `ffv${tag}h${i}`;
      const peer = `ffv${tag}p${i}`;
      hosts[name] = { ns, ip: `${subnet}.${10 + i}`, veth: host };
      ip(['netns', 'add', ns]);
      ip(['link', 'add', host, 'type', 'veth', 'peer', 'name', peer]);
      ip(['link', 'set', peer, 'netns', ns]);
      ip(['link', 'set', host, 'master', bridge]);
      ip(['link', 'set', host, 'up']);
      ip(['-n', ns, 'link', 'set', 'lo', 'up']);
      ip(['-n', ns, 'link', 'set', peer, 'name', 'eth0']);
      ip(['-n', ns, 'addr', 'add', `${hosts[name].ip}/24`, 'dev', 'eth0']);
      ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
    });
  } catch (err) {
    teardown();
    throw err;
  }
  return {
    bridge,
    gateway,
    hosts,
    exec: (name) => ['ip', 'netns', 'exec', hosts[name]!.ns],
    shape(name, rateMbps) {
      const ns = hosts[name]!.ns;
      try {
        execFileSync('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'del', 'dev', 'eth0', 'root'], { stdio: 'ignore' });
      } catch {
        /* none yet */
      }
      if (rateMbps !== undefined) execFileSync('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', 'eth0', 'root', 'tbf', 'rate', `${rateMbps}mbit`, 'burst', '64kb', 'latency', '100ms'], { stdio: 'pipe' });
    },
    partition: (name) => void ip(['link', 'set', hosts[name]!.veth, 'down']),
    heal: (name) => void ip(['link', 'set', hosts[name]!.veth, 'up']),
    teardown,
  };
}

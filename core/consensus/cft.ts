/**
 * Crash-tolerant replication of the federation log (datacenter mode): Raft-style log replication
 * whose leader is a Temporal workflow. The leader's state lives in workflow memory (and history);
 * each follower's state is what the site agent persists (agent/federation/log.ts).
 *
 *   workflow:  startLeader → send each message through an activity on the site's task queue
 *   agent:     stepFollower(msg) → persist (truncateFrom, entries, hardState) → return messages
 *   workflow:  stepLeader(reply) / tickLeader() on a timer / proposeLeader(value) → committed
 */
export * from './cft-types';
export { restoreFollower, stepFollower } from './cft-follower';
export { leaderQuorumWait, proposeLeader, startLeader, stepLeader, tickLeader, type LeaderOptions, type LeaderState } from './cft-leader';

/**
 * Byzantine-tolerant agreement on the federation log (internet mode): PBFT normal case with a
 * fixed primary per view, signed votes, portable commit certificates and equivocation proofs.
 *
 *   agent (each site): createReplica/restoreReplica; stepReplica(msg) / tickReplica() /
 *                      proposeReplica(value) at the primary → persist, send, apply (BftReady)
 *   workflow:          carries messages between site task queues; replicaQuorumWait for progress;
 *                      verifyCertificate to check a commit it did not watch
 */
export * from './bft-types';
export { checkEquivocationProof, signVote, voteBytes, voteSignatureValid, VOTE_DOMAIN } from './bft-votes';
export { makeCertificate, verifyCertificate, type CertificateCheck } from './bft-certificate';
export { createReplica, primaryOf, replicaQuorumWait, restoreReplica, type Replica, type ReplicaOptions, type ReplicaState } from './bft-replica-state';
export { proposeReplica, stepReplica, tickReplica } from './bft-replica';

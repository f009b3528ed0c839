/**
 * The target agent's side of a delta transfer: fetch the manifest, diff it against the local chunk
 * store (the baseline: every chunk held from any earlier round, sync or volume), and pull only the
 * missing chunks from the source's chunk endpoint in batches over N keep-alive streams. Every chunk
 * is verified by sha256 before it is written (by ChunkStore.putMany, which refuses bad bytes before
 * touching the disk); a corrupt one is fetched again and never stored.
 * Memory: per stream, one batch being parsed; for the pull, about two store groups of
 * GROUP_BYTES (one committing, one filling), whatever the volume's size.
 */
import { Agent, request as httpRequest, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { checkScheme, tlsClientOptions, type PeerCall } from './tls';
import type { ChunkRef, Manifest } from '../../core/manifest';
import { diffManifest, type ManifestDelta } from '../../core/manifest-diff';
import type { ChunkStore } from '../store/chunk-store';
import type { CodecSpec } from './codec';
import { unpackChunk } from './codec';
import { zstdDecompress, zstdFrameContentSize } from './zstd';
import type { FinalImage } from '../capture/final-images';
import { digestsOf, verifyDecodedManifest, verifyManifest } from '../capture/manifest-builder';
import { ManifestError, SHA256_HEX } from '../../core/manifest';
import { decodeManifestWithDigests, ManifestDeltaError, readManifestHeader } from '../../core/manifest-delta';
import { BINARY_MANIFEST_TYPE, decodeResent, MANIFEST_BASE_HEADER, MAX_MANIFEST_BASES, RESENT_HEADER } from './server';

export interface PullPlan {
  codec: CodecSpec;
  /** Parallel HTTP streams. */
  streams: number;
  /** Target raw bytes per batch request. */
  batchBytes: number;
}

export interface PullProgress {
  /** Batches done, counted as a contiguous prefix of the batch list: the resume cursor. */
  cursor: number;
  batches: number;
  chunksDone: number;
  /** Batches no stream has started yet: while above 0, every stream is busy. */
  queued: number;
  rawBytes: number;
  wireBytes: number;
}

/**
 * What one pull has received so far, kept where its caller can read it at any moment (a pull that
 * fails or is cancelled returns nothing): every byte of a chunk reply on the wire falls in exactly
 * one of stored, duplicate, corrupt, or none of them (received but never made durable: the frames
 * of a group not yet committed, or a partial frame, when the pull ended).
 */
export interface PullCounters {
  /** Response bytes of chunk batches on the wire (frame headers + packed chunks). */
  wireBytes: number;
  /** Raw bytes of the chunks received and committed (stored or duplicate). */
  rawBytes: number;
  chunks: number;
  /** Wire bytes of chunks this pull stored (new to the store). */
  storedWireBytes: number;
  storedChunks: number;
  /** Wire bytes of chunks the store already held when their commit ran (another pull stored them meanwhile). */
  duplicateWireBytes: number;
  /** Wire bytes of chunks that arrived corrupt and were asked for again. */
  corruptWireBytes: number;
  /** Wire bytes of chunks the source said it had served to this target before (RESENT_HEADER): a retry's second copy. */
  resentWireBytes: number;
  /** Whether the source says what it serves twice (agents from before RESENT_HEADER do not). */
  sourceCountsResent: boolean;
}

export function newPullCounters(): PullCounters {
  return { wireBytes: 0, rawBytes: 0, chunks: 0, storedWireBytes: 0, storedChunks: 0, duplicateWireBytes: 0, corruptWireBytes: 0, resentWireBytes: 0, sourceCountsResent: false };
}

/** Bytes a pull received that did not end up in the store: lost if the pull ended there. */
export function undurableWireBytes(c: PullCounters): number {
  return Math.max(0, c.wireBytes - c.storedWireBytes - c.duplicateWireBytes - c.corruptWireBytes);
}

export interface PullFigures {
  delta: Omit<ManifestDelta, 'toSend'>;
  chunksFetched: number;
  rawBytes: number;
  /** Response bytes on the wire (frame headers + packed chunks). */
  wireBytes: number;
  corruptRefetched: number;
  /** Chunks found already stored when their batch ran (a resumed transfer). */
  skippedVerified: number;
  durationMs: number;
}

export class TransferRefusedError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'TransferRefusedError';
  }
}

export class ChunkCorruptError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChunkCorruptError';
  }
}

const MAX_CORRUPT_RETRIES = 3;
/** Raw bytes of verified chunks stored per group commit (ChunkStore.putMany). */
const GROUP_BYTES = 4 << 20;

type PutResult = 'stored' | 'duplicate' | 'rejected';

/**
 * One group commit at a time for the whole pull, fed by every stream: a group fills while the
 * previous one commits, so groups are large (few directory fsyncs per chunk) whatever the batch
 * size. A group is committed when it reaches groupBytes, or as soon as the previous commit ends
 * when a stream waits for its chunks (flushSoon). Memory: the committing group plus about one
 * group waiting (add's callers wait for room beyond that), so that a crash loses (and a resumed
 * pull fetches again) at most about two groups of received chunks.
 */
class GroupCommitter {
  private queue: { hash: string; data: Buffer; resolve: (r: PutResult) => void; reject: (e: unknown) => void }[] = [];
  private queuedBytes = 0;
  private running = false;
  private wanted = false;
  private roomWaiters: (() => void)[] = [];

  constructor(
    private readonly store: ChunkStore,
    private readonly groupBytes: number,
  ) {}

  get full(): boolean {
    return this.queuedBytes >= this.groupBytes;
  }

  room(): Promise<void> {
    return this.full ? new Promise((resolve) => this.roomWaiters.push(resolve)) : Promise.resolve();
  }

  add(hash: string, data: Buffer): Promise<PutResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ hash, data, resolve, reject });
      this.queuedBytes += data.length;
      if (this.queuedBytes >= this.groupBytes) this.kick();
    });
  }

  flushSoon(): void {
    this.wanted = true;
    this.kick();
  }

  private kick(): void {
    if (this.running || this.queue.length === 0) return;
    const group = this.queue.splice(0, this.queue.length);
    this.queuedBytes = 0;
    this.wanted = false;
    this.running = true;
    for (const wake of this.roomWaiters.splice(0)) wake();
    this.store
      .putMany(group.map((e) => ({ hash: e.hash, data: e.data })))
      .then(
        (results) => group.forEach((e, k) => e.resolve(results[k]!)),
        (err: unknown) => group.forEach((e) => e.reject(err)),
      )
      .finally(() => {
        this.running = false;
        if (this.queuedBytes >= this.groupBytes || this.wanted) this.kick();
      });
  }
}

/**
 * The connection pool for calls to one peer agent: mutual TLS when this agent has TLS material
 * (the server's certificate must name `peer.site`), plain HTTP otherwise. A URL whose scheme is
 * not the federation's is refused (agent/transfer/tls.ts checkScheme): no silent downgrade.
 */
export function peerAgent(endpoint: string, peer: PeerCall | undefined, pool: { keepAlive: boolean; maxSockets: number; timeout?: number }): Agent {
  checkScheme(endpoint, peer?.tls);
  return peer?.tls ? new HttpsAgent({ ...pool, ...tlsClientOptions(peer.tls, peer.site) }) : new Agent(pool);
}

/**
 * The keep-alive pool this agent shares for every call to one peer agent: the URL's origin, the
 * peer's site (whose certificate the server must present) and this agent's TLS material (by
 * identity: new material, new pool). A cut-over's calls (the final image, the manifest, the
 * final chunks, the digest) then go over connections the pre-copy rounds opened, with no TLS
 * handshake inside the downtime window (a fresh mutual-TLS request costs ~2.2 ms against
 * ~0.2 ms on a pooled one here: `npm run bench -- peer-pool`).
 *
 * A pooled socket is dropped when the peer closes it (an agent that stops or crashes) and, per
 * the server's `Keep-Alive: timeout=` hint, a second before the server would close it idle: Node's
 * agent applies the hint only to an agent with a `timeout`, hence POOL_IDLE_MS (the transfer
 * server says 30 s, so a free socket goes after 29 s): no request is sent on a socket the peer is
 * closing. A peer gone without a word (a host lost, a partition) is caught by each request's own
 * idle limit (PEER_IDLE_MS), as a new connection to it would be by its connect timeout.
 * Callers never destroy a pool; an aborted request destroys only its own socket. Idle sockets do
 * not keep a process alive (Node unrefs them).
 */
export function peerPool(endpoint: string, peer: PeerCall | undefined): Agent {
  checkScheme(endpoint, peer?.tls);
  const key = `${new URL(endpoint).origin} ${peer?.site ?? ''}`;
  const byKey = peer?.tls ? (tlsPools.get(peer.tls) ?? tlsPools.set(peer.tls, new Map()).get(peer.tls)!) : plainPools;
  let agent = byKey.get(key);
  if (!agent) {
    agent = peerAgent(endpoint, peer, { keepAlive: true, maxSockets: Infinity, timeout: POOL_IDLE_MS });
    // Callers bound their own concurrency (a pull's streams); this bounds what stays open idle.
    agent.maxFreeSockets = POOL_FREE_SOCKETS;
    byKey.set(key, agent);
  }
  return agent;
}

/** Idle connections a pool keeps per peer: the most streams a pull uses (core/mode-policy.ts: 32, internet). */
const POOL_FREE_SOCKETS = 32;
/** A free socket's idle limit when the server gives no hint (the transfer server's 30 s hint wins: 29 s). */
const POOL_IDLE_MS = 60_000;
/**
 * How long a request to a peer may go without a byte either way before it fails (a long poll: its
 * wait on top). Far above any pause of a working peer; a dead one is given up on instead of
 * waiting for TCP's retransmissions (about 15 min).
 */
export const PEER_IDLE_MS = 120_000;
const plainPools = new Map<string, Agent>();
const tlsPools = new WeakMap<NonNullable<PeerCall['tls']>, Map<string, Agent>>();

function request(url: string, options: RequestOptions, cb: (res: IncomingMessage) => void) {
  return (url.startsWith('https:') ? httpsRequest : httpRequest)(url, options, cb);
}

/** A request that went `idleMs` without a byte either way is destroyed with an error that says so. */
function idleLimit(req: ClientRequest, url: string, idleMs: number): void {
  req.setTimeout(idleMs, () => req.destroy(new Error(`no byte from ${url.split('?')[0]} for ${idleMs / 1000} s: its agent is unreachable or stalled`)));
}

function send(agent: Agent, url: string, method: string, token: string, body?: string, signal?: AbortSignal, idleMs = PEER_IDLE_MS): Promise<{ status: number; body: Buffer; encoding?: string; type?: string; base?: string }> {
  return new Promise((resolve, reject) => {
    const headers = { authorization: `Bearer ${token}`, 'accept-encoding': 'zstd', ...(body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {}) };
    const req = request(url, { method, agent, signal, headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => {
        const base = res.headers[MANIFEST_BASE_HEADER];
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts), encoding: res.headers['content-encoding'], type: res.headers['content-type'], base: typeof base === 'string' ? base : undefined });
      });
      res.on('error', reject);
    });
    idleLimit(req, url, idleMs);
    req.on('error', reject);
    req.end(body);
  });
}

function open(agent: Agent, url: string, token: string, body: string, signal?: AbortSignal): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, signal, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, resolve);
    // Holds while the answer streams too: a batch that stops arriving fails, and is asked for again.
    idleLimit(req, url, PEER_IDLE_MS);
    req.on('error', reject);
    req.end(body);
  });
}

function refused(status: number, body: Buffer, what: string): TransferRefusedError {
  let msg = body.toString('utf8').slice(0, 300);
  try {
    msg = (JSON.parse(msg) as { error: string }).error;
  } catch {
    /* not JSON */
  }
  return new TransferRefusedError(status, `${what} answered ${status}: ${msg}`);
}

/** A manifest compresses ~2.4:1; refuse a frame claiming far more, before allocating it. */
const MAX_MANIFEST_EXPANSION = 64;

function decodeBody(body: Buffer, encoding: string | undefined, endpoint: string): Buffer {
  if (!encoding || encoding === 'identity') return body;
  if (encoding !== 'zstd') throw new ChunkCorruptError(`manifest from ${endpoint} is ${encoding}-encoded; only zstd was accepted`);
  const claimed = zstdFrameContentSize(body);
  if (claimed === null || claimed > MAX_MANIFEST_EXPANSION * body.length + (1 << 20)) {
    throw new ChunkCorruptError(`zstd manifest from ${endpoint} claims ${claimed ?? 'an unknown number of'} bytes from ${body.length}; refusing it`);
  }
  try {
    // Bounded by the claim: a body that decompresses to more than its header said is refused.
    return zstdDecompress(body, claimed);
  } catch (err) {
    throw new ChunkCorruptError(`zstd manifest from ${endpoint} (${body.length} bytes, claiming ${claimed}) does not decompress: ${(err as Error).message}`);
  }
}

export interface FetchManifestOptions {
  /**
   * Roots of manifests this target holds (most useful first): the source answers with a binary
   * delta against the first one it also knows. Needs loadBase.
   */
  bases?: string[];
  /** Loads a held manifest by root (e.g. ChunkStore.getManifest). */
  loadBase?: (root: string) => Promise<Manifest | undefined>;
  /** How the manifest came: for figures and tests. */
  onFetched?: (info: ManifestFetchInfo) => void;
  /** The source site and this agent's TLS material (absent: plain HTTP). */
  peer?: PeerCall;
}

export interface ManifestFetchInfo {
  format: 'json' | 'binary';
  /** The base of the delta that was used, if any. */
  baseRoot?: string;
  /** Response bytes of the manifest request(s). */
  bodyBytes: number;
  /** Why a delta was not used and the full manifest was fetched instead. */
  fellBack?: string;
}

/**
 * Fetches and verifies a manifest (its root must be `root`). With opts.bases, asks for a binary
 * delta against a manifest this target holds; a delta that does not decode against that base or
 * does not hash to `root` (tampered, or the base differs between the sides) is dropped and the
 * full manifest fetched instead, so a bad delta costs a round trip, never a wrong manifest.
 */
/**
 * Long-polls the source's endpoint for a cut-over's final image (agent/capture/final-images.ts): the
 * image once the source has captured it, or undefined if it has not within `waitMs`. With
 * `digestOf` (a root the caller holds), the image once that root's digest is announced, or once
 * another image replaced it. With `lost` (an announced image the source no longer held), only an
 * image the source holds (another, or that one captured again).
 */
export async function fetchFinalImage(endpoint: string, slot: string, token: string, waitMs: number, signal?: AbortSignal, peer?: PeerCall, digestOf?: string, lost?: string): Promise<FinalImage | undefined> {
  const query = `waitMs=${waitMs}${digestOf ? `&digestOf=${digestOf}` : ''}${lost ? `&lost=${lost}` : ''}`;
  const res = await send(peerPool(endpoint, peer), `${endpoint}/finals/${slot}?${query}`, 'GET', token, undefined, signal, waitMs + PEER_IDLE_MS);
  if (res.status === 204) return undefined;
  if (res.status !== 200) throw refused(res.status, res.body, `GET ${endpoint}/finals/${slot.slice(0, 12)}…`);
  const image = JSON.parse(res.body.toString('utf8')) as FinalImage;
  if (!image?.manifest || !SHA256_HEX.test(image.manifest.rootHash) || (image.digest !== undefined && typeof image.digest?.sha256 !== 'string') || typeof image.frozenAtMs !== 'number') {
    throw new ChunkCorruptError(`final image announced by ${endpoint} is malformed: ${res.body.toString('utf8').slice(0, 200)}`);
  }
  return image;
}

export async function fetchManifest(endpoint: string, root: string, token: string, signal?: AbortSignal, opts: FetchManifestOptions = {}): Promise<Manifest> {
  const agent = peerPool(endpoint, opts.peer);
  const get = async (query: string) => {
    const res = await send(agent, `${endpoint}/manifests/${root}${query}`, 'GET', token, undefined, signal);
    if (res.status !== 200) throw refused(res.status, res.body, `GET ${endpoint}/manifests/${root.slice(0, 12)}…`);
    return res;
  };
  const checked = (m: Manifest): Manifest => {
    const v = verifyManifest(m);
    if (v.rootHash !== root) throw new ChunkCorruptError(`manifest from ${endpoint} has root ${v.rootHash}, asked for ${root}`);
    return v;
  };
  // A binary manifest: its root checked over the digests the decoder read (and, for the entries
  // a delta copies, the base's cached digests), not over its entries' hex spelled again.
  const decodedChecked = (body: Uint8Array, base?: Manifest): Manifest => {
    const baseDigests = base && digestsOf(base);
    if (base && !baseDigests) throw new ManifestDeltaError(`base manifest ${base.rootHash} holds a hash that is not 64 lower-case hex digits`);
    const { manifest, digests } = decodeManifestWithDigests(body, base, baseDigests);
    const v = verifyDecodedManifest(manifest, digests);
    if (v.rootHash !== root) throw new ChunkCorruptError(`manifest from ${endpoint} has root ${v.rootHash}, asked for ${root}`);
    return v;
  };
  const bases = (opts.bases ?? []).filter((r) => r !== root).slice(0, MAX_MANIFEST_BASES);
  if (bases.length && opts.loadBase) {
    const res = await get(`?format=bin&base=${bases.join(',')}`);
    if (res.type === BINARY_MANIFEST_TYPE) {
      let fellBack: string;
      try {
        const head = readManifestHeader(res.body);
        const baseRoot = head.baseRoot;
        if (baseRoot !== undefined && !bases.includes(baseRoot)) throw new ManifestDeltaError(`delta is against ${baseRoot}, which this target did not offer`);
        const base = baseRoot === undefined ? undefined : await opts.loadBase(baseRoot);
        if (baseRoot !== undefined && !base) throw new ManifestDeltaError(`base manifest ${baseRoot} is no longer held here`);
        const m = decodedChecked(res.body, base);
        opts.onFetched?.({ format: 'binary', ...(baseRoot ? { baseRoot } : {}), bodyBytes: res.body.length });
        return m;
      } catch (err) {
        if (!(err instanceof ManifestDeltaError || err instanceof ManifestError || err instanceof ChunkCorruptError)) throw err;
        fellBack = err.message;
      }
      // The full manifest, binary and without a base: checked against the root like the delta.
      const full = await get('?format=bin');
      if (full.type !== BINARY_MANIFEST_TYPE) throw new ChunkCorruptError(`manifest from ${endpoint} came as ${full.type}, asked for ${BINARY_MANIFEST_TYPE}`);
      let m: Manifest;
      try {
        if (readManifestHeader(full.body).baseRoot !== undefined) throw new ManifestDeltaError('answered a delta where the full manifest was asked for');
        m = decodedChecked(full.body);
      } catch (err) {
        if (err instanceof ManifestDeltaError || err instanceof ManifestError) throw new ChunkCorruptError(`manifest ${root.slice(0, 12)}… from ${endpoint} is invalid: ${err.message}`);
        throw err;
      }
      opts.onFetched?.({ format: 'binary', bodyBytes: res.body.length + full.body.length, fellBack });
      return m;
    }
    // An older source that ignores format=bin answered JSON: use it as such.
    const m = checked(JSON.parse(decodeBody(res.body, res.encoding, endpoint).toString('utf8')) as Manifest);
    opts.onFetched?.({ format: 'json', bodyBytes: res.body.length });
    return m;
  }
  const res = await get('');
  const m = checked(JSON.parse(decodeBody(res.body, res.encoding, endpoint).toString('utf8')) as Manifest);
  opts.onFetched?.({ format: 'json', bodyBytes: res.body.length });
  return m;
}

/** Splits the chunks to send into batches of about `batchBytes`. */
export function planBatches(toSend: ChunkRef[], batchBytes: number, maxHashes = 4096): ChunkRef[][] {
  const batches: ChunkRef[][] = [];
  let cur: ChunkRef[] = [];
  let bytes = 0;
  for (const c of toSend) {
    if (cur.length && (bytes + c.length > batchBytes || cur.length >= maxHashes)) {
      batches.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(c);
    bytes += c.length;
  }
  if (cur.length) batches.push(cur);
  return batches;
}

export interface PullOptions {
  endpoint: string;
  root: string;
  token: string;
  manifest: Manifest;
  store: ChunkStore;
  plan: PullPlan;
  /** Destination site, so the source shapes the reply over the right emulated link. */
  to?: string;
  /**
   * The cursor an earlier attempt reported. Informational only: chunks that attempt verified are
   * in the store and are never asked for again, which is what resuming needs.
   */
  resumeCursor?: number;
  onProgress?: (p: PullProgress) => void;
  /** Counted into as the pull goes (also when it fails): give one to read the figures of a pull that did not finish. */
  counters?: PullCounters;
  signal?: AbortSignal;
  /** The source site and this agent's TLS material (absent: plain HTTP). */
  peer?: PeerCall;
}

export async function pullMissingChunks(opts: PullOptions): Promise<PullFigures> {
  const t0 = performance.now();
  const delta = diffManifest(opts.manifest, opts.store);
  const { toSend, ...deltaSummary } = delta;
  const batches = planBatches(toSend, opts.plan.batchBytes);
  // Shared with the peer's other calls; the streams below bound this pull's connections.
  const agent = peerPool(opts.endpoint, opts.peer);
  const spec = opts.plan.codec;
  const q = `codec=${spec.codec}${spec.codec === 'zstd' ? `&level=${spec.level}` : ''}${opts.to ? `&to=${encodeURIComponent(opts.to)}` : ''}`;
  const url = `${opts.endpoint}/chunks/${opts.root}?${q}`;
  const done = new Array<boolean>(batches.length).fill(false);
  const progress: PullProgress = { cursor: 0, batches: batches.length, chunksDone: 0, queued: batches.length, rawBytes: 0, wireBytes: 0 };
  const counters = opts.counters ?? newPullCounters();
  const committer = new GroupCommitter(opts.store, GROUP_BYTES);
  let corruptRefetched = 0;
  let chunksFetched = 0;
  let skippedVerified = 0;
  // The store is the resume state: every chunk an earlier attempt verified is in it, so the diff
  // above already leaves it out. `resumeCursor` is therefore not used to skip batches: it indexes
  // batches planned over the earlier, larger delta, and skipping that many batches of this smaller
  // one used to skip chunks that were never fetched.
  let next = 0;

  async function fetchBatch(refs: ChunkRef[], attempt: number): Promise<void> {
    // A chunk verified by an earlier attempt is in the store already: never ask for it again.
    const wanted = refs.filter((r) => !opts.store.has(r.hash));
    skippedVerified += refs.length - wanted.length;
    if (!wanted.length) return;
    const body = JSON.stringify({ hashes: wanted.map((r) => r.hash) });
    const res = await open(agent, url, opts.token, body, opts.signal);
    if (res.statusCode !== 200) {
      const parts: Buffer[] = [];
      for await (const c of res) parts.push(c as Buffer);
      throw refused(res.statusCode ?? 0, Buffer.concat(parts), `POST ${opts.endpoint}/chunks/${opts.root.slice(0, 12)}…`);
    }
    // Parse frames as they arrive; verified chunks go to the pull-wide group committer, which
    // stores them in groups of about GROUP_BYTES (one ChunkStore.putMany each: every hash checked
    // before anything touches the disk, each directory fsynced once per group) while the frames
    // keep arriving. A batch counts as done only once all its chunks are committed.
    const bad: ChunkRef[] = [];
    const pending: Promise<void>[] = [];
    const servedBefore = decodeResent(res.headers[RESENT_HEADER]);
    if (servedBefore) counters.sourceCountsResent = true;
    const take = (ref: ChunkRef, raw: Buffer, frameBytes: number) =>
      committer.add(ref.hash, raw).then((r) => {
        if (r === 'rejected') {
          counters.corruptWireBytes += frameBytes;
          bad.push(ref);
          return;
        }
        if (r === 'stored') {
          counters.storedWireBytes += frameBytes;
          counters.storedChunks++;
        } else counters.duplicateWireBytes += frameBytes;
        counters.rawBytes += raw.length;
        counters.chunks++;
        chunksFetched++;
        progress.rawBytes += raw.length;
        progress.chunksDone++;
      });
    let buf: Buffer = Buffer.alloc(0);
    let i = 0;
    try {
      for await (const piece of res) {
        progress.wireBytes += (piece as Buffer).length;
        counters.wireBytes += (piece as Buffer).length;
        buf = buf.length ? Buffer.concat([buf, piece as Buffer]) : (piece as Buffer);
        while (buf.length >= 36) {
          const len = buf.readUInt32BE(32);
          if (buf.length < 36 + len) break;
          if (servedBefore?.(i)) counters.resentWireBytes += 36 + len;
          const ref = wanted[i++];
          if (!ref) throw new ChunkCorruptError(`batch reply from ${opts.endpoint} has more frames than the ${wanted.length} asked for`);
          const hash = buf.toString('hex', 0, 32);
          if (hash !== ref.hash) throw new ChunkCorruptError(`batch reply from ${opts.endpoint} is out of order: got ${hash.slice(0, 12)}, expected ${ref.hash.slice(0, 12)}`);
          const packed = buf.subarray(36, 36 + len);
          buf = buf.subarray(36 + len);
          let raw: Buffer | undefined;
          try {
            raw = unpackChunk(packed, ref.length);
            // Sent raw, it is a view into the socket's buffer: copy it rather than pin that buffer.
            if (raw.buffer === packed.buffer) raw = Buffer.from(raw);
          } catch {
            raw = undefined;
          }
          if (!raw) {
            counters.corruptWireBytes += 36 + len;
            bad.push(ref);
            continue;
          }
          pending.push(take(ref, raw, 36 + len));
          // Backpressure on the socket while the committer holds a full group waiting.
          if (committer.full) await committer.room();
        }
      }
    } finally {
      // Never return (or throw) with a commit of this batch's chunks still running behind the
      // caller's back.
      committer.flushSoon();
      await Promise.allSettled(pending);
    }
    await Promise.all(pending);
    if (i !== wanted.length) throw new ChunkCorruptError(`batch reply from ${opts.endpoint} ended after ${i} of ${wanted.length} chunks`);
    if (bad.length) {
      if (attempt >= MAX_CORRUPT_RETRIES) throw new ChunkCorruptError(`${bad.length} chunk(s) arrived corrupt ${attempt + 1} times in a row from ${opts.endpoint}, e.g. ${bad[0]!.hash.slice(0, 12)}`);
      corruptRefetched += bad.length;
      await fetchBatch(bad, attempt + 1);
    }
  }

  async function worker(): Promise<void> {
    for (;;) {
      opts.signal?.throwIfAborted();
      const i = next++;
      if (i >= batches.length) return;
      await fetchBatch(batches[i]!, 0);
      done[i] = true;
      while (progress.cursor < batches.length && done[progress.cursor]) progress.cursor++;
      opts.onProgress?.({ ...progress, queued: Math.max(0, batches.length - next) });
    }
  }

  // On a failure the other streams stop at their next batch; wait for them, so that nothing of
  // this pull still writes to the store when it returns (a retry may start at once).
  const settled = await Promise.allSettled(
    Array.from({ length: Math.max(1, Math.min(opts.plan.streams, batches.length)) }, () =>
      worker().catch((err: unknown) => {
        next = batches.length;
        throw err;
      }),
    ),
  );
  const rejected = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (rejected) throw rejected.reason;
  return { delta: deltaSummary, chunksFetched, rawBytes: progress.rawBytes, wireBytes: progress.wireBytes, corruptRefetched, skippedVerified, durationMs: performance.now() - t0 };
}

/**
 * A fetch (the shape agent/link/telemetry.ts probes with) over one keep-alive pool to a peer
 * agent: mutual TLS when this agent has TLS material, the server checked to be `peer.site`.
 * `close()` drops the pool's connections.
 */
export function peerFetch(endpoint: string, peer: PeerCall | undefined): { fetch: (url: string, init?: { method?: string; headers?: Record<string, string>; signal?: AbortSignal }) => Promise<{ ok: boolean; status: number; body: IncomingMessage }>; close: () => void } {
  const agent = peerAgent(endpoint, peer, { keepAlive: true, maxSockets: 1 });
  return {
    fetch: (url, init = {}) =>
      new Promise((resolve, reject) => {
        const req = request(url, { method: init.method ?? 'GET', headers: init.headers, signal: init.signal, agent }, (res) => {
          const status = res.statusCode ?? 0;
          // A probe stops reading and aborts mid-body: that reset is expected, not an uncaught error.
          res.on('error', () => undefined);
          resolve({ ok: status >= 200 && status < 300, status, body: res });
        });
        req.on('error', reject);
        req.end();
      }),
    close: () => agent.destroy(),
  };
}

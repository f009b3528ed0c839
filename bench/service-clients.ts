/**
 * The downtime benchmark's clients of the two real services (./downtime-services.ts): how to
 * connect, seed, write and read back, and the writer that sends one write after another. Kept
 * apart from the benchmark so that the client process (./client-process.ts) loads only this.
 */
import { randomBytes } from 'node:crypto';
import { PgWire, RedisWire } from '../test/helpers/wire-clients';

export type ServiceName = 'postgres' | 'redis';

/** One persistent connection to the service: writes key n, reads back which of a set are there. */
export interface ServiceClient {
  write(n: number): Promise<void>;
  present(ns: number[]): Promise<Set<number>>;
  close(): void;
}

export interface Service {
  connect(hostPort: string): Promise<ServiceClient>;
  /** Fills the service to about `mib` MiB and prepares what the writer writes to. */
  seed(hostPort: string, mib: number): Promise<void>;
  /** Empties what a writer wrote, so the next run's keys start from 1 on a clean slate. */
  clearAcked(hostPort: string): Promise<void>;
}

export const SERVICES: Record<ServiceName, Service> = {
  postgres: {
    async connect(hostPort) {
      const c = await PgWire.connect(hostPort, { timeoutMs: 10_000 });
      return {
        write: async (n) => void (await c.query(`INSERT INTO acked (n) VALUES (${n})`)),
        present: async (ns) => new Set((await c.query(`SELECT n FROM acked WHERE n IN (${ns.join(',') || 'NULL'})`)).map((r) => Number(r[0]))),
        close: () => c.close(),
      };
    },
    async seed(hostPort, mib) {
      const c = await PgWire.connect(hostPort);
      try {
        await c.query('CREATE TABLE IF NOT EXISTS acked (n bigint PRIMARY KEY)');
        await c.query('CREATE TABLE IF NOT EXISTS filler (id bigint PRIMARY KEY, pad text NOT NULL)');
        // 1 KiB rows (TOAST compression off: the bytes land in the table), 8 MiB per statement.
        await c.query('ALTER TABLE filler ALTER COLUMN pad SET STORAGE EXTERNAL');
        const rows = mib * 1024;
        for (let from = 1; from <= rows; from += 8192) {
          await c.query(`INSERT INTO filler SELECT g, repeat(md5(g::text), 32) FROM generate_series(${from}, ${Math.min(rows, from + 8191)}) g`);
        }
        await c.query('CHECKPOINT');
      } finally {
        c.close();
      }
    },
    async clearAcked(hostPort) {
      const c = await PgWire.connect(hostPort);
      try {
        await c.query('TRUNCATE acked');
      } finally {
        c.close();
      }
    },
  },
  redis: {
    async connect(hostPort) {
      const c = await RedisWire.connect(hostPort, { timeoutMs: 10_000 });
      return {
        write: async (n) => void (await c.command('SET', `acked:${n}`, n)),
        present: async (ns) => {
          if (!ns.length) return new Set();
          const got = (await c.command('MGET', ...ns.map((n) => `acked:${n}`))) as (string | null)[];
          return new Set(ns.filter((_, i) => got[i] !== null));
        },
        close: () => c.close(),
      };
    },
    async seed(hostPort, mib) {
      const c = await RedisWire.connect(hostPort);
      try {
        // Random (base64) values: Redis compresses what it writes to its RDB base file.
        for (let i = 0; i < mib * 16; i++) await c.command('SET', `filler:${i}`, randomBytes(48 << 10).toString('base64'));
      } finally {
        c.close();
      }
    },
    async clearAcked(hostPort) {
      const c = await RedisWire.connect(hostPort);
      try {
        const keys = (await c.command('KEYS', 'acked:*')) as string[];
        for (let i = 0; i < keys.length; i += 1000) await c.command('DEL', ...keys.slice(i, i + 1000));
      } finally {
        c.close();
      }
    },
  },
};

export interface ServiceWriterLog {
  /** Key → when its write was acknowledged (ms since the epoch). */
  acked: Map<number, number>;
  failed: number;
}

/** Writes 1, 2, 3 … one after another, reconnecting as soon as the connection ends; records each acknowledgement's time. */
export function startServiceWriter(service: Service, hostPort: string): { log: ServiceWriterLog; stop: () => Promise<void> } {
  const log: ServiceWriterLog = { acked: new Map(), failed: 0 };
  let running = true;
  const loop = (async () => {
    let n = 0;
    let c: ServiceClient | undefined;
    while (running) {
      try {
        c ??= await service.connect(hostPort);
        const k = ++n;
        await c.write(k);
        log.acked.set(k, Date.now());
      } catch {
        log.failed++;
        c?.close();
        c = undefined;
        await new Promise((r) => setTimeout(r, 2));
      }
    }
    c?.close();
  })();
  return { log, stop: async () => void ((running = false), await loop) };
}

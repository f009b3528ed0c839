/**
 * Two small clients for tests and benchmarks that must see every acknowledgement with millisecond
 * resolution over one persistent connection (a psql or redis-cli process per request adds tens of
 * milliseconds of its own): PostgreSQL's frontend/backend protocol 3.0 (trust authentication,
 * simple queries only) and Redis's RESP2. Both reject every pending request when the connection
 * ends, so a caller sees exactly what was acknowledged.
 */
import { connect, type Socket } from 'node:net';

class Wire {
  protected buf: Buffer = Buffer.alloc(0);
  protected closed?: Error;
  protected waiting: { resolve: (v: unknown) => void; reject: (e: Error) => void }[] = [];

  protected constructor(protected readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      try {
        this.parse();
      } catch (err) {
        this.fail(err as Error);
      }
    });
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => this.fail(new Error('connection closed')));
  }

  protected static open(host: string, port: number, timeoutMs: number): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const s = connect({ host, port });
      s.setNoDelay(true);
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error(`connect ${host}:${port}: no connection in ${timeoutMs} ms`));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  protected parse(): void {}

  protected fail(err: Error): void {
    if (this.closed) return;
    this.closed = err;
    this.socket.destroy();
    for (const w of this.waiting.splice(0)) w.reject(err);
  }

  protected expect<T>(send: Buffer): Promise<T> {
    if (this.closed) return Promise.reject(this.closed);
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({ resolve: resolve as (v: unknown) => void, reject });
      this.socket.write(send);
    });
  }

  get isClosed(): boolean {
    return !!this.closed;
  }

  close(): void {
    this.fail(new Error('closed by the client'));
  }
}

/** PostgreSQL, protocol 3.0, trust authentication, simple query protocol. */
export class PgWire extends Wire {
  private rows: (string | null)[][] = [];
  private error?: string;
  private ready!: () => void;
  private readonly readyOnce = new Promise<void>((r) => (this.ready = r));
  private started = false;

  static async connect(address: string, opts: { user?: string; database?: string; timeoutMs?: number } = {}): Promise<PgWire> {
    const i = address.lastIndexOf(':');
    const socket = await Wire.open(address.slice(0, i), Number(address.slice(i + 1)), opts.timeoutMs ?? 5000);
    const c = new PgWire(socket);
    const params = Buffer.from(`user\0${opts.user ?? 'postgres'}\0database\0${opts.database ?? 'postgres'}\0\0`);
    const head = Buffer.alloc(8);
    head.writeInt32BE(8 + params.length, 0);
    head.writeInt32BE(196608, 4);
    const failed = new Promise<never>((_, reject) => c.waiting.push({ resolve: () => undefined, reject }));
    socket.write(Buffer.concat([head, params]));
    await Promise.race([c.readyOnce, failed]);
    c.waiting.length = 0;
    return c;
  }

  /** One simple query; resolves with its rows (text values), rejects with the server's error. */
  query(sql: string): Promise<(string | null)[][]> {
    const body = Buffer.from(`${sql}\0`);
    const msg = Buffer.alloc(5 + body.length);
    msg.write('Q', 0);
    msg.writeInt32BE(4 + body.length, 1);
    body.copy(msg, 5);
    return this.expect(msg);
  }

  protected override parse(): void {
    while (this.buf.length >= 5) {
      const type = String.fromCharCode(this.buf[0]!);
      const len = this.buf.readInt32BE(1);
      if (this.buf.length < 1 + len) return;
      const body = this.buf.subarray(5, 1 + len);
      this.buf = this.buf.subarray(1 + len);
      if (type === 'R') {
        const code = body.readInt32BE(0);
        if (code !== 0) throw new Error(`the server asks for authentication method ${code}; this client speaks trust only`);
      } else if (type === 'D') {
        const n = body.readInt16BE(0);
        const row: (string | null)[] = [];
        let o = 2;
        for (let k = 0; k < n; k++) {
          const l = body.readInt32BE(o);
          o += 4;
          row.push(l < 0 ? null : body.subarray(o, o + l).toString('utf8'));
          if (l > 0) o += l;
        }
        this.rows.push(row);
      } else if (type === 'E') {
        const fields: Record<string, string> = {};
        for (let o = 0; o < body.length && body[o] !== 0; ) {
          const end = body.indexOf(0, o + 1);
          fields[String.fromCharCode(body[o]!)] = body.subarray(o + 1, end).toString('utf8');
          o = end + 1;
        }
        this.error = `${fields.S ?? 'ERROR'} ${fields.C ?? ''}: ${fields.M ?? ''}`;
        if (!this.started) throw new Error(this.error);
      } else if (type === 'Z') {
        if (!this.started) {
          this.started = true;
          this.ready();
          continue;
        }
        const w = this.waiting.shift();
        const [rows, error] = [this.rows, this.error];
        this.rows = [];
        this.error = undefined;
        if (error) w?.reject(new Error(error));
        else w?.resolve(rows);
      }
      // Other messages (ParameterStatus, BackendKeyData, RowDescription, CommandComplete, notices) need nothing.
    }
  }
}

type Resp = string | number | null | Resp[];

/** Redis, RESP2 commands and replies. */
export class RedisWire extends Wire {
  static async connect(address: string, opts: { timeoutMs?: number } = {}): Promise<RedisWire> {
    const i = address.lastIndexOf(':');
    return new RedisWire(await Wire.open(address.slice(0, i), Number(address.slice(i + 1)), opts.timeoutMs ?? 5000));
  }

  command(...args: (string | number)[]): Promise<Resp> {
    const parts = [`*${args.length}\r\n`];
    for (const a of args) {
      const s = String(a);
      parts.push(`$${Buffer.byteLength(s)}\r\n${s}\r\n`);
    }
    return this.expect(Buffer.from(parts.join('')));
  }

  protected override parse(): void {
    for (;;) {
      const r = readReply(this.buf, 0);
      if (!r) return;
      this.buf = this.buf.subarray(r.end);
      const w = this.waiting.shift();
      if (r.error) w?.reject(new Error(r.error));
      else w?.resolve(r.value);
    }
  }
}

function readReply(buf: Buffer, at: number): { value: Resp; end: number; error?: string } | undefined {
  const eol = buf.indexOf('\r\n', at);
  if (eol < 0) return undefined;
  const line = buf.subarray(at + 1, eol).toString('utf8');
  const next = eol + 2;
  switch (String.fromCharCode(buf[at]!)) {
    case '+':
      return { value: line, end: next };
    case '-':
      return { value: null, end: next, error: line };
    case ':':
      return { value: Number(line), end: next };
    case '$': {
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      if (buf.length < next + n + 2) return undefined;
      return { value: buf.subarray(next, next + n).toString('utf8'), end: next + n + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      const out: Resp[] = [];
      let o = next;
      for (let k = 0; k < n; k++) {
        const r = readReply(buf, o);
        if (!r) return undefined;
        out.push(r.value);
        o = r.end;
      }
      return { value: out, end: o };
    }
    default:
      throw new Error(`not a RESP reply: ${JSON.stringify(buf.subarray(at, at + 20).toString('utf8'))}`);
  }
}

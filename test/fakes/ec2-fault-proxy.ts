/**
 * A loopback HTTP proxy in front of moto that injects EC2 faults. moto itself never throttles or
 * fails, so throttling, 5xx, slow answers and auth failures are produced here, in the EC2 Query
 * API's XML error shape (`<Response><Errors><Error><Code>`), and everything else is forwarded.
 * Request keys are `EC2 <Action>`.
 */
import { listenOnLoopback } from './listen';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { FaultPlan } from './faults';

export interface Ec2FaultProxy {
  endpoint: string;
  faults: FaultPlan;
  close(): Promise<void>;
}

const FAULT_REPLY = {
  throttle: { status: 503, code: 'RequestLimitExceeded', message: 'Request limit exceeded.' },
  unavailable: { status: 500, code: 'InternalError', message: 'An internal error has occurred.' },
  auth: { status: 403, code: 'UnauthorizedOperation', message: 'You are not authorized to perform this operation.' },
} as const;

function ec2ErrorXml(code: string, message: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${code}</Code><Message>${message}</Message></Error></Errors><RequestID>fault-${Date.now()}</RequestID></Response>`;
}

export async function startEc2FaultProxy(target: string): Promise<Ec2FaultProxy> {
  const faults = new FaultPlan();
  const upstream = new URL(target);
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const action = new URLSearchParams(body.toString('utf8')).get('Action') ?? new URL(req.url ?? '/', 'http://x').searchParams.get('Action') ?? '?';
      const fault = faults.take(`EC2 ${action}`);
      const forward = () => {
        const up = httpRequest(
          { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
          (upRes) => {
            res.writeHead(upRes.statusCode ?? 502, upRes.headers);
            upRes.pipe(res);
          },
        );
        up.on('error', (err) => {
          res.writeHead(502, { 'content-type': 'text/xml' });
          res.end(ec2ErrorXml('InternalError', `proxy could not reach moto: ${err.message}`));
        });
        up.end(body);
      };
      if (!fault) return forward();
      if (fault.kind === 'slow') {
        setTimeout(forward, fault.delayMs ?? 1_000);
        return;
      }
      const r = FAULT_REPLY[fault.kind];
      res.writeHead(r.status, { 'content-type': 'text/xml' });
      res.end(ec2ErrorXml(r.code, r.message));
    });
  });
  const { endpoint, close } = await listenOnLoopback(server);
  return { endpoint, faults, close };
}

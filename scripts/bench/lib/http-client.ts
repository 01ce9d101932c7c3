// The api bench's load generator: node:http on a keep-alive agent, one socket per client. The bench's clients stand
// for 100 machines, yet they run on the server's 2 cores; `fetch` (undici's WHATWG layer: Request, Headers,
// Response and a web stream per call) cost the client about three times node:http's CPU per request, which was
// taken from the server and counted in its latency. The body is read in full and dropped, the status returned.
import http from 'node:http';

const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, scheduling: 'lifo' });

/** One request; resolves with the status once the whole answer has arrived. */
export function httpRequest(url: string, method: string, headers: Record<string, string>, body?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers: body === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) }, agent }, (res) => {
      res.on('data', () => {});
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Closes the agent's idle sockets (at the end of a run). */
export function closeHttpClient(): void {
  agent.destroy();
}

// The client's address for the audit trail and login throttling: the TCP peer, or, when the peer is a trusted reverse
// proxy (KLUIS_TRUSTED_PROXIES), the right-most X-Forwarded-For address that is not itself a trusted proxy. Anyone
// can send X-Forwarded-For, so it is believed only as far as trusted proxies vouch for it. The walk is proxy-addr's
// (the jshttp module Express uses for `trust proxy`): from the socket towards the client, stopping at the first
// address that is not trusted.
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import proxyaddr from 'proxy-addr';

/** Builds the resolver once (the trust list is compiled up front); `trusted` was checked by loadConfig. */
export function clientAddressResolver(trusted: readonly string[]): (req: IncomingMessage) => string {
  const trust = proxyaddr.compile([...trusted]);
  return (req) => {
    // [socket peer, ..., client]: cut after the first untrusted hop.
    const chain = proxyaddr.all(req, trust);
    // A trusted proxy that passed on something that is not an address: the nearest real address answers for it
    // (that proxy's own), so the audit trail never records arbitrary header text as an IP.
    for (let i = chain.length - 1; i >= 0; i--) if (isIP(chain[i]!)) return chain[i]!;
    return req.socket.remoteAddress ?? '';
  };
}

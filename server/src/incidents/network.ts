// The network an address belongs to, for the "device seen from a new network" rule: IPv4 /24, IPv6 /48 (a home or
// office line's usual allocation), so that a DHCP lease renewed inside one network is not news.
import { isIP } from 'node:net';

/** "192.0.2.0/24", "2001:db8:1::/48", or null for what is no address. */
export function networkOf(ip: string | null): string | null {
  if (!ip) return null;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  const addr = mapped ? mapped[1]! : ip;
  const kind = isIP(addr);
  if (kind === 4) return `${addr.split('.').slice(0, 3).join('.')}.0/24`;
  if (kind !== 6) return null;
  const [head = '', tail = ''] = addr.toLowerCase().split('::');
  const left = head ? head.split(':') : [];
  const right = addr.includes('::') ? (tail ? tail.split(':') : []) : [];
  const groups = addr.includes('::') ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups.slice(0, 3).map((g) => Number.parseInt(g, 16).toString(16)).join(':')}::/48`;
}

// SSRF guard: which IP addresses a webhook may be sent to. Everything that is
// not plainly on the public internet is refused — loopback, private, link-local
// (cloud metadata at 169.254.169.254 included), CGNAT, multicast, reserved,
// documentation, benchmarking, IPv6 unique-local and link-local — and so is any
// IPv6 form that embeds such an IPv4 address (mapped, compatible, NAT64, 6to4).
// An allowlist of CIDRs from the config opens chosen ranges (`agentd dev`
// opens loopback). Pure: no DNS here; callers pass resolved addresses.
import { BlockList, isIP } from "node:net";

interface Range {
  cidr: string;
  why: string;
}

/** IANA IPv4 special-purpose ranges that are not globally reachable, plus multicast. */
const IPV4_RANGES: readonly Range[] = [
  { cidr: "0.0.0.0/8", why: "unspecified (this network)" },
  { cidr: "10.0.0.0/8", why: "private" },
  { cidr: "100.64.0.0/10", why: "carrier-grade NAT" },
  { cidr: "127.0.0.0/8", why: "loopback" },
  { cidr: "169.254.0.0/16", why: "link-local (cloud metadata)" },
  { cidr: "172.16.0.0/12", why: "private" },
  { cidr: "192.0.0.0/24", why: "reserved (IETF protocol assignments)" },
  { cidr: "192.0.2.0/24", why: "reserved (documentation)" },
  { cidr: "192.88.99.0/24", why: "reserved (6to4 relay)" },
  { cidr: "192.168.0.0/16", why: "private" },
  { cidr: "198.18.0.0/15", why: "reserved (benchmarking)" },
  { cidr: "198.51.100.0/24", why: "reserved (documentation)" },
  { cidr: "203.0.113.0/24", why: "reserved (documentation)" },
  { cidr: "224.0.0.0/4", why: "multicast" },
  { cidr: "240.0.0.0/4", why: "reserved (incl. broadcast)" },
];

/** IPv6 ranges refused outright. Forms that embed an IPv4 address are unwrapped
 * first (see `embeddedIpv4`) and judged by the IPv4 table instead. Anything
 * outside global unicast 2000::/3 is refused as well. */
const IPV6_RANGES: readonly Range[] = [
  { cidr: "::/128", why: "unspecified" },
  { cidr: "::1/128", why: "loopback" },
  { cidr: "64:ff9b:1::/48", why: "reserved (local-use NAT64)" },
  { cidr: "100::/64", why: "reserved (discard-only)" },
  { cidr: "2001::/23", why: "reserved (IETF protocol assignments, Teredo, benchmarking)" },
  { cidr: "2001:db8::/32", why: "reserved (documentation)" },
  { cidr: "3fff::/20", why: "reserved (documentation)" },
  { cidr: "fc00::/7", why: "unique-local (private)" },
  { cidr: "fe80::/10", why: "link-local" },
  { cidr: "fec0::/10", why: "site-local (deprecated)" },
  { cidr: "ff00::/8", why: "multicast" },
];

export interface Cidr {
  address: string;
  prefix: number;
  family: "ipv4" | "ipv6";
}

/** Parses `a.b.c.d/n` or `x::y/n` (a bare address is a single host); null if malformed. */
export function parseCidr(text: string): Cidr | null {
  const [address = "", prefixText, extra] = text.trim().split("/");
  if (extra !== undefined) return null;
  const version = isIP(address);
  if (version === 0) return null;
  const max = version === 4 ? 32 : 128;
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) return null;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (prefix > max) return null;
  return { address, prefix, family: version === 4 ? "ipv4" : "ipv6" };
}

function blockListOf(cidrs: readonly Cidr[]): BlockList {
  const list = new BlockList();
  for (const c of cidrs) list.addSubnet(c.address, c.prefix, c.family);
  return list;
}

interface Compiled {
  why: string;
  list: BlockList;
}

function compile(ranges: readonly Range[]): Compiled[] {
  return ranges.map((r) => ({ why: r.why, list: blockListOf([parseCidr(r.cidr)!]) }));
}

const V4 = compile(IPV4_RANGES);
const V6 = compile(IPV6_RANGES);
const GLOBAL_UNICAST_V6 = blockListOf([parseCidr("2000::/3")!]);

/** The 16 bytes of an IPv6 address (dotted IPv4 tail allowed), or null. */
function ipv6Bytes(address: string): Uint8Array | null {
  const text = address.replace(/%.*$/, "");
  if (isIP(text) !== 6) return null;
  const bytes = new Uint8Array(16);
  const [head = "", tail] = text.split("::");
  const groups = (part: string): number[] => {
    if (part === "") return [];
    const out: number[] = [];
    for (const g of part.split(":")) {
      if (g.includes(".")) {
        const [a, b, c, d] = g.split(".").map(Number) as [number, number, number, number];
        out.push((a << 8) | b, (c << 8) | d);
      } else out.push(Number.parseInt(g, 16));
    }
    return out;
  };
  const h = groups(head);
  const t = tail === undefined ? [] : groups(tail);
  const all = [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
  all.forEach((g, i) => {
    bytes[i * 2] = g >> 8;
    bytes[i * 2 + 1] = g & 0xff;
  });
  return bytes;
}

const v4 = (b: Uint8Array, at: number) => `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
const zero = (b: Uint8Array, from: number, to: number) => b.subarray(from, to).every((x) => x === 0);

/** The IPv4 address inside an IPv6 form that carries one, if any: IPv4-mapped
 * (::ffff:a.b.c.d), IPv4-translated (::ffff:0:a.b.c.d), IPv4-compatible
 * (::a.b.c.d), NAT64 well-known prefix (64:ff9b::a.b.c.d) and 6to4 (2002:AABB:CCDD::). */
function embeddedIpv4(bytes: Uint8Array): string | null {
  if (zero(bytes, 0, 10) && bytes[10] === 0xff && bytes[11] === 0xff) return v4(bytes, 12);
  if (zero(bytes, 0, 8) && bytes[8] === 0xff && bytes[9] === 0xff && zero(bytes, 10, 12)) return v4(bytes, 12);
  if (zero(bytes, 0, 12) && !zero(bytes, 12, 15)) return v4(bytes, 12);
  if (bytes[0] === 0x00 && bytes[1] === 0x64 && bytes[2] === 0xff && bytes[3] === 0x9b && zero(bytes, 4, 12))
    return v4(bytes, 12);
  if (bytes[0] === 0x20 && bytes[1] === 0x02) return v4(bytes, 2);
  return null;
}

type AddressVerdict = { allowed: true } | { allowed: false; why: string };

/** Why an address is not publicly routable, or null when it is. Pure; ignores any allowlist. */
export function forbiddenReason(address: string): string | null {
  const family = isIP(address);
  if (family === 4) return V4.find((r) => r.list.check(address, "ipv4"))?.why ?? null;
  if (family !== 6) return "not an IP address";
  const bytes = ipv6Bytes(address)!;
  const inner = embeddedIpv4(bytes);
  if (inner !== null) {
    const why = forbiddenReason(inner);
    return why === null ? null : `${why}, embedded in IPv6`;
  }
  const plain = address.replace(/%.*$/, "");
  const listed = V6.find((r) => r.list.check(plain, "ipv6"));
  if (listed) return listed.why;
  if (!GLOBAL_UNICAST_V6.check(plain, "ipv6")) return "reserved (outside IPv6 global unicast)";
  return null;
}

export interface AddressGuard {
  /** Whether a webhook may be sent to this (resolved) address. */
  check(address: string): AddressVerdict;
}

/** The guard with the config's allowlist. Throws on a malformed CIDR. */
export function createAddressGuard(opts: { allowCidrs: readonly string[] }): AddressGuard {
  const cidrs = opts.allowCidrs.map((text) => {
    const cidr = parseCidr(text);
    if (!cidr) throw new Error(`invalid CIDR ${JSON.stringify(text)} in the webhook allowlist`);
    return cidr;
  });
  const allow = blockListOf(cidrs);
  const allowed = (address: string) => {
    const family = isIP(address);
    if (family === 0 || cidrs.length === 0) return false;
    const plain = address.replace(/%.*$/, "");
    if (allow.check(plain, family === 4 ? "ipv4" : "ipv6")) return true;
    // ::ffff:127.0.0.1 counts as 127.0.0.1 for the allowlist too.
    const inner = family === 6 ? embeddedIpv4(ipv6Bytes(plain)!) : null;
    return inner !== null && allow.check(inner, "ipv4");
  };
  return {
    check(address) {
      if (allowed(address)) return { allowed: true };
      const why = forbiddenReason(address);
      return why === null ? { allowed: true } : { allowed: false, why };
    },
  };
}

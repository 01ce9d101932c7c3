// "Download all" of a folder link: a ZIP written as a stream (PKWARE APPNOTE 6.3: method 0 "stored", flag bit 3 so
// each entry's CRC-32 follows its data in a data descriptor, bit 11 for UTF-8 names, ZIP64 records only where a size
// or an offset needs them). Nothing is compressed (the files are mostly PDFs, images and office files, already
// compressed) and nothing is buffered: each decrypted chunk passes through to the sink. The whole size is known in
// advance, so the service-worker download can announce it.

/** Where the ZIP's bytes go (the page's Sink has this method): each call's bytes are the writer's to keep. */
export interface ByteWriter {
  write(bytes: Uint8Array): Promise<void>;
}

export interface ZipEntry {
  /** name inside the ZIP, "/"-separated */
  name: string;
  size: number;
}

const MAX32 = 0xffffffff;
/** "Made by" Unix (3), spec 4.5: unzip then reads the names as UTF-8 (bit 11) and the mode below, not as DOS names. */
const MADE_BY = (3 << 8) | 45;
/** External attributes: a regular file, rw-r--r-- (Unix mode in the high 16 bits). */
const FILE_MODE = (0o100644 << 16) >>> 0;
const enc = new TextEncoder();

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (ISO-HDLC) continued over `bytes`; start with 0. */
export function crc32(crc: number, bytes: Uint8Array): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** The DOS date and time of `d` (local time, 2-second steps), as ZIP headers keep them. */
function dosTime(d: Date): { time: number; date: number } {
  return {
    time: (d.getHours() << 11) | (d.getMinutes() << 5) | (d.getSeconds() >> 1),
    date: (Math.max(0, d.getFullYear() - 1980) << 9) | ((d.getMonth() + 1) << 5) | d.getDate(),
  };
}

class Bytes {
  readonly buf: Uint8Array;
  private readonly view: DataView;
  private at = 0;
  constructor(size: number) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
  }
  u16(v: number): this {
    this.view.setUint16(this.at, v, true);
    this.at += 2;
    return this;
  }
  u32(v: number): this {
    this.view.setUint32(this.at, v >>> 0, true);
    this.at += 4;
    return this;
  }
  u64(v: number): this {
    this.view.setBigUint64(this.at, BigInt(v), true);
    this.at += 8;
    return this;
  }
  raw(b: Uint8Array): this {
    this.buf.set(b, this.at);
    this.at += b.length;
    return this;
  }
}

const big = (e: ZipEntry) => e.size >= MAX32;
const localSize = (name: Uint8Array, e: ZipEntry) => 30 + name.length + (big(e) ? 20 : 0);
const descriptorSize = (e: ZipEntry) => (big(e) ? 24 : 16);
function centralSize(name: Uint8Array, e: ZipEntry, offset: number): number {
  const extra = (big(e) ? 16 : 0) + (offset >= MAX32 ? 8 : 0);
  return 46 + name.length + (extra ? 4 + extra : 0);
}

/** Total bytes of the ZIP of `entries` (the same arithmetic as the writer). */
export function zipSize(entries: ZipEntry[]): number {
  let offset = 0;
  let central = 0;
  for (const e of entries) {
    const name = enc.encode(e.name);
    central += centralSize(name, e, offset);
    offset += localSize(name, e) + e.size + descriptorSize(e);
  }
  return offset + central + endSize(entries.length, offset, central);
}

function endSize(count: number, cdOffset: number, cdSize: number): number {
  return (count >= 0xffff || cdOffset >= MAX32 || cdSize >= MAX32 ? 56 + 20 : 0) + 22;
}

interface Written {
  name: Uint8Array;
  entry: ZipEntry;
  offset: number;
  crc: number;
}

/**
 * Writes a ZIP into `sink` entry by entry. Resumable like a single download: a network loss inside an entry's data
 * leaves the writer where it was, and the caller continues that entry's data (begin is not repeated).
 */
export class ZipWriter {
  private offset = 0;
  private readonly done: Written[] = [];
  private current: Written | null = null;
  private readonly stamp = dosTime(new Date());

  constructor(private readonly out: ByteWriter) {}

  /** Whether `entry`'s header is written and its data is being written. */
  get open(): boolean {
    return this.current !== null;
  }

  async begin(entry: ZipEntry): Promise<void> {
    const name = enc.encode(entry.name);
    this.current = { name, entry, offset: this.offset, crc: 0 };
    const b = new Bytes(localSize(name, entry))
      .u32(0x04034b50).u16(big(entry) ? 45 : 20).u16(0x0808).u16(0).u16(this.stamp.time).u16(this.stamp.date)
      .u32(0).u32(big(entry) ? MAX32 : 0).u32(big(entry) ? MAX32 : 0).u16(name.length).u16(big(entry) ? 20 : 0).raw(name);
    if (big(entry)) b.u16(0x0001).u16(16).u64(0).u64(0);
    await this.put(b.buf);
  }

  /** Writes part of the current entry's data, counted into its CRC. */
  async data(bytes: Uint8Array): Promise<void> {
    const cur = this.current!;
    cur.crc = crc32(cur.crc, bytes);
    await this.put(bytes);
  }

  async end(): Promise<void> {
    const cur = this.current!;
    const e = cur.entry;
    const b = new Bytes(descriptorSize(e)).u32(0x08074b50).u32(cur.crc);
    if (big(e)) b.u64(e.size).u64(e.size);
    else b.u32(e.size).u32(e.size);
    await this.put(b.buf);
    this.done.push(cur);
    this.current = null;
  }

  /** Bytes written so far. */
  get written(): number {
    return this.offset;
  }

  /** The central directory and end records (the caller closes what it writes to). */
  async finish(): Promise<void> {
    const cdOffset = this.offset;
    for (const w of this.done) {
      const e = w.entry;
      const far = w.offset >= MAX32;
      const extra = (big(e) ? 16 : 0) + (far ? 8 : 0);
      const b = new Bytes(centralSize(w.name, e, w.offset))
        .u32(0x02014b50).u16(MADE_BY).u16(big(e) || far ? 45 : 20).u16(0x0808).u16(0).u16(this.stamp.time).u16(this.stamp.date)
        .u32(w.crc).u32(big(e) ? MAX32 : e.size).u32(big(e) ? MAX32 : e.size).u16(w.name.length).u16(extra ? 4 + extra : 0)
        .u16(0).u16(0).u16(0).u32(FILE_MODE).u32(far ? MAX32 : w.offset).raw(w.name);
      if (extra) {
        b.u16(0x0001).u16(extra);
        if (big(e)) b.u64(e.size).u64(e.size);
        if (far) b.u64(w.offset);
      }
      await this.put(b.buf);
    }
    const cdSize = this.offset - cdOffset;
    const count = this.done.length;
    const zip64 = endSize(count, cdOffset, cdSize) > 22;
    const b = new Bytes(endSize(count, cdOffset, cdSize));
    if (zip64) {
      const at = this.offset;
      b.u32(0x06064b50).u64(44).u16(45).u16(45).u32(0).u32(0).u64(count).u64(count).u64(cdSize).u64(cdOffset);
      b.u32(0x07064b50).u32(0).u64(at).u32(1);
    }
    b.u32(0x06054b50).u16(0).u16(0).u16(Math.min(count, 0xffff)).u16(Math.min(count, 0xffff))
      .u32(Math.min(cdSize, MAX32)).u32(Math.min(cdOffset, MAX32)).u16(0);
    await this.put(b.buf);
  }

  private async put(bytes: Uint8Array): Promise<void> {
    // Counted first: the writer takes the bytes over and may transfer (detach) them.
    const length = bytes.length;
    await this.out.write(bytes);
    this.offset += length;
  }
}

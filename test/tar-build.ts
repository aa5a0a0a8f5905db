/**
 * Tar archives built member by member for the tree reader's tests and fuzzers: ustar or old-GNU
 * headers with any field set (checksums repaired), pax records, GNU long names, end blocks.
 */

export interface MemberSpec {
  name: string;
  type?: string;
  data?: Buffer | string;
  /** The size field, when it must say something else than the data's length. */
  size?: number;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  magic?: 'ustar' | 'gnu';
  /** Raw bytes written over the header before the checksum (field edits). */
  edit?: (header: Buffer) => void;
  /** Leave the checksum as it is after `edit` (a corrupt header). */
  badChecksum?: boolean;
}

const octal = (value: number, width: number): string => `${value.toString(8).padStart(width - 1, '0')}\0`;

export function tarHeader(m: MemberSpec): Buffer {
  const h = Buffer.alloc(512);
  h.write(m.name, 0, 100, 'utf8');
  h.write(octal(m.mode ?? 0o644, 8), 100, 'latin1');
  h.write(octal(m.uid ?? 0, 8), 108, 'latin1');
  h.write(octal(m.gid ?? 0, 8), 116, 'latin1');
  const data = typeof m.data === 'string' ? Buffer.from(m.data) : (m.data ?? Buffer.alloc(0));
  h.write(octal(m.size ?? data.length, 12), 124, 'latin1');
  h.write(octal(m.mtime ?? 1_700_000_000, 12), 136, 'latin1');
  h.write(m.type ?? '0', 156, 'latin1');
  h.write(m.linkname ?? '', 157, 100, 'utf8');
  if (m.magic === 'gnu') h.write('ustar  \0', 257, 'latin1');
  else h.write('ustar\x0000', 257, 'latin1');
  h.write('root', 265, 'latin1');
  h.write('root', 297, 'latin1');
  h.write(octal(m.devmajor ?? 0, 8), 329, 'latin1');
  h.write(octal(m.devminor ?? 0, 8), 337, 'latin1');
  m.edit?.(h);
  if (!m.badChecksum) setChecksum(h);
  return h;
}

export function setChecksum(h: Buffer): void {
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
}

const padded = (data: Buffer): Buffer => Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)]);

export function member(m: MemberSpec): Buffer {
  const data = typeof m.data === 'string' ? Buffer.from(m.data) : (m.data ?? Buffer.alloc(0));
  return Buffer.concat([tarHeader(m), padded(data)]);
}

/** "LEN key=value\n" records, LEN counting itself. */
export function paxBody(records: [string, string | Buffer][]): Buffer {
  return Buffer.concat(
    records.map(([key, value]) => {
      const rest = Buffer.concat([Buffer.from(` ${key}=`), Buffer.from(value), Buffer.from('\n')]);
      let length = rest.length + 1;
      while (String(length).length + rest.length !== length) length = String(length).length + rest.length;
      return Buffer.concat([Buffer.from(String(length)), rest]);
    }),
  );
}

export const pax = (records: [string, string | Buffer][], type = 'x'): Buffer => member({ name: 'PaxHeaders/x', type, data: paxBody(records) });
export const longName = (name: string, type = 'L'): Buffer => member({ name: '././@LongLink', type, data: `${name}\0`, magic: 'gnu' });
export const END = Buffer.alloc(1024);

export const archive = (...parts: Buffer[]): Buffer => Buffer.concat([...parts, END]);

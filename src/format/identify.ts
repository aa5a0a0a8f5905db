/**
 * What an image is, from its first bytes (and, for formats that keep their signature at the end,
 * its last 512): the magic numbers of every format people hand to a disk copier. Pure.
 *
 * Only full, format-defined signatures are matched, so a raw disk whose boot code happens to begin
 * with two lucky bytes is not mistaken for anything: gzip needs its method byte too, bzip2 its
 * block or end-of-stream magic, qcow2 a version it defines. A raw disk or filesystem image matches
 * nothing here (null) and is copied as it is.
 */

import { TAR_BLOCK, walkTar } from './tar.js';

export type ImageFormat =
  // compression wrappers
  | 'gzip'
  | 'xz'
  | 'zstd'
  | 'bzip2'
  | 'lz4'
  | 'zip'
  // containers
  | 'qcow2'
  | 'qcow'
  | 'vmdk-sparse'
  | 'vmdk-cowd'
  | 'vmdk-descriptor'
  | 'vhd'
  | 'vhdx'
  | 'vdi'
  | 'dmg'
  | 'android-sparse'
  | 'ova'
  // raw images worth naming (their bytes are the disk)
  | 'iso9660';

/** Bytes of the head `identifyImage` looks at: ISO 9660's descriptor sits at 32769. */
export const IDENTIFY_HEAD_BYTES = 64 << 10;
/** Bytes of the tail it looks at (VHD's footer, DMG's koly trailer). */
export const IDENTIFY_TAIL_BYTES = 512;

/** A human name for messages: "a qcow2 image", "xz data". */
export const FORMAT_DESCRIPTIONS: Record<ImageFormat, string> = {
  gzip: 'gzip data',
  xz: 'xz data',
  zstd: 'zstd data',
  bzip2: 'bzip2 data',
  lz4: 'lz4 data',
  zip: 'a zip archive',
  qcow2: 'a qcow2 image',
  qcow: 'a qcow (version 1) image',
  'vmdk-sparse': 'a VMDK sparse extent (KDMV)',
  'vmdk-cowd': 'an ESX VMDK sparse extent (COWD)',
  'vmdk-descriptor': 'a VMDK descriptor file',
  vhd: 'a VHD image',
  vhdx: 'a VHDX image',
  vdi: 'a VirtualBox VDI image',
  dmg: 'an Apple disk image (DMG)',
  'android-sparse': 'an Android sparse image',
  iso9660: 'an ISO 9660 image',
  ova: 'an OVA appliance',
};

const ascii = (b: Uint8Array, offset: number, text: string): boolean => {
  if (b.length < offset + text.length) return false;
  for (let i = 0; i < text.length; i++) if (b[offset + i] !== text.charCodeAt(i)) return false;
  return true;
};
const bytesAt = (b: Uint8Array, offset: number, bytes: readonly number[]): boolean => bytes.every((x, i) => b[offset + i] === x);
const u32le = (b: Uint8Array, o: number): number => (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
const u32be = (b: Uint8Array, o: number): number => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;

/** RFC 1952: ID1 ID2 and CM = 8 (deflate), the only method defined. */
const isGzip = (h: Uint8Array): boolean => bytesAt(h, 0, [0x1f, 0x8b, 0x08]);
/** xz file format 1.1.0, section 2.1.1.1: header magic. */
const isXz = (h: Uint8Array): boolean => bytesAt(h, 0, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
/** RFC 8878: a zstd frame (0xFD2FB528 LE) or a skippable frame (0x184D2A50..5F LE) first. */
const isZstd = (h: Uint8Array): boolean => h.length >= 4 && (u32le(h, 0) === 0xfd2fb528 || (u32le(h, 0) & 0xfffffff0) === 0x184d2a50);
/** "BZh" and a block size 1-9, then the first block's magic (pi) or the end-of-stream magic (sqrt pi). */
const isBzip2 = (h: Uint8Array): boolean =>
  ascii(h, 0, 'BZh') &&
  h[3]! >= 0x31 &&
  h[3]! <= 0x39 &&
  (bytesAt(h, 4, [0x31, 0x41, 0x59, 0x26, 0x53, 0x59]) || bytesAt(h, 4, [0x17, 0x72, 0x45, 0x38, 0x50, 0x90]));
/** LZ4 frame (0x184D2204 LE) or legacy frame (0x184C2102 LE). */
const isLz4 = (h: Uint8Array): boolean => h.length >= 4 && (u32le(h, 0) === 0x184d2204 || u32le(h, 0) === 0x184c2102);
/** A zip local file header. */
const isZip = (h: Uint8Array): boolean => bytesAt(h, 0, [0x50, 0x4b, 0x03, 0x04]);
/** qcow2.rst: "QFI\xfb" and a big-endian version, 1 for the original qcow, 2 or 3 for qcow2. */
function qcowVersion(h: Uint8Array): number | null {
  if (!bytesAt(h, 0, [0x51, 0x46, 0x49, 0xfb]) || h.length < 8) return null;
  return u32be(h, 4);
}
/** VMDK hosted sparse extent: "KDMV" (0x564d444b LE), versions 1-3. */
const isVmdkSparse = (h: Uint8Array): boolean => ascii(h, 0, 'KDMV') && h.length >= 8 && u32le(h, 4) >= 1 && u32le(h, 4) <= 3;
/** ESX server sparse extent. */
const isVmdkCowd = (h: Uint8Array): boolean => ascii(h, 0, 'COWD');
/** A text descriptor: its comment line, or (as qemu's vmdk probe accepts) a version and createType line early on. */
function isVmdkDescriptor(h: Uint8Array): boolean {
  const text = Buffer.from(h.subarray(0, Math.min(h.length, 4096))).toString('latin1');
  if (/^\s*#\s*Disk DescriptorFile/i.test(text)) return true;
  return /^\s*version\s*=\s*\d+\s*$/m.test(text) && /^\s*createType\s*=\s*"[^"]*"\s*$/m.test(text) && !text.includes('\0');
}
/** VHD footer cookie "conectix": a dynamic disk's copy at 0, a fixed disk's footer at the end. */
const isVhd = (h: Uint8Array, tail: Uint8Array | null): boolean => ascii(h, 0, 'conectix') || (tail !== null && ascii(tail, tail.length - 512, 'conectix'));
/** VHDX file type identifier. */
const isVhdx = (h: Uint8Array): boolean => ascii(h, 0, 'vhdxfile');
/** VirtualBox: the image signature 0xbeda107f at byte 64. */
const isVdi = (h: Uint8Array): boolean => h.length >= 68 && u32le(h, 64) === 0xbeda107f;
/** UDIF: the "koly" trailer in the last 512 bytes. */
const isDmg = (tail: Uint8Array | null): boolean => tail !== null && tail.length >= 512 && ascii(tail, tail.length - 512, 'koly');
/** Android sparse image: magic 0xED26FF3A LE. */
const isAndroidSparse = (h: Uint8Array): boolean => h.length >= 4 && u32le(h, 0) === 0xed26ff3a;
/** ECMA-119: the first volume descriptor at sector 16 (byte 32768) starts with type, then "CD001". */
const isIso9660 = (h: Uint8Array): boolean => ascii(h, 32769, 'CD001');

/**
 * An OVA: a tar whose first member is the .ovf (DSP0243 puts it first so that readers find it
 * without scanning). Its ustar header, checksum included, and the name: a tar of anything else is
 * not an image format.
 */
function isOva(h: Uint8Array): boolean {
  if (h.length < TAR_BLOCK || !ascii(h, 257, 'ustar')) return false;
  const head = Buffer.from(h.buffer, h.byteOffset, h.length);
  try {
    // The first member past any extended headers (pax writes one before each file).
    for (const member of walkTar((offset, length) => head.subarray(offset, offset + length), null)) return /\.ovf$/i.test(member.name);
  } catch {
    /* not a header (its checksum, its fields), or the head ended: not an OVA */
  }
  return false;
}

/**
 * The format of an image from its head (at least IDENTIFY_HEAD_BYTES when the image has that
 * many) and, when it is a file, its tail (the last IDENTIFY_TAIL_BYTES; null for a stream). Null:
 * nothing known, a raw image.
 */
export function identifyImage(head: Uint8Array, tail: Uint8Array | null = null): ImageFormat | null {
  if (isGzip(head)) return 'gzip';
  if (isXz(head)) return 'xz';
  if (isZstd(head)) return 'zstd';
  if (isBzip2(head)) return 'bzip2';
  if (isLz4(head)) return 'lz4';
  const qcow = qcowVersion(head);
  if (qcow === 2 || qcow === 3) return 'qcow2';
  if (qcow === 1) return 'qcow';
  if (isVmdkSparse(head)) return 'vmdk-sparse';
  if (isVmdkCowd(head)) return 'vmdk-cowd';
  if (isVhdx(head)) return 'vhdx';
  if (isVhd(head, tail)) return 'vhd';
  if (isVdi(head)) return 'vdi';
  if (isAndroidSparse(head)) return 'android-sparse';
  if (isZip(head)) return 'zip';
  if (isDmg(tail)) return 'dmg';
  if (isIso9660(head)) return 'iso9660';
  if (isOva(head)) return 'ova';
  if (isVmdkDescriptor(head)) return 'vmdk-descriptor';
  return null;
}

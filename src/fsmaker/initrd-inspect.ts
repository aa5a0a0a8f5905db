/**
 * What a rootfs's own initrd can do, from the names of its members: does it mount an NFS root?
 * An initrd is one or more newc cpio archives, each maybe compressed, one after the other (Debian's
 * initramfs-tools writes an uncompressed early one for CPU microcode, then the main one compressed
 * with zstd), as the kernel's populate_rootfs unpacks them. The compressed part is decoded by the
 * host's tools (gzip, zstd, xz, bzip2, lzma, lz4) and only member names are kept.
 *
 * NFS support is decided by the boot scripts and the NFS client being there:
 *  - initramfs-tools: scripts/nfs (what its /init runs for root=/dev/nfs or BOOT=nfs) and the nfs
 *    module (MODULES=most, Debian's default, includes it; MODULES=dep does not);
 *  - dracut: its nfs module's nfsroot helper (sbin/nfsroot) and the nfs module.
 * (A kernel with NFS built in has no nfs.ko: such an initrd is taken as without NFS, and a
 * generated one is used: it then finds nfs in modules.builtin.)
 */
import { spawnSync } from 'node:child_process';
import { parseCpioNewc } from './cpio.js';

/** The most an initrd may decompress to for inspection (Debian's: about 100 MB). */
export const INITRD_INSPECT_LIMIT = 512 * 1024 * 1024;

const DECODERS: Array<{ magic: number[]; tool: string[] }> = [
  { magic: [0x1f, 0x8b], tool: ['gzip', '-dc'] },
  { magic: [0x28, 0xb5, 0x2f, 0xfd], tool: ['zstd', '-dcq'] },
  { magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], tool: ['xz', '-dc'] },
  { magic: [0x42, 0x5a, 0x68], tool: ['bzip2', '-dc'] },
  { magic: [0x5d, 0x00, 0x00], tool: ['xz', '--format=lzma', '-dc'] },
  { magic: [0x02, 0x21, 0x4c, 0x18], tool: ['lz4', '-dc'] },
];

const pad4 = (n: number): number => (4 - (n % 4)) % 4;

/** One newc archive's member names and where it ends. */
function cpioNames(data: Buffer, at: number): { names: string[]; end: number } {
  const headers = parseCpioNewc(data.subarray(at));
  const last = headers[headers.length - 1]!;
  return { names: headers.map((h) => h.name), end: at + last.dataOffset + last.filesize + pad4(last.filesize) };
}

/**
 * The member names of every archive in the initrd, or why they cannot be read (an unknown
 * format, a decoder missing or failing, more than INITRD_INSPECT_LIMIT).
 */
export function initrdMemberNames(initrd: Buffer): { names: string[] } | { problem: string } {
  const names: string[] = [];
  let data = initrd;
  let at = 0;
  for (let segments = 0; segments < 64; segments++) {
    while (at < data.length && data[at] === 0) at++;
    if (at >= data.length) return { names };
    if (data.toString('latin1', at, at + 6) === '070701') {
      try {
        const archive = cpioNames(data, at);
        names.push(...archive.names.filter((n) => n !== 'TRAILER!!!'));
        at = archive.end;
      } catch (err) {
        return { problem: `a cpio archive at byte ${at} cannot be read (${(err as Error).message})` };
      }
      continue;
    }
    const decoder = DECODERS.find((d) => d.magic.every((m, i) => data[at + i] === m));
    if (!decoder) return { problem: `byte ${at} starts neither a cpio archive nor a compressed one` };
    const r = spawnSync(decoder.tool[0]!, decoder.tool.slice(1), { input: data.subarray(at), maxBuffer: INITRD_INSPECT_LIMIT });
    if (r.error) return { problem: `${decoder.tool[0]} cannot decompress it (${(r.error as NodeJS.ErrnoException).code ?? r.error.message})` };
    // A decoder that stops at trailing padding still gave the whole stream (gzip warns, exits 2).
    if (r.stdout.length === 0) return { problem: `${decoder.tool[0]} -d failed: ${r.stderr.toString().trim().split('\n')[0]}` };
    data = r.stdout;
    at = 0;
  }
  return { problem: 'more than 64 archives' };
}

/** Whether the initrd whose member names are `names` mounts an NFS root, and why (or why not). */
export function initrdNfsSupport(names: readonly string[]): { nfs: boolean; why: string } {
  const has = (re: RegExp) => names.some((n) => re.test(n));
  const nfsModule = has(/(^|\/)lib\/modules\/[^/]+\/kernel\/fs\/nfs\/nfs\.ko(\.(xz|zst|gz))?$/);
  const script = has(/^(\.\/)?scripts\/nfs$/) ? 'initramfs-tools scripts/nfs' : has(/^(\.\/)?(usr\/)?sbin\/nfsroot$/) ? "dracut's nfsroot" : null;
  if (!script) return { nfs: false, why: 'it has no NFS boot script (initramfs-tools scripts/nfs or dracut sbin/nfsroot)' };
  if (!nfsModule) return { nfs: false, why: `it has ${script} but no nfs.ko (initramfs-tools MODULES=dep leaves it out)` };
  return { nfs: true, why: `it has ${script} and nfs.ko` };
}

/**
 * sparsecopy: command-line compatible with sparsecopy v0.10. Parses options into typed library
 * options and prints; the copy itself is src/sparsecopy/copy.ts.
 */
import { createRequire } from 'node:module';
import { Command, CommanderError, Option } from 'commander';
import { ToolError } from '../errors.js';
import { parseSize } from '../size.js';
import { type CopySummary, type SparseCopyOptions, sparseCopy } from '../sparsecopy/copy.js';
import { ZERO_POLICIES, type ZeroPolicy } from '../sparsecopy/sink.js';
import type { DigestAlgorithm } from '../codec/digest.js';
import { ThrottledProgress } from '../codec/progress.js';
import { imageNameOf, outputFormatNamed } from '../format/output-formats.js';
import { handleInterrupts } from './interrupt.js';
import { type RawOvaOptions, addOvaOptions, ovaOptionsOf } from './ova-options.js';
import { programLine, runMain } from './run.js';


const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

const HELP_TAIL = `
SOURCE can be "-" for stdin; SOURCE or DEST can be block devices, DEST can be "-" for stdout.
SOURCE's format is recognised from its first bytes, whatever its name: gzip, xz, zstd and bzip2
are decompressed, an Android sparse image is expanded (also inside a compressor), a qcow2 image
(a file, with its backing files) is read as its virtual disk, an ISO 9660 image is copied as the
disk it is, an OVA (a tar with its .ovf first) is read as the disk of its OVF's first disk
member; qcow v1, ESX VMDK (COWD), VHD/VHDX, VDI, DMG, lz4 and zip are refused (exit 28) rather than
copied as bytes. --raw copies any SOURCE as it is.
DEST's format is --format's, or its name's: .gz gzip, .xz xz, .zst zstd, .bz2 bzip2, .qcow2 qcow2,
.vmdk VMDK, .ova OVA, else raw. A qcow2 (version 3, holes and zero clusters unallocated) is written to a new regular
file, or to stdout or a pipe in two passes over a SOURCE that can be read twice (a file, a
device, a qcow2; not stdin, a pipe or a compressed SOURCE), metadata first; refused (exit 28): a
block device, a terminal, --compress to a stream; and -o, -s, -f and --to-partition (exit 1);
--cluster-size, --compress and --backing are for qcow2 only.
.ova (or --format ova): a tar of NAME.ovf, NAME.mf (SHA256 lines) and NAME-disk1.vmdk, to a new
file, stdout or a pipe; the VMDK is spooled to an unlinked temporary file in DEST's directory
($TMPDIR for a stream) first, because the tar header needs its size. --ova-cpus N (1),
--ova-memory MiB (1024), --ova-hw-version vmx-NN (vmx-11) are for OVA only, --adapter-type also
sets its disk controller; -o, -s, -f, --to-partition and a block device are refused (exit 1).
--backing BASE (raw or qcow2, as qemu-img convert -B): DEST holds only the clusters that differ
from BASE (zeros over BASE's data as zero clusters) and names BASE as given; a relative BASE is
found from DEST's directory, as qemu finds it. BASE must have the source's size (else exit 30).
.vmdk (or --format vmdk) writes a VMDK, --vmdk-subformat: streamOptimized (default; what OVA,
vSphere upload and cloud import take: compressed grains, one forward pass, to a file, a pipe or
stdout, where its extent line names "disk.vmdk"), monolithicSparse (qemu-img's default layout;
a new regular file, a SOURCE of known length), monolithicFlat (DEST is the descriptor, the disk
is NAME-flat.vmdk beside it) or twoGbMaxExtentFlat (NAME-f001.vmdk... of 2 GiB each), the flat
extents sparse files. --adapter-type ide, buslogic, lsilogic (default) or legacyESX. Refused
(exit 28): all but streamOptimized to a stream or a device, streamOptimized to a stream from a
SOURCE of unknown length (a .xz...); -o, -s, -f, --to-partition, --backing (exit 1).
SOURCE_DATE_EPOCH set: the VMDK's CID is derived from it (reproducible bytes).
To make a sparse file use /dev/null as SOURCE with -f (e.g. sparsecopy -f2G /dev/null myfs).
SIZE and POS are in blocks by default, or with a suffix B K M G T P E (powers of 1024;
note -b 1024 means 1024 blocks of 512 bytes: use 1024B for bytes).

-b is the zero-detection block and the unit of bare sizes, not a buffer size: any value works.

Exit codes: 0 ok, 1 usage or bad size, 2 cannot open source, 3 cannot open destination,
4 seek failed or --seek past the device end, 6/7 destination check read failed, 8 sparse skip
failed, 9 write failed (also: no room beside a replaced file, stdout closed), 10 truncate failed,
11 --check found a non-zero first block, 12 more data than --max with -e, 13 source and
destination are the same file or device, or overlap in it (symlinks, hard links, redirections,
loop devices and their backing files, a qcow2 source's backing files, a VMDK's extent files), 14 destination device
mounted or in use, or a loop
device's backing file (see --force), 15 source does not fit on the device (or is larger than a qcow2 of that --cluster-size maps), 16 reading the source
failed (or it changed between the two passes of a qcow2 to a stream), 17 digest mismatch (--verify-*), 18 corrupt compressed, sparse-image, qcow2 or VMDK input
(truncated, bad CRC or length, trailing garbage, bad qcow2 or VMDK metadata, a looping backing chain,
a VMDK descriptor line that does not parse, a short extent file, stream grains out of order),
19 no partition table, no such partition, or (--to-partition) one that overlaps, 28 a format sparsecopy cannot read or write (yet), 29 a program a format needs
is not installed (xz, lbzip2), 30 --backing BASE's size is not the source's, 130/143 interrupted by SIGINT/SIGTERM (a replaced file left as it
was, its temporary file removed).
`;

interface RawOptions extends RawOvaOptions {
  overlay?: boolean;
  nocheck?: boolean;
  quiet?: boolean;
  max?: string;
  maxwrite?: string;
  errorremainder?: boolean;
  blocksize?: string;
  seek?: string;
  finalsize?: string;
  check?: boolean;
  progress?: boolean;
  syncevery?: string;
  json?: boolean;
  force?: boolean;
  raw?: boolean;
  gzip?: boolean;
  gzipLevel?: string;
  format?: string;
  level?: string;
  clusterSize?: string;
  compress?: boolean;
  backing?: string;
  vmdkSubformat?: string;
  adapterType?: string;
  md5?: boolean;
  sha256?: boolean;
  verifyMd5?: string;
  verifySha256?: string;
  pad?: string;
  zero?: ZeroPolicy;
  progressFormat?: 'bar' | 'json';
  fromPartition?: string;
  toPartition?: string;
  relocateGpt?: boolean;
  debug?: boolean;
}

function buildCommand(): Command {
  return addOvaOptions(
    new Command('sparsecopy')
    .usage('[OPTIONS] SOURCE DEST')
    .description('Copy SOURCE to DEST, making DEST sparse on the way (all-zero blocks become holes).')
    .argument('<SOURCE>')
    .argument('<DEST>')
    .option('-o, --overlay', 'Overlay existing file DEST (rather than truncating)')
    .option('-n, --nocheck', 'Skip blank check')
    .option('-q, --quiet', 'Quiet')
    .option('-m, --max <SIZE>', 'Copy SIZE bytes maximum from SOURCE')
    .option('--maxwrite <SIZE>', 'same as --max (v0.09 spelling)')
    .option('-e, --errorremainder', 'Error if there is more to write beyond --max value')
    .option('-b, --blocksize <SIZE>', 'Use SIZE blocksize in bytes (default 512)')
    .option('-s, --seek <POS>', 'Start writing SOURCE at position POS in DEST')
    .option('-f, --finalsize <SIZE>', 'Set size of DEST to SIZE when done (no effect on block devices)')
    .option('-c, --check', 'Check the first block in the destination is zero, else abort')
    .option('-p, --progress', 'Display progress indicator on stderr')
    .option('-y, --syncevery <SIZE>', 'Issue an fdatasync() every SIZE bytes')
    .option('--raw', "Copy SOURCE's bytes as they are (no format recognised or decompressed; DEST's name implies none)")
    .option('--format <FORMAT>', "Write DEST as raw, gzip, xz, zstd, bzip2, qcow2, vmdk or ova (default: from DEST's extension)")
    .option('--level <N>', 'Compression level of the output format (gzip 1-9, xz 0-9, zstd 1-19, bzip2 1-9)')
    .option('--cluster-size <SIZE>', 'qcow2 cluster size in bytes (a bare number too, as qemu-img counts it): a power of two from 512 to 2M (default 64K)')
    .option('--compress', 'qcow2: deflate each cluster, as qemu-img convert -c does')
    .option('--backing <BASE>', 'qcow2: write a layer over BASE (raw or qcow2) holding only what differs from it, as qemu-img convert -B does')
    .option('--vmdk-subformat <SUBFORMAT>', 'VMDK: streamOptimized (default), monolithicSparse, monolithicFlat or twoGbMaxExtentFlat')
    .option('--adapter-type <TYPE>', "VMDK and OVA: the descriptor's adapter type (an OVA's disk controller): ide, buslogic, lsilogic (default) or legacyESX"),
  )
    .option('--gzip', 'Same as --format gzip; --gzip=LEVEL sets the level too (1-9)')
    .addOption(new Option('--gzip-level <LEVEL>').hideHelp())
    .option('--md5', 'Print the MD5 of the uncompressed bytes (md5sum format) after the copy')
    .option('--sha256', 'Print the SHA-256 of the uncompressed bytes (sha256sum format) after the copy')
    .option('--verify-md5 <HEX>', 'Fail (exit 17) unless the uncompressed bytes have this MD5')
    .option('--verify-sha256 <HEX>', 'Fail (exit 17) unless the uncompressed bytes have this SHA-256')
    .option('--pad <SIZE>', 'Round the logical size up to a multiple of SIZE with zeros (e.g. --pad 4K)')
    .addOption(new Option('--zero <POLICY>', 'Zeros over possible destination data: compare (default), skip, zeroout, write').choices(ZERO_POLICIES))
    .addOption(new Option('--progress-format <FORMAT>').hideHelp().choices(['bar', 'json']))
    .option('--from-partition <N>', 'Copy only partition N of SOURCE (its table is read from SOURCE, also a pipe or gzip)')
    .option('--to-partition <N>', 'Write SOURCE into partition N of DEST (refused if larger than the partition)')
    .option('--relocate-gpt', 'After the copy, move a GPT backup to the end of a larger DEST (sfdisk --relocate gpt-bak-std)')
    .option('--json', 'Print a machine-readable summary (JSON) on stdout')
    .option('--force', 'Write to a block device even if it is mounted or in use')
    .option('--debug', 'Show stack traces of errors')
    .version(version, '-V, --version')
    .helpOption('-h, --help', 'Display usage')
    .addHelpText('after', HELP_TAIL)
    .showHelpAfterError(false)
    .exitOverride()
    // commander's own errors ("error: unknown option...") read as every other error: "sparsecopy: ...".
    .configureOutput({ writeErr: (s) => process.stderr.write(s.startsWith('error: ') ? programLine('sparsecopy', s.slice('error: '.length).trimEnd()) : s) });
}

/** Sizes are parsed after -b, because a bare number is a count of blocks (v0.10). */
export function toCopyOptions(source: string, destination: string, raw: RawOptions): SparseCopyOptions {
  const blockSize = raw.blocksize === undefined ? 512 : parseSize(raw.blocksize, 512, 'block size');
  if (blockSize <= 0) throw new ToolError('USAGE', `bad block size ${blockSize}`);
  const size = (text: string | undefined, what: string) => (text === undefined ? undefined : parseSize(text, blockSize, what));
  if (raw.nocheck && raw.zero !== undefined && raw.zero !== 'skip') {
    throw new ToolError('USAGE', `-n (skip the blank check) contradicts --zero=${raw.zero}`);
  }
  const pad = size(raw.pad, 'pad size');
  if (pad === 0) throw new ToolError('USAGE', 'bad pad size 0');
  return {
    source,
    destination,
    overlay: raw.overlay ?? false,
    zeroPolicy: raw.nocheck ? 'skip' : (raw.zero ?? 'compare'),
    maxBytes: size(raw.max ?? raw.maxwrite, 'max size'),
    errorRemainder: raw.errorremainder ?? false,
    blockSize,
    seekBytes: size(raw.seek, 'seek position') ?? 0,
    finalSize: size(raw.finalsize, 'final size'),
    checkFirstBlock: raw.check ?? false,
    syncEveryBytes: size(raw.syncevery, 'sync interval') ?? 0,
    force: raw.force ?? false,
    raw: raw.raw ?? false,
    ...outputFormatOf(raw),
    ...(raw.clusterSize !== undefined ? { clusterSize: parseSize(raw.clusterSize, 1, 'cluster size') } : {}),
    ...(raw.compress ? { compress: true } : {}),
    ...(raw.backing !== undefined ? { backing: raw.backing } : {}),
    ...(raw.vmdkSubformat !== undefined ? { vmdkSubformat: raw.vmdkSubformat } : {}),
    ...(raw.adapterType !== undefined ? { adapterType: raw.adapterType } : {}),
    ...ovaOptionsOf(raw),
    digests: [...(raw.md5 ? ['md5' as const] : []), ...(raw.sha256 ? ['sha256' as const] : [])],
    verify: {
      ...(raw.verifyMd5 !== undefined ? { md5: hexDigest(raw.verifyMd5, 32, '--verify-md5') } : {}),
      ...(raw.verifySha256 !== undefined ? { sha256: hexDigest(raw.verifySha256, 64, '--verify-sha256') } : {}),
    },
    padBytes: pad,
    fromPartition: partitionNumber(raw.fromPartition, '--from-partition'),
    toPartition: partitionNumber(raw.toPartition, '--to-partition'),
    relocateGpt: raw.relocateGpt ?? false,
  };
}

function partitionNumber(text: string | undefined, option: string): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new ToolError('USAGE', `bad ${option} '${text}': expected a partition number (1, 2, ...)`);
  return n;
}

/**
 * The output format asked for: --format (and --level), or --gzip[=LEVEL] as before --format
 * existed; neither: the destination's extension decides (in the library). A level's range is the
 * format's, checked by the library.
 */
function outputFormatOf(raw: RawOptions): { outputFormat?: string; level?: number } {
  const level = raw.gzipLevel ?? raw.level;
  if (level !== undefined && !/^\d+$/.test(level)) throw new ToolError('USAGE', `bad level '${level}': expected a number`);
  if ((raw.gzip || raw.gzipLevel !== undefined) && raw.format !== undefined && raw.format !== 'gzip') {
    throw new ToolError('USAGE', `--gzip contradicts --format ${raw.format}`);
  }
  const outputFormat = raw.gzip || raw.gzipLevel !== undefined ? 'gzip' : raw.format;
  return { ...(outputFormat !== undefined ? { outputFormat } : {}), ...(level !== undefined ? { level: Number(level) } : {}) };
}

function hexDigest(text: string, length: number, option: string): string {
  const hex = text.trim().toLowerCase();
  if (!new RegExp(`^[0-9a-f]{${length}}$`).test(hex)) throw new ToolError('USAGE', `bad ${option} value '${text}': expected ${length} hex digits`);
  return hex;
}

/**
 * `--gzip=9` and `--progress=json` take an optional value, which commander would otherwise take
 * from the next argument (the SOURCE): rewrite the "=" forms into hidden options first.
 */
export function normalizeArgv(argv: string[]): string[] {
  return argv.flatMap((arg) => {
    const gzip = /^--gzip=(.*)$/.exec(arg);
    if (gzip) return ['--gzip', '--gzip-level', gzip[1] ?? ''];
    const progress = /^--progress=(.*)$/.exec(arg);
    if (progress) return ['--progress', '--progress-format', progress[1] ?? ''];
    return [arg];
  });
}

export function formatSummaryLine(s: CopySummary): string {
  return `sparsecopy: total bytes = ${s.total} (real = ${s.real}, sparse = ${s.sparse}), nonzerodest = ${s.nonzerodest}`;
}

async function main(argv: string[]): Promise<number> {
  const command = buildCommand();
  try {
    command.parse(normalizeArgv(argv));
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here with 0; every parse error is a usage error (1).
      return err.exitCode === 0 ? 0 : 1;
    }
    throw err;
  }
  const raw = command.opts<RawOptions>();
  const [source, destination] = command.args as [string, string];
  const options = toCopyOptions(source, destination, raw);

  const quiet = raw.quiet ?? false;
  // v0.10 drew progress only on a terminal (a bar in a log file is noise); JSON is for programs.
  const format = raw.progressFormat ?? 'bar';
  const progress = raw.progress && (format === 'json' || process.stderr.isTTY) ? new ThrottledProgress(process.stderr, format) : null;
  let last = { doneBytes: 0, totalBytes: null as number | null, outputBytes: 0 };
  options.onProgress = (p) => {
    last = p;
    progress?.update(p);
  };
  options.onWarning = (message) => {
    if (!quiet) process.stderr.write(programLine('sparsecopy', message));
  };

  options.signal = interruption.signal;
  options.onCommit = interruption.committed; // from then on a signal changes nothing: the copy is complete
  interruption.describe(`${destination === '-' ? 'stdout' : destination}: any temporary output removed`);
  const summary = await sparseCopy(options);
  progress?.finish(last);
  if (raw.json) {
    const json = JSON.stringify({ source, destination, ...summary });
    (destination === '-' ? process.stderr : process.stdout).write(`${json}\n`);
  }
  const textOut = destination === '-' ? process.stderr : process.stdout;
  const name = imageNameOf(destination, outputFormatNamed(summary.outputFormat)!);
  for (const algorithm of ['md5', 'sha256'] as DigestAlgorithm[]) {
    const hex = summary.digests[algorithm];
    if (hex && options.digests?.includes(algorithm)) textOut.write(`${hex}  ${name}\n`);
  }
  if (!quiet) process.stderr.write(`${formatSummaryLine(summary)}\n`);
  return 0;
}

const interruption = handleInterrupts('sparsecopy');

await runMain('sparsecopy', () => main(process.argv));
interruption.finish();

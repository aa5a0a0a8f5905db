/** The typed options and results of a copy: what the CLI fills in and prints. */
import type { DigestAlgorithm } from '../codec/digest.js';
import type { ZeroPolicy } from './sink.js';

export interface SparseCopyOptions {
  source: string;
  destination: string;
  /** Overlay an existing destination file instead of replacing it (-o). */
  overlay?: boolean;
  /** Zeros over possible destination data: compare (default), skip (-n), zeroout, write (--zero). */
  zeroPolicy?: ZeroPolicy;
  /** Copy at most this many bytes of the (uncompressed) source (-m). */
  maxBytes?: number;
  /** Fail with MORE_THAN_MAX when the source holds more than maxBytes (-e). */
  errorRemainder?: boolean;
  /** Zero-detection block size in bytes (-b). */
  blockSize?: number;
  /** Destination byte offset where the source lands (-s). */
  seekBytes?: number;
  /** Final length of a regular-file destination (-f). */
  finalSize?: number;
  /** Refuse unless the destination's first block (at the seek position) is zero (-c). */
  checkFirstBlock?: boolean;
  /** fdatasync every this many bytes written (-y). */
  syncEveryBytes?: number;
  /** Write to a block device even when it is mounted or in use. */
  force?: boolean;
  /** Copy the source's bytes as they are: no format is recognised or decompressed (--raw). */
  raw?: boolean;
  /** Output format by name (--format): raw, gzip, xz, zstd, bzip2, qcow2, vmdk; default: the destination's extension. */
  outputFormat?: string;
  /** Compression level of the output format (its own range); default: the format's. */
  level?: number;
  /** qcow2 output: cluster size in bytes (a power of two, 512 B to 2 MiB; default 64 KiB). */
  clusterSize?: number;
  /** qcow2 output: deflate each cluster, as qemu-img convert -c does. */
  compress?: boolean;
  /** qcow2 output: a layer over this backing file (raw or qcow2), holding only what differs from it; stored as given, found from the destination's directory. */
  backing?: string;
  /** VMDK output: streamOptimized (default), monolithicSparse, monolithicFlat or twoGbMaxExtentFlat (qemu-img's names). */
  vmdkSubformat?: string;
  /** OVA output: the virtual machine's CPUs (default 1), memory in MiB (default 1024), vmx-NN hardware version (default 11). */
  ovaCpus?: number;
  ovaMemoryMiB?: number;
  ovaHardwareVersion?: string;
  /** OVA output: what the disk boots under (vmw:Config firmware), when the caller knows (fsmaker). */
  ovaFirmware?: 'bios' | 'efi';
  /** VMDK and OVA output: the descriptor's ddb.adapterType (and an OVA's disk controller): ide, buslogic, lsilogic (default) or legacyESX. */
  adapterType?: string;
  /** Digests of the uncompressed bytes to compute in the same pass. */
  digests?: DigestAlgorithm[];
  /** Expected digests (lower-case hex): a mismatch fails with DIGEST_MISMATCH. */
  verify?: Partial<Record<DigestAlgorithm, string>>;
  /** Round the logical size up to a multiple of this many bytes with zeros (--pad). */
  padBytes?: number;
  /** Copy only partition N of the source (its table read from the source itself). */
  fromPartition?: number;
  /** Write the source into partition N of the destination, refusing a source larger than it. */
  toPartition?: number;
  /** After the copy, move a GPT's backup to the end of a larger destination (sfdisk --relocate gpt-bak-std). */
  relocateGpt?: boolean;
  /** Read chunk size (tuning and tests). */
  chunkBytes?: number;
  /** Walk holes with SEEK_DATA (default); false reads and scans everything. */
  useHoleMap?: boolean;
  /** Write files and devices from a writer thread; by default, for sources of 64 MiB or more. */
  writerThread?: boolean;
  onProgress?: (progress: CopyProgress) => void;
  onWarning?: (message: string) => void;
  signal?: AbortSignal;
  /** Called synchronously as the destination is committed (renamed into place): a signal after it changes nothing. */
  onCommit?: () => void;
}

export interface CopyProgress {
  /** Input bytes done: uncompressed source bytes, or compressed bytes read for a gzip source. */
  doneBytes: number;
  /** Input bytes in all, when known. */
  totalBytes: number | null;
  /** Uncompressed bytes produced so far. */
  outputBytes: number;
}

export interface CopySummary {
  /** Source bytes copied: real + sparse (v0.10's "total bytes"), padding included. */
  total: number;
  real: number;
  sparse: number;
  nonzerodest: number;
  /** Bytes actually read from the source (holes are never read; compressed bytes for gzip). */
  bytesRead: number;
  /** Bytes physically written to the destination, zeros included (compressed bytes for gzip output). */
  bytesWritten: number;
  /** Zero bytes written only because they share a filesystem block with data (counted in sparse, as v0.10 skipped them). */
  zeroBlocksWritten: number;
  /** Source bytes skipped as holes or zero blocks (emitted as precomputed blocks for gzip). */
  bytesSkipped: number;
  /** Destination bytes read back to check for zeros. */
  bytesChecked: number;
  /** Zeros written by the zero policy (--zero=write, or zeroout's fallback). */
  zerosWritten: number;
  /** Zeros cleared with BLKZEROOUT. */
  zeroedOut: number;
  /** Padding zeros added by --pad. */
  padded: number;
  /** The source was compressed and was decompressed. */
  decompressed: boolean;
  /** The destination is compressed (a compressed stream, or a qcow2 with --compress). */
  compressed: boolean;
  /** The source's formats, from the outside in: [] for a raw image, ['xz', 'android-sparse']... */
  inputFormats: string[];
  /** The destination's format: raw, gzip, xz, zstd, bzip2, qcow2. */
  outputFormat: string;
  /** Lower-case hex digests of the uncompressed bytes. */
  digests: Partial<Record<DigestAlgorithm, string>>;
  seconds: number;
}

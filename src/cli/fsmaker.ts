/**
 * fsmaker: a bootable disk from a bare root filesystem image, a directory or a tar archive,
 * without root privileges. Command line compatible with fsmaker v0.05: fsmaker [options]
 * ROOTIMAGE OUTPUTIMAGE, which is one layout; fsmaker --layout FILE [OUTPUTIMAGE] builds any other.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { Command, CommanderError, Option } from 'commander';
import { ToolError } from '../errors.js';
import { parseSize } from '../size.js';
import { type BootFile, type FsmakerCopyOptions, type LayoutRun, type PlannedDisk, layoutOfOptions, makeLayoutDisk } from '../fsmaker/assemble.js';
import { findGrubDirs } from '../fsmaker/grub-images.js';
import { readLayoutFile } from '../fsmaker/layout-file.js';
import type { LayoutSpec } from '../fsmaker/layout-model.js';
import { layoutYaml } from '../fsmaker/layout-print.js';
import { refuseOutputAmongInputs } from '../fsmaker/preflight.js';
import { handleInterrupts } from './interrupt.js';
import { imageNameOf, outputFormatNamed } from '../format/output-formats.js';
import { programLine, runMain } from './run.js';
import { type RawOvaOptions, addOvaOptions, ovaOptionsOf } from './ova-options.js';


const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

interface Raw extends RawOvaOptions {
  kernel?: string;
  initrd?: string;
  size?: string;
  bootsize?: string;
  type?: string;
  bootdir?: string;
  grubheader?: string;
  label?: 'mbr' | 'gpt';
  firmware?: 'bios' | 'uefi' | 'both';
  seed?: string;
  append?: string;
  timeout?: string;
  printConfig?: boolean;
  layout?: string;
  rootfsSize?: string;
  pad?: string;
  md5?: boolean;
  sha256?: boolean;
  gzip?: boolean;
  format?: string;
  clusterSize?: string;
  compress?: boolean;
  vmdkSubformat?: string;
  adapterType?: string;
  force?: boolean;
  quiet?: boolean;
  json?: boolean;
}

const bytes = (text: string | undefined, what: string): number | undefined => (text === undefined ? undefined : parseSize(text, 1, what));

/** GRUB's menu timeout: a whole number of seconds (-1 would make GRUB wait for a key forever). */
function timeoutOf(text: string | undefined): number {
  if (text === undefined) return 1;
  if (!/^\d{1,9}$/.test(text)) throw new ToolError('USAGE', `bad --timeout '${text}': expected a whole number of seconds (0 boots at once)`);
  return Number(text);
}

const HELP_TAIL = `
OUTPUTIMAGE's format is --format's, or its name's: .gz gzip, .xz xz, .zst zstd, .bz2 bzip2, .qcow2
qcow2 (version 3, written straight from the disk, no raw image first), else raw. A qcow2 needs a
new or replaced regular file: stdout and block devices are refused before anything is built.
--cluster-size and --compress are for qcow2 only.
.vmdk (or --format vmdk) writes a VMDK straight from the disk: streamOptimized by default (also to
stdout), or --vmdk-subformat monolithicSparse, monolithicFlat or twoGbMaxExtentFlat (new regular
files; the flat extents beside OUTPUTIMAGE); --adapter-type ide, buslogic, lsilogic (default) or
legacyESX. SOURCE_DATE_EPOCH set: the VMDK's CID is derived from it (reproducible output).
.ova (or --format ova): an OVA (ovf, mf, streamOptimized VMDK) written from the disk as it is
built, its OVF naming the firmware built for; --ova-cpus, --ova-memory, --ova-hw-version and
--adapter-type as sparsecopy's.

--layout FILE describes any disk in YAML (label, partitions with sizes, types, contents and
roles, bootloader, kernel command line, output): see the README. OUTPUTIMAGE, when given,
overrides the file's output path. The v0.05 layout options (-k -i -s -b -t -d --label
--firmware --seed --append --timeout --rootfs-size) are refused with it: say it in the file.

Exit codes: 0 ok, 1 usage or bad option, 3 cannot create OUTPUTIMAGE, 13 OUTPUTIMAGE is one of the
inputs (the rootfs, -k, -i, or inside -d), 14 the output device is in use (see --force), 15 the
disk does not fit on the output device (or in a qcow2 of that --cluster-size), 20 cannot open the
rootfs, 21 unknown or corrupt rootfs (or one Linux would not mount), 22 the rootfs does not fit in
--size, 23 kernel or initrd not found, 24 GRUB files missing or unusable, 25 core.img too large, 26 formatting
the spare partition failed, 27 the kernel is not a bzImage, the initrd not an initramfs Linux
unpacks, or the default kernel's modules are damaged, 28 an output format not written (or a qcow2
to stdout or a device, a VMDK but streamOptimized to stdout or a device), 29 a program the output format needs is missing, 31 a file tree ext4 cannot
hold as given (a name over 255 bytes, xattrs over a block...), 33 the --layout file
cannot be read or has problems (one line each, FILE:LINE), 34 no initrd goes with the kernel and no modules of its release to generate one, 130/143 interrupted by
SIGINT/SIGTERM (nothing left behind); other output failures keep sparsecopy's codes.
`;

function bootLine(role: string, file: BootFile): string {
  return `${role}: ${file.from} (${file.size} bytes)${file.why ? `, ${file.why}` : ''}`;
}

function buildCommand(): Command {
  const command = new Command('fsmaker')
    .usage('[options] ROOTIMAGE OUTPUTIMAGE  |  --layout FILE [options] [OUTPUTIMAGE]')
    .description('Wrap a bare root filesystem image, a directory or a tar archive into a bootable partitioned disk (GRUB for BIOS and UEFI), or build the disk a layout file describes.')
    .argument('[ROOTIMAGE]')
    .argument('[OUTPUTIMAGE]')
    .option('--layout <FILE>', 'build the disk this YAML layout describes (see the README)')
    .option('--rootfs-size <SIZE>', 'root partition size (a directory or archive: its ext4 size; default automatic)')
    .option('--pad <SIZE>', 'round the disk up to a multiple of SIZE (the backup GPT at the new end), as sparsecopy --pad')
    .option('-k, --kernel <KERNEL>', 'kernel image (default: the rootfs /boot/vmlinuz, else the cached Debian cloud kernel)')
    .option('-i, --initrd <INITRD>', 'initrd (default: the rootfs /boot/initrd.img, else a generated busybox initramfs)')
    .option('-s, --size <SIZE>', 'total image size; the space left becomes a spare partition (suffixes K M G T, bare = bytes)')
    .option('-b, --bootsize <SIZE>', 'boot partition size (default 128M)')
    .option('-t, --type <TYPE>', 'filesystem of the spare partition (mkfs.TYPE), or none', 'ext3')
    .option('-d, --bootdir <DIR>', 'extra files for the boot partition')
    .option('-g, --grubheader <DIR>', "directory holding GRUB's i386-pc and x86_64-efi directories (default /usr/lib/grub)")
    .addOption(new Option('--label <LABEL>', 'partition table').choices(['mbr', 'gpt']).default('mbr'))
    .addOption(new Option('--firmware <FW>', 'what the disk boots under').choices(['bios', 'uefi', 'both']).default('both'))
    .option('--seed <STRING>', 'derive the disk signature or GUIDs and the FAT serial from STRING (reproducible output)')
    .option('--append <ARGS>', 'extra kernel command-line arguments')
    .option('--timeout <SECONDS>', 'GRUB menu timeout', '1')
    .option('--print-config', 'print the resolved layout as YAML --layout takes, with the kernel, initrd and GRUB files and why; write nothing')
    .option('--md5', 'print the MD5 of the uncompressed disk')
    .option('--sha256', 'print the SHA-256 of the uncompressed disk')
    .option('--gzip', 'write OUTPUTIMAGE as gzip (as a name ending in .gz does; .xz, .zst, .bz2, .qcow2, .vmdk and .ova names give those formats)')
    .option('--format <FORMAT>', "write OUTPUTIMAGE as raw, gzip, xz, zstd, bzip2, qcow2, vmdk or ova (default: from its name)")
    .option('--cluster-size <SIZE>', 'qcow2 cluster size: a power of two from 512B to 2M (default 64K; bare = bytes)')
    .option('--compress', 'qcow2: deflate each cluster, as qemu-img convert -c does')
    .option('--vmdk-subformat <SUBFORMAT>', 'VMDK: streamOptimized (default), monolithicSparse, monolithicFlat or twoGbMaxExtentFlat')
    .option('--adapter-type <TYPE>', "VMDK and OVA: the descriptor's adapter type (an OVA's disk controller): ide, buslogic, lsilogic (default) or legacyESX");
  return addOvaOptions(command)
    .option('--force', 'write to a block device even if it is in use')
    .option('-q, --quiet', 'no summary')
    .option('--json', 'machine-readable summary on stdout')
    .option('--debug', 'show stack traces of errors')
    .version(version, '-V, --version')
    .addHelpText('after', HELP_TAIL)
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
}

async function main(argv: string[]): Promise<number> {
  const command = buildCommand();
  try {
    command.parse(argv);
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 1;
    throw err;
  }
  const raw = command.opts<Raw>();
  const args = command.args as string[];
  let chosen: ReturnType<typeof layoutOf>;
  try {
    chosen = layoutOf(command, raw, args);
  } catch (err) {
    // A layout file's problems, one per line: each line is an error line of its own.
    if (!(err instanceof ToolError) || err.code !== 'LAYOUT_INVALID') throw err;
    for (const line of err.message.split('\n')) process.stderr.write(programLine('fsmaker', line));
    return err.exitCode;
  }
  const { layout, output } = chosen;
  const pad = bytes(raw.pad, 'pad size') ?? layout.output?.pad;
  const run: LayoutRun = { layout, output: output ?? '', grubDir: raw.grubheader, padBytes: pad };
  if (raw.printConfig) {
    process.stdout.write(configReport(await makeLayoutDisk(run, true), raw.grubheader));
    return 0;
  }
  if (!output) throw new ToolError('USAGE', 'missing OUTPUTIMAGE (see --help)');
  interruption.describe(outcomeOf(output));
  const result = await makeLayoutDisk({
    ...run,
    signal: interruption.signal,
    copy: {
      onCommit: interruption.committed,
      ...outputFormatOf(raw, layout.output?.format),
      digests: [...(raw.md5 ? ['md5' as const] : []), ...(raw.sha256 ? ['sha256' as const] : [])],
      force: raw.force ?? false,
      onWarning: (m) => (raw.quiet ? undefined : process.stderr.write(programLine('fsmaker', m))),
    },
  });
  const name = imageNameOf(output, outputFormatNamed(result.outputFormat)!);
  const textOut = output === '-' ? process.stderr : process.stdout;
  if (result.digests.md5) textOut.write(`${result.digests.md5}  ${name}\n`);
  if (result.digests.sha256) textOut.write(`${result.digests.sha256}  ${name}\n`);
  if (raw.json) textOut.write(`${JSON.stringify({ output, totalBytes: result.layout.totalBytes, label: result.layout.table.label, rootfs: result.rootfs, kernel: result.boot?.kernel.from ?? null, initrd: result.boot?.initrd.from ?? null, written: result.bytesWritten, seconds: result.seconds })}\n`);
  if (!raw.quiet) {
    const root = result.rootfs && result.layout.root ? `rootfs ${result.rootfs.type} on partition ${result.layout.root.number}` : 'no root partition';
    process.stderr.write(
      `fsmaker: ${output}: ${result.layout.table.label === 'dos' ? 'MBR' : 'GPT'} disk of ${result.layout.totalBytes} bytes, ${root}, ${result.bytesWritten} bytes written in ${result.seconds.toFixed(2)} s\n`,
    );
  }
  return 0;
}

/** --format, or --gzip as before --format existed; neither: OUTPUTIMAGE's name decides (in the library). */
function outputFormatOf(raw: Raw, layoutFormat: string | undefined): Pick<FsmakerCopyOptions, 'outputFormat' | 'clusterSize' | 'compress' | 'vmdkSubformat' | 'adapterType' | 'ovaCpus' | 'ovaMemoryMiB' | 'ovaHardwareVersion'> {
  if (raw.gzip && raw.format !== undefined && raw.format !== 'gzip') throw new ToolError('USAGE', `--gzip contradicts --format ${raw.format}`);
  const outputFormat = raw.gzip ? 'gzip' : (raw.format ?? layoutFormat);
  return {
    ...(outputFormat !== undefined ? { outputFormat } : {}),
    ...(raw.clusterSize !== undefined ? { clusterSize: parseSize(raw.clusterSize, 1, 'cluster size') } : {}),
    ...(raw.compress ? { compress: true } : {}),
    ...(raw.vmdkSubformat !== undefined ? { vmdkSubformat: raw.vmdkSubformat } : {}),
    ...(raw.adapterType !== undefined ? { adapterType: raw.adapterType } : {}),
    ...ovaOptionsOf(raw),
  };
}

/** Options that describe v0.05's layout: with --layout, the file says all of it. */
const V005_LAYOUT_OPTIONS: [keyof Raw, string][] = [
  ['kernel', '-k'], ['initrd', '-i'], ['size', '-s'], ['bootsize', '-b'], ['type', '-t'], ['bootdir', '-d'], ['label', '--label'],
  ['firmware', '--firmware'], ['seed', '--seed'], ['append', '--append'], ['timeout', '--timeout'], ['rootfsSize', '--rootfs-size'],
];

/** The layout to build and where to: --layout's file (OUTPUTIMAGE overriding its output), else v0.05's options. */
function layoutOf(command: Command, raw: Raw, args: string[]): { layout: LayoutSpec; output: string | undefined } {
  if (raw.layout !== undefined) {
    const given = V005_LAYOUT_OPTIONS.filter(([key]) => command.getOptionValueSource(key) === 'cli').map(([, flag]) => flag);
    if (given.length > 0) throw new ToolError('USAGE', `${given.join(', ')} with --layout: the layout file describes the disk (put it there)`);
    if (args.length > 1) throw new ToolError('USAGE', `--layout takes one OUTPUTIMAGE at most, not ${args.length} arguments (ROOTIMAGE goes in the file)`);
    const layout = readLayoutFile(raw.layout);
    const output = args[0] ?? layout.output?.path;
    if (output !== undefined) refuseOutputAmongInputs(output, [{ role: 'the layout file', path: raw.layout }]);
    return { layout, output };
  }
  const [rootImage, output] = args;
  if (rootImage === undefined) throw new ToolError('USAGE', 'missing ROOTIMAGE (see --help)');
  const layout = layoutOfOptions({
    rootImage,
    output: output ?? '',
    kernel: raw.kernel,
    initrd: raw.initrd,
    sizeBytes: bytes(raw.size, 'size'),
    bootBytes: bytes(raw.bootsize, 'boot size'),
    rootfsBytes: bytes(raw.rootfsSize, 'rootfs size'),
    spareType: raw.type,
    bootDir: raw.bootdir,
    label: raw.label,
    firmware: raw.firmware,
    seed: raw.seed,
    append: raw.append,
    timeoutSeconds: timeoutOf(raw.timeout),
  });
  return { layout, output };
}

/**
 * --print-config: the resolved layout as YAML (--layout takes it back), the root, kernel, initrd
 * and GRUB files each in a comment saying where it comes from.
 */
function configReport(planned: PlannedDisk, grubDir: string | undefined): string {
  const grub = findGrubDirs(grubDir);
  const rootSpec = planned.resolved.partitions.find((p) => p.mount === '/');
  const rootFrom = rootSpec ? (rootSpec.contents.kind === 'image' ? rootSpec.contents.path : rootSpec.contents.kind === 'ext4' ? `${rootSpec.contents.from} (ext4 built from it)` : '') : '';
  const r = planned.rootfs;
  const lines = [
    r ? `rootfs: ${rootFrom}: ${r.type}${r.uuid ? `, UUID ${r.uuid}` : ''}${r.label ? `, label ${r.label}` : ''}, ${planned.layout.root!.sectors * 512} bytes partition ${planned.layout.root!.number}` : 'rootfs: none on the disk',
    ...(planned.boot ? [bootLine('kernel', planned.boot.kernel), bootLine('initrd', planned.boot.initrd), ...(planned.boot.modules ? [`initrd modules: ${planned.boot.modules}`] : [])] : ['kernel: none (bootloader none)']),
    `grub i386-pc: ${grub.i386Pc ?? 'missing (install grub-pc-bin)'}`,
    `grub x86_64-efi: ${grub.x86_64Efi ?? 'missing (install grub-efi-amd64-bin)'}`,
  ];
  return `${lines.map((l) => `# ${l}`).join('\n')}\n${layoutYaml(planned.resolved)}`;
}

/** The fate of the output a forced exit reports. */
function outcomeOf(output: string): string {
  let device = false;
  try {
    device = fs.statSync(output).isBlockDevice();
  } catch {
    // a new file
  }
  return output === '-' ? 'stdout may hold part of a disk' : device ? `${output}: the device may be partly written` : `${output}: left as it was`;
}

const interruption = handleInterrupts('fsmaker');
await runMain('fsmaker', () => main(process.argv));
interruption.finish();

/**
 * The OVA options both commands take (sparsecopy and fsmaker write the same OVA): declared and
 * parsed in one place (--adapter-type is the VMDK output's, which an OVA's disk takes too). Their
 * ranges are checked by the library (format/output-formats.ts), with the refusal of these options
 * for other formats.
 */
import type { Command } from 'commander';
import { ToolError } from '../errors.js';
import { parseSize } from '../size.js';

export interface RawOvaOptions {
  ovaCpus?: string;
  ovaMemory?: string;
  ovaHwVersion?: string;
}

const MiB = 1 << 20;

export function addOvaOptions(command: Command): Command {
  return command
    .option('--ova-cpus <N>', 'OVA: virtual CPUs of the virtual machine (default 1)')
    .option('--ova-memory <SIZE>', 'OVA: its memory, in MiB, or with a suffix K M G T (default 1024, i.e. 1G)')
    .option('--ova-hw-version <VMX>', 'OVA: virtual hardware version, vmx-NN or NN (default vmx-11: ESXi 6.0 and later)');
}

/** The library's options from the command line's text. */
export function ovaOptionsOf(raw: RawOvaOptions): { ovaCpus?: number; ovaMemoryMiB?: number; ovaHardwareVersion?: string } {
  const out: ReturnType<typeof ovaOptionsOf> = {};
  if (raw.ovaCpus !== undefined) {
    if (!/^\d{1,4}$/.test(raw.ovaCpus)) throw new ToolError('USAGE', `bad --ova-cpus '${raw.ovaCpus}': expected a number of CPUs`);
    out.ovaCpus = Number(raw.ovaCpus);
  }
  if (raw.ovaMemory !== undefined) {
    const bytes = parseSize(raw.ovaMemory, MiB, 'OVA memory size');
    if (bytes % MiB !== 0) throw new ToolError('USAGE', `bad --ova-memory '${raw.ovaMemory}': not a whole number of MiB`);
    out.ovaMemoryMiB = bytes / MiB;
  }
  if (raw.ovaHwVersion !== undefined) out.ovaHardwareVersion = raw.ovaHwVersion;
  return out;
}

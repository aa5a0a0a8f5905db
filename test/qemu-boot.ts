/**
 * Test utility: boot a disk image (raw or qcow2) in qemu-system-x86_64 (TCG only: KVM is present
 * on the build machines but guests hang there) and wait for a marker on the serial port.
 * SeaBIOS for 'bios', OVMF (pflash CODE + a temporary copy of VARS, or -bios OVMF.fd) for 'uefi'.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const QEMU = 'qemu-system-x86_64';

export interface BootOptions {
  image: string;
  firmware: 'bios' | 'uefi';
  /** scsi: virtio-scsi; lsi-scsi: an LSI 53C895A (what VMware's lsilogic adapter stands for), which SeaBIOS boots from. */
  disk: 'virtio' | 'ide' | 'scsi' | 'lsi-scsi';
  marker: string | RegExp;
  timeoutMs: number;
  /** Guest RAM in MiB (default 512). */
  memoryMiB?: number;
  /** The image's format as qemu names it (default raw): never probed, so a raw image is never taken for another format. */
  format?: 'raw' | 'qcow2' | 'vmdk';
  /** A NIC on qemu's user network (slirp: the host is 10.0.2.2, DHCP gives 10.0.2.15); default none. */
  nic?: 'virtio-net-pci' | 'e1000' | 'e1000e';
}

export interface BootResult {
  found: boolean;
  /** Seconds from qemu start until the marker (or until giving up). */
  seconds: number;
  /** Everything the guest wrote to the serial port. */
  serial: string;
}

type Ovmf = { kind: 'pflash'; code: string; vars: string } | { kind: 'bios'; file: string };

/** OVMF firmware files, probed: 4 MiB pflash pair, 2 MiB pair, combined image for -bios. */
export function findOvmf(): Ovmf | null {
  const pairs: [string, string][] = [
    ['/usr/share/OVMF/OVMF_CODE_4M.fd', '/usr/share/OVMF/OVMF_VARS_4M.fd'],
    ['/usr/share/OVMF/OVMF_CODE.fd', '/usr/share/OVMF/OVMF_VARS.fd'],
  ];
  for (const [code, vars] of pairs) {
    if (fs.existsSync(code) && fs.existsSync(vars)) return { kind: 'pflash', code, vars };
  }
  for (const file of ['/usr/share/ovmf/OVMF.fd', '/usr/share/qemu/OVMF.fd']) {
    if (fs.existsSync(file)) return { kind: 'bios', file };
  }
  return null;
}

function qemuMissing(): string | null {
  const r = spawnSync(QEMU, ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return `${QEMU} not installed (Debian package qemu-system-x86)`;
  return null;
}

/**
 * Why qemu boot tests cannot run (null when they can): qemu missing, or — when `firmware`
 * includes uefi (the default) — OVMF missing.
 */
export function qemuUnavailableReason(firmware: 'bios' | 'uefi' | 'both' = 'both'): string | null {
  const q = qemuMissing();
  if (q) return q;
  if (firmware !== 'bios' && !findOvmf()) return 'OVMF firmware not found (Debian package ovmf)';
  return null;
}

function diskArgs(image: string, disk: BootOptions['disk'], format: NonNullable<BootOptions['format']>): string[] {
  // qemu writes no streamOptimized VMDK: the guest's writes (a root mounted rw) go to a temporary overlay.
  const file = `file=${image.replace(/,/g, ',,')},format=${format}${format === 'vmdk' ? ',snapshot=on' : ''}`;
  switch (disk) {
    case 'virtio':
      return ['-drive', `${file},if=virtio`];
    case 'ide':
      return ['-drive', `${file},if=ide,index=0,media=disk`];
    case 'scsi':
      return ['-device', 'virtio-scsi-pci,id=scsi0', '-drive', `${file},if=none,id=disk0`, '-device', 'scsi-hd,drive=disk0,bus=scsi0.0,bootindex=0'];
    case 'lsi-scsi':
      return ['-device', 'lsi53c895a,id=scsi0', '-drive', `${file},if=none,id=disk0`, '-device', 'scsi-hd,drive=disk0,bus=scsi0.0,bootindex=0'];
  }
}

function matches(text: string, marker: string | RegExp): boolean {
  return typeof marker === 'string' ? text.includes(marker) : marker.test(text);
}

export async function bootAndWaitFor(options: BootOptions): Promise<BootResult> {
  const { image, firmware, disk, marker, timeoutMs } = options;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qemu-boot-'));
  const serialFile = path.join(tmp, 'serial.log');
  fs.writeFileSync(serialFile, '');
  const args = [
    '-accel', 'tcg', '-machine', 'pc', '-m', String(options.memoryMiB ?? 512),
    '-display', 'none', '-monitor', 'none', '-no-reboot', '-nodefaults', '-vga', 'std',
    '-serial', `file:${serialFile}`,
  ];
  if (firmware === 'uefi') {
    const ovmf = findOvmf();
    if (!ovmf) throw new Error('OVMF firmware not found (Debian package ovmf)');
    if (ovmf.kind === 'pflash') {
      const vars = path.join(tmp, 'OVMF_VARS.fd');
      fs.copyFileSync(ovmf.vars, vars);
      args.push('-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${ovmf.code}`, '-drive', `if=pflash,format=raw,unit=1,file=${vars}`);
    } else {
      args.push('-bios', ovmf.file);
    }
  }
  args.push(...diskArgs(image, disk, options.format ?? 'raw'));
  if (options.nic) args.push('-nic', `user,model=${options.nic}`);

  const started = Date.now();
  const child = spawn(QEMU, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  let exited = false;
  const exitPromise = new Promise<void>((resolve) => {
    child.on('exit', () => { exited = true; resolve(); });
    child.on('error', (e) => { exited = true; stderr += String(e); resolve(); });
  });

  const readSerial = (): string => {
    try { return fs.readFileSync(serialFile, 'latin1'); } catch { return ''; }
  };
  let found = false;
  let serial = '';
  try {
    for (;;) {
      serial = readSerial();
      if (matches(serial, marker)) { found = true; break; }
      if (exited || Date.now() - started >= timeoutMs) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    if (!exited && child.pid !== undefined) child.kill('SIGKILL');
  }
  const seconds = Math.round((Date.now() - started) / 10) / 100;
  await exitPromise;
  serial = readSerial();
  if (!found) found = matches(serial, marker);
  if (stderr.trim()) serial += `\n[qemu stderr] ${stderr.trim()}\n`;
  fs.rmSync(tmp, { recursive: true, force: true });
  return { found, seconds, serial };
}

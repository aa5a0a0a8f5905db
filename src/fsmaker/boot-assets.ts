/**
 * Locates the default boot assets (Debian cloud kernel, its modules, a static busybox) in the
 * cache directory that scripts/fetch-kernel.sh fills:
 *   <cache>/kernel-<KVER>/boot/vmlinuz-<KVER>
 *   <cache>/kernel-<KVER>/lib/modules/<KVER>/
 *   <cache>/busybox
 * When several kernels are cached, the highest version (natural order) wins.
 */
import fs from 'node:fs';
import path from 'node:path';

export const FETCH_KERNEL_COMMAND = 'scripts/fetch-kernel.sh';

export interface BootAssets {
  status: 'ok';
  kernel: string;
  modulesDir: string;
  busybox: string;
  kernelVersion: string;
}

export interface MissingBootAssets {
  status: 'missing';
  /** What is missing, e.g. ["kernel", "busybox"]. */
  missing: Array<'kernel' | 'modules' | 'busybox'>;
  /** Human-readable explanation naming the paths looked at and the command to run. */
  message: string;
  /** The command that fetches the assets into this cache directory. */
  fetchCommand: string;
}

/** The default cache directory: $FSMAKER_CACHE or <repoRoot>/.cache/boot. */
export function defaultBootCacheDir(repoRoot: string, env: NodeJS.ProcessEnv = process.env): string {
  return env['FSMAKER_CACHE'] || path.join(repoRoot, '.cache', 'boot');
}

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}
function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

export function findDefaultBootAssets(cacheDir: string): BootAssets | MissingBootAssets {
  const collator = new Intl.Collator('en', { numeric: true });
  let versions: string[] = [];
  try {
    versions = fs
      .readdirSync(cacheDir)
      .filter((n) => n.startsWith('kernel-') && !n.endsWith('.tmp'))
      .map((n) => n.slice('kernel-'.length))
      .sort(collator.compare)
      .reverse();
  } catch {
    versions = [];
  }
  const missing: MissingBootAssets['missing'] = [];
  let found: { kernel: string; modulesDir: string; kernelVersion: string } | undefined;
  for (const v of versions) {
    const base = path.join(cacheDir, `kernel-${v}`);
    const kernel = path.join(base, 'boot', `vmlinuz-${v}`);
    const modulesDir = path.join(base, 'lib', 'modules', v);
    if (isFile(kernel) && isDir(modulesDir)) {
      found = { kernel, modulesDir, kernelVersion: v };
      break;
    }
  }
  if (!found) {
    const anyKernel = versions.some((v) => isFile(path.join(cacheDir, `kernel-${v}`, 'boot', `vmlinuz-${v}`)));
    if (!anyKernel) missing.push('kernel');
    missing.push('modules');
  }
  const busybox = path.join(cacheDir, 'busybox');
  if (!isFile(busybox)) missing.push('busybox');
  if (found && missing.length === 0) return { status: 'ok', ...found, busybox };
  const fetchCommand = `FSMAKER_CACHE=${cacheDir} ${FETCH_KERNEL_COMMAND}`;
  return {
    status: 'missing',
    missing,
    message:
      `boot assets missing in ${cacheDir}: ${missing.join(', ')} ` +
      `(expected kernel-<KVER>/boot/vmlinuz-<KVER>, kernel-<KVER>/lib/modules/<KVER>/, busybox); ` +
      `fetch them with: ${fetchCommand}`,
    fetchCommand,
  };
}

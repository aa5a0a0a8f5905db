/**
 * Test utility: a user-space NFS server (nfs-ganesha, VFS FSAL) exporting one directory over
 * NFSv4 on 127.0.0.1 at a fixed port, which a qemu guest on the user network reaches at
 * 10.0.2.2 (slirp forwards the guest's connections to the host's loopback). NFSv4 only: no
 * rpcbind, mountd or lock manager to register (ganesha warns that it cannot, and serves v4
 * anyway); graceless, so the guest's first open is not held for the 90 s grace period.
 * Everything it writes (config, pid, log, recovery directory) is in its own temporary directory,
 * removed by stop(); the daemon is killed by its pid on stop() and when the test process exits.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const GANESHA = 'ganesha.nfsd';

export interface NfsServer {
  /** The port on 127.0.0.1 (10.0.2.2 from the guest). */
  port: number;
  /** The NFSv4 pseudo path the directory is exported at. */
  pseudo: string;
  /** The daemon's log so far (for failure messages). */
  log(): string;
  stop(): void;
}

/** Why no NFS server can run here, or null. */
export function nfsServerUnavailableReason(): string | null {
  const r = spawnSync(GANESHA, ['-v'], { encoding: 'utf8' });
  if (r.error) return `${GANESHA} not installed (Debian package nfs-ganesha, with nfs-ganesha-vfs: scripts/setup.sh)`;
  if (!fs.existsSync('/usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so')) return 'the VFS FSAL of nfs-ganesha is missing (Debian package nfs-ganesha-vfs)';
  if (process.getuid?.() !== 0) return 'nfs-ganesha with the VFS FSAL needs root (open_by_handle_at)';
  return null;
}

function config(dir: string, exportDir: string, port: number, pseudo: string): string {
  return `NFS_CORE_PARAM {
	NFS_Port = ${port};
	Bind_addr = 127.0.0.1;
	Protocols = 4;
	Enable_NLM = false;
	Enable_RQUOTA = false;
	Enable_UDP = false;
	Plugins_Dir = "/usr/lib/x86_64-linux-gnu/ganesha";
}
NFSv4 {
	Graceless = true;
	RecoveryBackend = fs;
	RecoveryRoot = "${dir}/recovery";
	RecoveryDir = "v4recov";
	RecoveryOldDir = "v4old";
}
EXPORT {
	Export_Id = 1;
	Path = "${exportDir}";
	Pseudo = "${pseudo}";
	Access_Type = RW;
	Squash = No_Root_Squash;
	Protocols = 4;
	Transports = TCP;
	SecType = sys;
	FSAL { Name = VFS; }
}
LOG { Default_Log_Level = EVENT; }
`;
}

const portOpen = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });

/** Starts ganesha exporting `exportDir`; throws (with its log) when it does not listen within `timeoutMs`. */
export async function startNfsServer(exportDir: string, port = 20490, timeoutMs = 30_000): Promise<NfsServer> {
  if (await portOpen(port)) throw new Error(`port ${port} on 127.0.0.1 is already in use`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfs-ganesha-'));
  fs.mkdirSync(path.join(dir, 'recovery'));
  const pseudo = '/export';
  const conf = path.join(dir, 'ganesha.conf');
  const logFile = path.join(dir, 'ganesha.log');
  const pidFile = path.join(dir, 'ganesha.pid');
  fs.writeFileSync(conf, config(dir, exportDir, port, pseudo));
  fs.writeFileSync(logFile, '');
  const child = spawn(GANESHA, ['-F', '-f', conf, '-L', logFile, '-p', pidFile, '-N', 'NIV_EVENT'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  let exited = false;
  child.on('exit', () => { exited = true; });
  child.on('error', (e) => { exited = true; stderr += String(e); });
  const log = () => {
    let text = '';
    try { text = fs.readFileSync(logFile, 'utf8'); } catch { /* removed */ }
    return text + (stderr ? `\n[stderr] ${stderr}` : '');
  };
  let stopped = false;
  const kill = () => {
    if (!exited && child.pid !== undefined) {
      try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
    }
  };
  const onExit = () => kill();
  process.once('exit', onExit);
  const stop = () => {
    if (stopped) return;
    stopped = true;
    kill();
    process.removeListener('exit', onExit);
    // ganesha leaves nothing outside `dir` but its abstract sockets, which go with it.
    const deadline = Date.now() + 5000;
    while (!exited && Date.now() < deadline && child.pid !== undefined) {
      try { process.kill(child.pid, 0); } catch { break; }
      spawnSync('sleep', ['0.05']);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const started = Date.now();
  for (;;) {
    if (await portOpen(port)) break;
    if (exited || Date.now() - started > timeoutMs) {
      const text = log();
      stop();
      throw new Error(`nfs-ganesha did not listen on 127.0.0.1:${port}${exited ? ' (it exited)' : ''}: ${text.trim().split('\n').slice(-8).join(' | ')}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { port, pseudo, log, stop };
}

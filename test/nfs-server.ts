/**
 * Test utility: a user-space NFS server (nfs-ganesha, VFS FSAL) exporting one directory on
 * 127.0.0.1 at fixed ports, which a qemu guest on the user network reaches at 10.0.2.2 (slirp
 * forwards the guest's connections to the host's loopback). NFSv4 needs nothing else (ganesha
 * warns that it cannot register with rpcbind, and serves v4 anyway). NFSv3 needs the portmapper
 * (clients look up mountd and nfs there): rpcbind is started in the foreground when nothing
 * listens on port 111 yet, and stopped with the server. No lock manager (clients mount with
 * nolock). Graceless, so the guest's first open is not held for the 90 s grace period; v3 mounts
 * use the same pseudo path as v4 (Mount_Path_Pseudo).
 * Everything ganesha writes (config, pid, log, recovery directory) is in its own temporary
 * directory, removed by stop(); the daemons are killed by their pids on stop() and when the test
 * process exits.
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

function config(dir: string, exportDir: string, port: number, pseudo: string, versions: readonly number[]): string {
  return `NFS_CORE_PARAM {
	NFS_Port = ${port};
	MNT_Port = ${port + 1};
	Bind_addr = 127.0.0.1;
	Protocols = ${versions.join(', ')};
	Mount_Path_Pseudo = true;
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
	Protocols = ${versions.join(', ')};
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

const RPCBIND = '/usr/sbin/rpcbind';

/** rpcbind in the foreground, or null when a portmapper already listens (then it is left alone). */
async function startRpcbind(): Promise<{ stop(): void } | null> {
  if (await portOpen(111)) return null;
  if (!fs.existsSync(RPCBIND)) throw new Error('NFSv3 needs rpcbind (Debian package rpcbind: scripts/setup.sh)');
  const leftovers = ['/run/rpcbind.sock', '/run/rpcbind.lock'].filter((f) => !fs.existsSync(f));
  const child = spawn(RPCBIND, ['-f'], { stdio: 'ignore' });
  let exited = false;
  child.on('exit', () => { exited = true; });
  child.on('error', () => { exited = true; });
  const kill = () => {
    if (!exited && child.pid !== undefined) try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
  };
  process.once('exit', kill);
  const stop = () => {
    kill();
    process.removeListener('exit', kill);
    const deadline = Date.now() + 5000;
    while (!exited && Date.now() < deadline && child.pid !== undefined) {
      try { process.kill(child.pid, 0); } catch { break; }
      spawnSync('sleep', ['0.05']);
    }
    for (const f of leftovers) fs.rmSync(f, { force: true }); // what it created, not what was there
  };
  const started = Date.now();
  while (!(await portOpen(111))) {
    if (exited || Date.now() - started > 10_000) {
      stop();
      throw new Error(`rpcbind did not listen on port 111${exited ? ' (it exited)' : ''}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { stop };
}

export interface NfsServerOptions {
  /** NFS on this port, mountd on the next (default 20490). */
  port?: number;
  /** NFS versions to serve (default [4]; 3 starts rpcbind when none runs). */
  versions?: ReadonlyArray<3 | 4>;
  timeoutMs?: number;
}

/** Starts ganesha exporting `exportDir`; throws (with its log) when it does not listen within the time-out. */
export async function startNfsServer(exportDir: string, options: NfsServerOptions = {}): Promise<NfsServer> {
  const port = options.port ?? 20490;
  const versions = options.versions ?? [4];
  const timeoutMs = options.timeoutMs ?? 30_000;
  if (await portOpen(port)) throw new Error(`port ${port} on 127.0.0.1 is already in use`);
  const rpcbind = versions.includes(3) ? await startRpcbind() : null;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfs-ganesha-'));
  fs.mkdirSync(path.join(dir, 'recovery'));
  const pseudo = '/export';
  const conf = path.join(dir, 'ganesha.conf');
  const logFile = path.join(dir, 'ganesha.log');
  const pidFile = path.join(dir, 'ganesha.pid');
  fs.writeFileSync(conf, config(dir, exportDir, port, pseudo, versions));
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
    rpcbind?.stop();
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
    if (await portOpen(port) && (!versions.includes(3) || (await portOpen(port + 1)))) break;
    if (exited || Date.now() - started > timeoutMs) {
      const text = log();
      stop();
      throw new Error(`nfs-ganesha did not listen on 127.0.0.1:${port}${exited ? ' (it exited)' : ''}: ${text.trim().split('\n').slice(-8).join(' | ')}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { port, pseudo, log, stop };
}

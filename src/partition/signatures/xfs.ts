/** XFS as libblkid accepts it: "XFSB" at 0 and a superblock whose geometry is sane (xfs_verify_sb). */
import { type Prober, magic } from './types.js';

/** xfs_sb fields (big-endian). */
const SB = { blockSize: 4, dataBlocks: 8, realtimeExtentSize: 80, agBlocks: 84, agCount: 88, sectorSize: 102, inodeSize: 104, blockLog: 120, sectorLog: 121, inodeLog: 122, inodesPerBlockLog: 123, inodeMaxPercent: 127 } as const;
const SB_BYTES = 160;
const MIN_AG_BLOCKS = 64n;

const inRange = (v: number, min: number, max: number): boolean => v >= min && v <= max;

function saneXfsSuperblock(sb: Buffer): boolean {
  const blockSize = sb.readUInt32BE(SB.blockSize);
  const dataBlocks = sb.readBigUInt64BE(SB.dataBlocks);
  const agBlocks = sb.readUInt32BE(SB.agBlocks);
  const agCount = sb.readUInt32BE(SB.agCount);
  const sectorSize = sb.readUInt16BE(SB.sectorSize);
  const inodeSize = sb.readUInt16BE(SB.inodeSize);
  const blockLog = sb[SB.blockLog]!;
  const sectorLog = sb[SB.sectorLog]!;
  const inodeLog = sb[SB.inodeLog]!;
  // C multiplies these two 32-bit fields in 32 bits: keep its wrap-around.
  const realtimeExtentBytes = Math.imul(sb.readUInt32BE(SB.realtimeExtentSize), blockSize) >>> 0;
  return (
    agCount > 0 &&
    inRange(sectorSize, 512, 32768) &&
    inRange(sectorLog, 9, 15) &&
    sectorSize === 2 ** sectorLog &&
    inRange(blockSize, 512, 65536) &&
    inRange(blockLog, 9, 16) &&
    blockSize === 2 ** blockLog &&
    inRange(inodeSize, 256, 2048) &&
    inRange(inodeLog, 8, 11) &&
    inodeSize === 2 ** inodeLog &&
    blockLog - inodeLog === sb[SB.inodesPerBlockLog] &&
    inRange(realtimeExtentBytes, 4096, 1024 * 1024 * 1024) &&
    sb[SB.inodeMaxPercent]! <= 100 &&
    dataBlocks !== 0n &&
    dataBlocks <= BigInt(agCount) * BigInt(agBlocks) &&
    dataBlocks >= BigInt(agCount - 1) * BigInt(agBlocks) + MIN_AG_BLOCKS
  );
}

const xfs: Prober = {
  type: 'xfs',
  usage: 'filesystem',
  magics: [magic('XFSB', 0)],
  check(view) {
    const sb = view.read(0, SB_BYTES);
    return sb !== null && saneXfsSuperblock(sb);
  },
};

export const XFS_PROBERS: readonly Prober[] = [xfs];

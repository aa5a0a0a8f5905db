/**
 * sfdisk's command line on ptable's subcommands (src/cli/sfdisk-argv.ts): what an sfdisk script
 * line becomes, for each of sfdisk's action options and its write forms.
 */
import { describe, expect, it } from 'vitest';
import { sfdiskArgv } from '../src/cli/sfdisk-argv.js';

const SUBCOMMANDS = new Set(['show', 'dump', 'check', 'write', 'grow', 'relocate', 'delete', 'part-type', 'activate', 'reorder']);
const map = (line: string): string => sfdiskArgv(line.split(' ').filter(Boolean), SUBCOMMANDS).join(' ');

describe("sfdisk's command line", () => {
  it('leaves a command line that names a subcommand as it is', () => {
    expect(map('dump --json d.img')).toBe('dump --json d.img');
    expect(map('--sector-size 4096 write --size 2G d.img')).toBe('--sector-size 4096 write --size 2G d.img');
    expect(map('--help')).toBe('--help');
    expect(map('-v')).toBe('-v');
  });

  it('maps the action options onto subcommands, their words kept in order', () => {
    expect(map('--delete d.img 2 3')).toBe('delete d.img 2 3');
    expect(map('--part-type d.img 1 C12A7328-F81F-11D2-BA4B-00A0C93EC93B')).toBe('part-type d.img 1 C12A7328-F81F-11D2-BA4B-00A0C93EC93B');
    expect(map('--part-label d.img 1 EFI')).toBe('part-label d.img 1 EFI');
    expect(map('-A d.img 1')).toBe('activate d.img 1');
    expect(map('--activate d.img')).toBe('activate d.img');
    expect(map('-r d.img')).toBe('reorder d.img');
    expect(map('-d d.img')).toBe('dump d.img');
    expect(map('--dump d.img')).toBe('dump d.img');
    expect(map('-J d.img')).toBe('dump --json d.img');
    expect(map('-V d.img')).toBe('check d.img');
    expect(map('--verify d.img')).toBe('check d.img');
    expect(map('-l d.img')).toBe('show d.img');
  });

  it("drops the options only a change uses before the commands that only read", () => {
    expect(map('--no-reread --no-tell-kernel -q --dump d.img')).toBe('dump d.img');
    expect(map('-f --lock=no -J d.img')).toBe('dump --json d.img');
    expect(map('-q --delete d.img 1')).toBe('delete -q d.img 1');
  });

  it('takes --relocate OPER as the mode of relocate, in both spellings', () => {
    expect(map('--relocate gpt-bak-std d.img')).toBe('relocate --mode gpt-bak-std d.img');
    expect(map('--relocate=gpt-bak-mini d.img')).toBe('relocate --mode gpt-bak-mini d.img');
  });

  it('reads a bare DISK as write, and DISK N as write -N N+1 (sfdisk counts the positional N from 0)', () => {
    expect(map('d.img')).toBe('write d.img');
    expect(map('d.img 2')).toBe('write -N 3 d.img');
    expect(map('d.img x')).toBe('write -N x d.img');
    expect(map('-N 3 d.img')).toBe('write -N 3 d.img');
    expect(map('--no-reread -N1 d.img')).toBe('write --no-reread -N1 d.img');
    expect(map('--wipe always --label dos d.img')).toBe('write --wipe always --label dos d.img');
    expect(map('--append --no-reread d.img')).toBe('write --append --no-reread d.img');
  });

  it("keeps the program's own options before the subcommand", () => {
    expect(map('--sector-size 4096 --delete d.img 1')).toBe('--sector-size 4096 delete d.img 1');
    expect(map('--debug d.img')).toBe('--debug write d.img');
  });

  it('does not take an option value for a subcommand or a disk', () => {
    // "dump" here is the value of --label, not the dump subcommand; "-X" likewise.
    expect(map('-X dos write.img')).toBe('write -X dos write.img');
    expect(map('--wipe never d.img')).toBe('write --wipe never d.img');
  });

  it('gives --move-data=LOGFILE its file in an option of its own, and a bare --move-data none', () => {
    expect(map('--move-data=/tmp/log -N1 d.img')).toBe('write --move-data --move-data-log /tmp/log -N1 d.img');
    expect(map('write -N 1 --move-data=/tmp/log d.img')).toBe('write -N 1 --move-data --move-data-log /tmp/log d.img');
    expect(map('--move-data -N1 d.img')).toBe('write --move-data -N1 d.img');
  });

  it('passes words after -- as words', () => {
    expect(map('--delete -- -odd-name.img 1')).toBe('delete -odd-name.img 1');
  });
});

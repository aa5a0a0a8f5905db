/**
 * A swap partition's signature (pure): the first page as mkswap writes it (swap header version 1:
 * last page, no bad pages, UUID, label, "SWAPSPACE2" at the end of the page). The rest of the
 * partition stays a hole: the kernel needs nothing else to swapon it.
 */
export const SWAP_PAGE_BYTES = 4096;

export interface SwapOptions {
  sizeBytes: number;
  /** 8-4-4-4-12 hex digits. */
  uuid: string;
  label?: string;
}

export function swapHeader(options: SwapOptions): Buffer {
  const pages = Math.floor(options.sizeBytes / SWAP_PAGE_BYTES);
  if (pages < 10) throw new RangeError(`swapHeader: ${options.sizeBytes} bytes is under mkswap's 10 pages`); // the layout check refuses it first
  const page = Buffer.alloc(SWAP_PAGE_BYTES);
  page.writeUInt32LE(1, 1024); // version
  page.writeUInt32LE(Math.min(pages - 1, 0xffffffff), 1028); // last_page
  page.writeUInt32LE(0, 1032); // nr_badpages
  Buffer.from(options.uuid.replace(/-/g, ''), 'hex').copy(page, 1036);
  if (options.label) Buffer.from(options.label).subarray(0, 16).copy(page, 1052);
  page.write('SWAPSPACE2', SWAP_PAGE_BYTES - 10, 'latin1');
  return page;
}

/**
 * Node built-ins that only some runs need, loaded on first use. Every run pays for what a command
 * imports: measured on a small copy (115 ms in all, 79 ms of it Node's own start-up), importing
 * node:zlib with node:stream costs 6 ms, node:crypto 3.5 ms (an ESM import of a built-in
 * evaluates all of its lazily loaded parts) and node:worker_threads 6 ms; require() loads only
 * what is used, when it is used.
 */
import { createRequire } from 'node:module';

const load = createRequire(import.meta.url);

export const zlib = (): typeof import('node:zlib') => load('node:zlib');
export const stream = (): typeof import('node:stream') => load('node:stream');
export const crypto = (): typeof import('node:crypto') => load('node:crypto');
export const workerThreads = (): typeof import('node:worker_threads') => load('node:worker_threads');

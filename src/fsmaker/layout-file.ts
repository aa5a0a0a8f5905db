/**
 * `fsmaker --layout FILE`: a layout from YAML (the schema is the README's). Every problem is
 * found, not just the first: YAML syntax, unknown keys (a typo is never ignored), values of the
 * wrong kind, then checkLayout's rules; each is one line naming FILE:LINE (yaml's LineCounter),
 * all of them in one LAYOUT_INVALID error. Relative paths are relative to FILE's directory.
 */
import fs from 'node:fs';
import path from 'node:path';
import { type Document, isMap, isScalar, isSeq, LineCounter, type Node, parseDocument, type YAMLMap } from 'yaml';
import { ToolError, describeSystemError } from '../errors.js';
import { parseSize } from '../size.js';
import { type Bootloader, type FieldPath, type LayoutProblem, type LayoutSpec, type PartitionContents, type PartitionSpec, checkLayout } from './layout-model.js';

/** A layout file holds a few dozen lines: anything this large is not one. */
const MAX_LAYOUT_BYTES = 1024 * 1024;

const TOP_KEYS = ['label', 'size', 'bootloader', 'seed', 'kernel', 'initrd', 'timeout', 'cmdline', 'output', 'partitions'] as const;
const CMDLINE_KEYS = ['root', 'append', 'serial'] as const;
const OUTPUT_KEYS = ['path', 'format', 'pad'] as const;
const PARTITION_KEYS = ['number', 'name', 'size', 'type', 'uuid', 'bootable', 'legacy-bios-bootable', 'mount', 'esp', 'contents'] as const;
const CONTENTS_KEYS: Record<PartitionContents['kind'], readonly string[]> = {
  ext4: ['kind', 'from', 'label'],
  fat: ['kind', 'from', 'label'],
  image: ['kind', 'path'],
  swap: ['kind', 'label', 'uuid'],
  mkfs: ['kind', 'fs'],
  empty: ['kind'],
};
const KINDS = Object.keys(CONTENTS_KEYS) as PartitionContents['kind'][];

/** Reads and checks FILE; refuses it with every problem found (LAYOUT_INVALID). */
export function readLayoutFile(file: string): LayoutSpec {
  let text: string;
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) throw new ToolError('LAYOUT_INVALID', `${file}: the layout is not a regular file`);
    if (st.size > MAX_LAYOUT_BYTES) throw new ToolError('LAYOUT_INVALID', `${file}: ${st.size} bytes is not a layout file (at most ${MAX_LAYOUT_BYTES})`);
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof ToolError) throw err;
    throw new ToolError('LAYOUT_INVALID', `${file}: cannot read the layout: ${describeSystemError(err)}`);
  }
  return parseLayout(text, file, path.dirname(file));
}

/** A layout from YAML text; `name` is for messages, `baseDir` what relative paths are relative to. */
export function parseLayout(text: string, name: string, baseDir: string): LayoutSpec {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const messages: { line: number; text: string }[] = [];
  const lineOf = (offset: number | undefined): number => (offset === undefined ? 1 : lineCounter.linePos(offset).line);
  for (const e of doc.errors) messages.push({ line: e.linePos?.[0].line ?? lineOf(e.pos[0]), text: e.message.split('\n')[0]! });
  if (messages.length > 0) throw refusal(name, messages);
  const reader = new Reader(doc, baseDir);
  const spec = reader.layout();
  for (const p of reader.problems) messages.push({ line: lineOf(reader.offsetOf(p.path)), text: p.message });
  // The rules between fields only make sense on fields that were read.
  if (reader.problems.length === 0) for (const p of checkLayout(spec)) messages.push({ line: lineOf(reader.offsetOf(p.path)), text: p.message });
  if (messages.length > 0) throw refusal(name, messages);
  return spec;
}

function refusal(name: string, messages: { line: number; text: string }[]): ToolError {
  const lines = [...messages].sort((a, b) => a.line - b.line).map((m) => `${name}:${m.line}: ${m.text}`);
  return new ToolError('LAYOUT_INVALID', lines.join('\n'));
}

/** Reads the document's fields into a LayoutSpec, noting each problem with the path to blame. */
class Reader {
  readonly problems: LayoutProblem[] = [];

  constructor(
    private readonly doc: Document,
    private readonly baseDir: string,
  ) {}

  /** Where the node at `at` (or the nearest one above it) starts. */
  offsetOf(at: FieldPath): number | undefined {
    for (let n = at.length; n >= 0; n--) {
      const last = at[n - 1];
      // A field is blamed on its key's line ('partitions:', not its first item's).
      if (typeof last === 'string') {
        const parent = n === 1 ? this.doc.contents : this.doc.getIn(at.slice(0, n - 1), true);
        const pair = isMap(parent) ? parent.items.find((item) => isScalar(item.key) && item.key.value === last) : undefined;
        if (pair && isScalar(pair.key) && pair.key.range) return pair.key.range[0];
      }
      const node = (n === 0 ? this.doc.contents : this.doc.getIn(at.slice(0, n), true)) as Node | undefined;
      if (node && typeof node === 'object' && 'range' in node && node.range) return node.range[0];
    }
    return undefined;
  }

  private problem(at: FieldPath, message: string): void {
    this.problems.push({ path: at, message });
  }

  private node(at: FieldPath): unknown {
    return at.length === 0 ? this.doc.contents : this.doc.getIn(at, true);
  }

  /** The mapping at `at`, its unknown keys reported; null when it is absent or not a mapping. */
  private map(at: FieldPath, keys: readonly string[], what: string): YAMLMap | null {
    const node = this.node(at);
    if (node === undefined || node === null) return null;
    if (!isMap(node)) {
      this.problem(at, `${what} must be a mapping`);
      return null;
    }
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      if (!keys.includes(key)) this.problem([...at, key], `unknown key '${key}' in ${what} (expected ${keys.join(', ')})`);
    }
    return node;
  }

  private has(at: FieldPath): boolean {
    return this.doc.hasIn(at);
  }

  private scalar(at: FieldPath): unknown {
    const node = this.node(at);
    if (node === undefined) return undefined;
    if (!isScalar(node)) {
      this.problem(at, `${at[at.length - 1]} must be a single value`);
      return undefined;
    }
    return node.value;
  }

  private string(at: FieldPath): string | undefined {
    const v = this.scalar(at);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string' || v === '') {
      this.problem(at, `${at[at.length - 1]} must be a non-empty string, not ${JSON.stringify(v)}`);
      return undefined;
    }
    return v;
  }

  private path(at: FieldPath): string | undefined {
    const v = this.string(at);
    return v === undefined ? undefined : path.resolve(this.baseDir, v);
  }

  private boolean(at: FieldPath): boolean | undefined {
    const v = this.scalar(at);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'boolean') {
      this.problem(at, `${at[at.length - 1]} must be true or false, not ${JSON.stringify(v)}`);
      return undefined;
    }
    return v;
  }

  private oneOf<T extends string>(at: FieldPath, choices: readonly T[]): T | undefined {
    const v = this.string(at);
    if (v === undefined) return undefined;
    if (!(choices as readonly string[]).includes(v)) {
      this.problem(at, `${at[at.length - 1]} '${v}': expected ${choices.join(', ')}`);
      return undefined;
    }
    return v as T;
  }

  /** Bytes: a number, or a size with a suffix (K M G T, as the command line's). */
  private bytes(at: FieldPath, what: string): number | undefined {
    const v = this.scalar(at);
    if (v === undefined || v === null) return undefined;
    try {
      if (typeof v === 'number') {
        if (!Number.isSafeInteger(v) || v <= 0) throw new ToolError('USAGE', `bad ${what} ${v}: expected a positive whole number of bytes`);
        return v;
      }
      if (typeof v === 'string') return parseSize(v, 1, what);
      throw new ToolError('USAGE', `bad ${what} ${JSON.stringify(v)}: expected bytes or a size such as 512M`);
    } catch (err) {
      if (!(err instanceof ToolError)) throw err;
      this.problem(at, err.message);
      return undefined;
    }
  }

  private wholeNumber(at: FieldPath, what: string): number | undefined {
    const v = this.scalar(at);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      this.problem(at, `bad ${what} ${JSON.stringify(v)}: expected a whole number`);
      return undefined;
    }
    return v;
  }

  layout(): LayoutSpec {
    const top = this.map([], TOP_KEYS, 'the layout');
    if (!top) {
      this.problem([], 'a layout is a mapping with label, bootloader and partitions');
      return { label: 'gpt', partitions: [], bootloader: 'none', cmdline: {} };
    }
    const label = this.oneOf(['label'], ['gpt', 'mbr'] as const);
    if (!this.has(['label'])) this.problem([], 'label is missing (gpt or mbr)');
    const bootloader: Bootloader = this.oneOf(['bootloader'], ['bios', 'uefi', 'both', 'none'] as const) ?? 'both';
    const spec: LayoutSpec = { label: label ?? 'gpt', partitions: this.partitions(), bootloader, cmdline: {} };
    const size = this.bytes(['size'], 'disk size');
    if (size !== undefined) spec.size = size;
    const seed = this.string(['seed']);
    if (seed !== undefined) spec.seed = seed;
    const kernel = this.path(['kernel']);
    if (kernel !== undefined) spec.kernel = kernel;
    const initrd = this.path(['initrd']);
    if (initrd !== undefined) spec.initrd = initrd;
    const timeout = this.wholeNumber(['timeout'], 'timeout');
    if (timeout !== undefined) spec.timeout = timeout;
    if (this.map(['cmdline'], CMDLINE_KEYS, 'cmdline')) {
      const root = this.string(['cmdline', 'root']);
      if (root !== undefined) {
        if (/\s/.test(root)) this.problem(['cmdline', 'root'], `root '${root}' must be one word (extra arguments go in append)`);
        spec.cmdline.root = root;
      }
      const append = this.string(['cmdline', 'append']);
      if (append !== undefined) spec.cmdline.append = append;
      const serial = this.boolean(['cmdline', 'serial']);
      if (serial !== undefined) spec.cmdline.serial = serial;
    }
    if (this.map(['output'], OUTPUT_KEYS, 'output')) {
      const output: NonNullable<LayoutSpec['output']> = {};
      const p = this.string(['output', 'path']);
      if (p !== undefined) output.path = p === '-' ? p : path.resolve(this.baseDir, p);
      const format = this.string(['output', 'format']);
      if (format !== undefined) output.format = format;
      const pad = this.bytes(['output', 'pad'], 'pad size');
      if (pad !== undefined) output.pad = pad;
      spec.output = output;
    }
    return spec;
  }

  private partitions(): PartitionSpec[] {
    const node = this.node(['partitions']);
    if (node === undefined || node === null) {
      this.problem([], 'partitions is missing (a list)');
      return [];
    }
    if (!isSeq(node)) {
      this.problem(['partitions'], 'partitions must be a list');
      return [];
    }
    return node.items.map((_, i) => this.partition(i));
  }

  private partition(i: number): PartitionSpec {
    const at = (...rest: string[]): FieldPath => ['partitions', i, ...rest];
    const p: PartitionSpec = { contents: { kind: 'empty' } };
    if (!this.map(at(), PARTITION_KEYS, `partition ${i + 1}`)) {
      this.problem(at(), `partition ${i + 1} must be a mapping (size, type, contents...)`);
      return p;
    }
    const number = this.wholeNumber(at('number'), 'partition number');
    if (number !== undefined) p.number = number;
    const name = this.string(at('name'));
    if (name !== undefined) p.name = name;
    if (this.scalar(at('size')) === 'rest') p.size = 'rest';
    else {
      const size = this.bytes(at('size'), 'partition size');
      if (size !== undefined) p.size = size;
    }
    const type = this.scalar(at('type'));
    // An MBR code written bare (83) is a number to YAML: it is the hex code all the same.
    if (typeof type === 'number' && Number.isInteger(type)) p.type = String(type);
    else {
      const t = this.string(at('type'));
      if (t !== undefined) p.type = t;
    }
    const uuid = this.string(at('uuid'));
    if (uuid !== undefined) p.uuid = uuid;
    const bootable = this.boolean(at('bootable'));
    if (bootable !== undefined) p.bootable = bootable;
    const legacy = this.boolean(at('legacy-bios-bootable'));
    if (legacy !== undefined) p.legacyBiosBootable = legacy;
    const mount = this.oneOf(at('mount'), ['/', '/boot'] as const);
    if (mount !== undefined) p.mount = mount;
    const esp = this.boolean(at('esp'));
    if (esp !== undefined) p.esp = esp;
    if (!this.has(at('contents'))) this.problem(at(), `partition ${i + 1} has no contents (${KINDS.join(', ')})`);
    else p.contents = this.contents(at('contents'));
    return p;
  }

  private contents(at: FieldPath): PartitionContents {
    const node = this.node(at);
    const empty: PartitionContents = { kind: 'empty' };
    if (isScalar(node)) {
      const kind = this.oneOf(at, KINDS);
      if (kind === undefined) return empty;
      if (kind === 'empty' || kind === 'swap' || kind === 'fat') return { kind };
      this.problem(at, `contents ${kind} needs its ${kind === 'image' ? 'path' : kind === 'mkfs' ? 'fs' : 'from'}: write it as a mapping (kind: ${kind}, ...)`);
      return empty;
    }
    const kind = isMap(node) ? this.oneOf([...at, 'kind'], KINDS) : undefined;
    if (!isMap(node)) {
      this.problem(at, `contents must be ${KINDS.join(', ')} or a mapping with kind`);
      return empty;
    }
    if (kind === undefined) {
      if (!this.has([...at, 'kind'])) this.problem(at, `contents has no kind (${KINDS.join(', ')})`);
      return empty;
    }
    this.map(at, CONTENTS_KEYS[kind], `${kind} contents`);
    const need = (key: string, value: string | undefined): string => {
      if (value === undefined && !this.has([...at, key])) this.problem(at, `${kind} contents need ${key}`);
      return value ?? '';
    };
    const label = this.string([...at, 'label']);
    const withLabel = label !== undefined ? { label } : {};
    switch (kind) {
      case 'ext4':
        return { kind, from: need('from', this.path([...at, 'from'])), ...withLabel };
      case 'fat': {
        const from = this.path([...at, 'from']);
        return { kind, ...(from !== undefined ? { from } : {}), ...withLabel };
      }
      case 'image':
        return { kind, path: need('path', this.path([...at, 'path'])) };
      case 'swap': {
        const uuid = this.string([...at, 'uuid']);
        return { kind, ...withLabel, ...(uuid !== undefined ? { uuid } : {}) };
      }
      case 'mkfs':
        return { kind, fs: need('fs', this.string([...at, 'fs'])) };
      default:
        return empty;
    }
  }
}

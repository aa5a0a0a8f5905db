/**
 * A layout as the YAML `--layout` reads (pure): what `--print-config` shows, so that a resolved
 * layout (every size, number and GUID decided) can be saved and built again as it is.
 */
import { stringify } from 'yaml';
import type { LayoutSpec, PartitionContents, PartitionSpec } from './layout-model.js';

const defined = <T extends object>(o: T): Partial<T> => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;

function contentsYaml(c: PartitionContents): unknown {
  if (c.kind === 'empty') return 'empty';
  return defined({ ...c });
}

function partitionYaml(p: PartitionSpec): unknown {
  return defined({
    number: p.number,
    name: p.name,
    size: p.size,
    type: p.type,
    uuid: p.uuid,
    bootable: p.bootable,
    'legacy-bios-bootable': p.legacyBiosBootable,
    mount: p.mount,
    esp: p.esp,
    contents: contentsYaml(p.contents),
  });
}

export function layoutYaml(spec: LayoutSpec): string {
  const cmdline = defined({ ...spec.cmdline });
  const output = spec.output ? defined({ ...spec.output }) : undefined;
  const doc = defined({
    label: spec.label,
    size: spec.size,
    bootloader: spec.bootloader,
    seed: spec.seed,
    kernel: spec.kernel,
    initrd: spec.initrd,
    timeout: spec.timeout,
    cmdline: Object.keys(cmdline).length > 0 ? cmdline : undefined,
    output: output && Object.keys(output).length > 0 ? output : undefined,
    partitions: spec.partitions.map(partitionYaml),
  });
  // Type codes stay strings ('83' read back as the number 83 would still be the hex code, but '0c' would not).
  return stringify(doc, { defaultStringType: 'PLAIN', defaultKeyType: 'PLAIN', lineWidth: 0 });
}

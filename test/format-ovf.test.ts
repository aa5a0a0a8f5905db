/**
 * ovf.ts (issue 12, OVA): the envelope is well-formed XML (xmllint) and says what it was given:
 * file size, capacity, populated size, the controller of the adapter type with the disk on it,
 * CPUs, memory, vmx version, firmware; names are escaped; the manifest has ESXi's syntax.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { MAX_OVF_BYTES, OvfError, type OvfOptions, VMDK_STREAM_OPTIMIZED_FORMAT, firstOvfDisk, ovfEnvelope, ovfManifest, xmlEscape } from '../src/format/ovf.js';
import { measured, mutants } from './hostile.js';

const base: OvfOptions = {
  name: 'web',
  diskFile: 'web-disk1.vmdk',
  diskFileBytes: 123_456_789,
  capacityBytes: 2 ** 34 + 512,
  populatedBytes: 987_654_321,
  cpus: 3,
  memoryMiB: 3072,
  hardwareVersion: 13,
  adapterType: 'lsilogic',
};

/**
 * What Python's ElementTree finds in the envelope: the text of the first element at `path`
 * (ElementTree's XPath subset, with the ovf/rasd/vssd/vmw prefixes), or its attribute `@attr` (a
 * prefixed name); "#count" counts the matches. An independent reader of the XML, not ours.
 */
function xpath(xml: string, expression: string): string {
  const [path, attr] = expression.split('/@') as [string, string | undefined];
  const program = `
import sys, xml.etree.ElementTree as ET
ns = {'ovf': 'http://schemas.dmtf.org/ovf/envelope/1', 'rasd': 'http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData',
      'vssd': 'http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData', 'vmw': 'http://www.vmware.com/schema/ovf'}
root = ET.fromstring(sys.stdin.buffer.read())
path, attr = sys.argv[1], sys.argv[2]
found = root.findall(path, ns)
if attr == '#count': print(len(found)); sys.exit()
if not found: sys.exit()
e = found[0]
if attr:
    p, n = attr.split(':')
    print(e.get('{%s}%s' % (ns[p], n), ''))
else:
    print(e.text or '')
`;
  return execFileSync('python3', ['-c', program, path.replace(/^\/\//, './/'), attr ?? ''], { input: xml, encoding: 'utf8' }).replace(/\n$/, '');
}

const item = (type: number, field: string) => `//ovf:VirtualHardwareSection/ovf:Item[rasd:ResourceType='${type}']/rasd:${field}`;

describe('the OVF envelope', () => {
  it('is well-formed XML (xmllint --noout)', () => {
    for (const adapterType of ['ide', 'lsilogic', 'buslogic'] as const) {
      const r = spawnSync('xmllint', ['--noout', '-'], { input: ovfEnvelope({ ...base, adapterType, firmware: 'efi' }), encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
    }
  });

  it('says the file size, capacity, populated size and streamOptimized format of the disk', () => {
    const xml = ovfEnvelope(base);
    expect(xpath(xml, '//ovf:References/ovf:File/@ovf:href')).toBe('web-disk1.vmdk');
    expect(xpath(xml, '//ovf:References/ovf:File/@ovf:size')).toBe('123456789');
    expect(xpath(xml, '//ovf:Disk/@ovf:capacity')).toBe(String(2 ** 34 + 512));
    expect(xpath(xml, '//ovf:Disk/@ovf:capacityAllocationUnits')).toBe('byte');
    expect(xpath(xml, '//ovf:Disk/@ovf:populatedSize')).toBe('987654321');
    expect(xpath(xml, '//ovf:Disk/@ovf:format')).toBe(VMDK_STREAM_OPTIMIZED_FORMAT);
    expect(xpath(xml, '//ovf:Disk/@ovf:fileRef')).toBe(xpath(xml, '//ovf:References/ovf:File/@ovf:id'));
  });

  it('says the CPUs, memory, vmx version, and a network adapter on the one network', () => {
    const xml = ovfEnvelope(base);
    expect(xpath(xml, item(3, 'VirtualQuantity'))).toBe('3');
    expect(xpath(xml, item(4, 'VirtualQuantity'))).toBe('3072');
    expect(xpath(xml, item(4, 'AllocationUnits'))).toBe('byte * 2^20');
    expect(xpath(xml, '//vssd:VirtualSystemType')).toBe('vmx-13');
    expect(xpath(xml, item(10, 'ResourceSubType'))).toBe('E1000');
    expect(xpath(xml, item(10, 'Connection'))).toBe(xpath(xml, '//ovf:NetworkSection/ovf:Network/@ovf:name'));
    expect(xpath(xml, '//ovf:OperatingSystemSection/@ovf:id')).toBe('101');
  });

  it('puts the disk on the controller of its adapter type: IDE (5), or SCSI (6) of that kind', () => {
    for (const [adapterType, type, subType] of [['ide', 5, ''], ['lsilogic', 6, 'lsilogic'], ['buslogic', 6, 'buslogic']] as const) {
      const xml = ovfEnvelope({ ...base, adapterType });
      const controller = xpath(xml, item(type, 'InstanceID'));
      expect(controller, adapterType).not.toBe('');
      expect(xpath(xml, item(type, 'ResourceSubType'))).toBe(subType);
      expect(xpath(xml, item(17, 'Parent'))).toBe(controller);
      expect(xpath(xml, item(17, 'HostResource'))).toBe(`ovf:/disk/${xpath(xml, '//ovf:Disk/@ovf:diskId')}`);
      expect(xpath(xml, `//ovf:Item[rasd:ResourceType='${type === 5 ? 6 : 5}']/@#count`)).toBe('0');
    }
  });

  it('names the firmware only when asked', () => {
    expect(xpath(ovfEnvelope({ ...base, firmware: 'efi' }), '//ovf:VirtualHardwareSection/vmw:Config/@vmw:value')).toBe('efi');
    expect(xpath(ovfEnvelope({ ...base, firmware: 'bios' }), '//ovf:VirtualHardwareSection/vmw:Config/@vmw:value')).toBe('bios');
    expect(ovfEnvelope(base)).not.toContain('firmware');
  });

  it('escapes the names it is given', () => {
    const name = `a<b>&"c'`;
    const xml = ovfEnvelope({ ...base, name, diskFile: `${name}-disk1.vmdk` });
    expect(spawnSync('xmllint', ['--noout', '-'], { input: xml }).status).toBe(0);
    expect(xpath(xml, '//ovf:VirtualSystem/ovf:Name')).toBe(name);
    expect(xpath(xml, '//ovf:References/ovf:File/@ovf:href')).toBe(`${name}-disk1.vmdk`);
    expect(xmlEscape('<&>')).toBe('&lt;&amp;&gt;');
  });

  it('refuses numbers that are not whole, or out of range', () => {
    expect(() => ovfEnvelope({ ...base, cpus: 0 })).toThrow(/CPU count/);
    expect(() => ovfEnvelope({ ...base, capacityBytes: 1.5 })).toThrow(/capacity/);
    expect(() => ovfEnvelope({ ...base, adapterType: 'scsi' as never })).toThrow(/adapter type/);
  });
});

describe('the manifest', () => {
  it('is SHA256(name)= hex lines, no space before "(", one after "="', () => {
    expect(ovfManifest([{ name: 'a.ovf', sha256: 'ab' }, { name: 'a-disk1.vmdk', sha256: 'cd' }])).toBe('SHA256(a.ovf)= ab\nSHA256(a-disk1.vmdk)= cd\n');
  });
});

describe('reading the first disk of an OVF (OVA input)', () => {
  it("finds what the writer wrote: the disk's file and format", () => {
    expect(firstOvfDisk(ovfEnvelope({ ...base, diskFile: 'a&b-disk1.vmdk' }))).toEqual({ diskId: 'vmdisk1', href: 'a&b-disk1.vmdk', format: VMDK_STREAM_OPTIMIZED_FORMAT });
  });

  it('reads other writers\' layouts: no prefix, other prefixes, comments, two disks (the first wins)', () => {
    const ovf = `<?xml version="1.0"?>
<!-- <DiskSection><Disk ovf:fileRef="commented"/></DiskSection> -->
<Envelope ovf:version="2.0" xmlns="http://schemas.dmtf.org/ovf/envelope/2" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/2">
  <References>
    <File ovf:id="file2" ovf:href="second.vmdk"/>
    <File ovf:href='first-disk001.vmdk' ovf:id='file1'/>
  </References>
  <DiskSection>
    <Info>List of the virtual disks used in the package</Info>
    <Disk ovf:capacity="8589934592" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized" vbox:uuid="x"/>
    <Disk ovf:capacity="1" ovf:diskId="vmdisk2" ovf:fileRef="file2"/>
  </DiskSection>
</Envelope>`;
    expect(firstOvfDisk(ovf)).toEqual({ diskId: 'vmdisk1', href: 'first-disk001.vmdk', format: VMDK_STREAM_OPTIMIZED_FORMAT });
    expect(firstOvfDisk(ovf.replace(/ovf:/g, '').replace(/xmlns:=/g, 'x='))).toMatchObject({ href: 'first-disk001.vmdk' });
  });

  it('refuses an OVF without a disk, or whose disk names no file', () => {
    expect(() => firstOvfDisk('<Envelope><References/></Envelope>')).toThrow(OvfError);
    expect(() => firstOvfDisk('<Envelope><DiskSection><Info/></DiskSection></Envelope>')).toThrow('the DiskSection holds no Disk');
    expect(() => firstOvfDisk('<Envelope><DiskSection><Disk ovf:diskId="d" ovf:fileRef="f9"/></DiskSection></Envelope>')).toThrow("disk d names file 'f9', which References does not hold");
  });

  it('seeded corruptions and hostile megabytes: an OvfError or a disk, fast, never anything else', () => {
    const good = Buffer.from(ovfEnvelope(base));
    for (const m of mutants(good, 21, 3000)) {
      const run = measured(() => firstOvfDisk(m.bytes.toString('latin1')));
      if (run.error !== undefined && !(run.error instanceof OvfError)) throw new Error(`${m.description}: ${String(run.error)}`);
    }
    for (const hostile of ['<DiskSection '.repeat(80_000), `<DiskSection><Disk ${'a'.repeat(MAX_OVF_BYTES)}>`, `<DiskSection><Disk ${'x="'.repeat(300_000)}>`, '<!--'.repeat(250_000)]) {
      const run = measured(() => firstOvfDisk(hostile));
      expect(run.error).toBeInstanceOf(OvfError);
      expect(run.ms).toBeLessThan(1500);
    }
  });
});

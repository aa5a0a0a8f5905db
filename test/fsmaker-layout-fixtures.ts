/** A complete GPT layout file (most keys of the schema), for the layout tests. */
export const COMPLETE = `# a GPT disk that boots under BIOS and UEFI
label: gpt
size: 2G
bootloader: both
seed: lab-1
kernel: boot/vmlinuz
timeout: 0
cmdline:
  append: quiet
  serial: true
output:
  path: out/disk.qcow2
  format: qcow2
  pad: 1M
partitions:
  - name: esp
    size: 256M
    type: esp
    mount: /boot
    contents: { kind: fat, from: bootfiles, label: BOOT }
  - name: bios
    type: bios-boot
    contents: empty
  - name: root
    type: linux
    uuid: 0b5d3a4c-1e2f-4a6b-8c9d-0e1f2a3b4c5d
    legacy-bios-bootable: true
    mount: /
    contents: { kind: ext4, from: rootfs, label: root }
  - name: swap
    size: 512M
    contents: { kind: swap, label: swap0 }
  - name: home
    number: 9
    size: rest
    type: home
    contents:
      kind: image
      path: /srv/home.ext4
`;

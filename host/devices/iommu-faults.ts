// IOMMU faults from the kernel log: the VFIO backend's only sign that a device tried DMA outside the
// IOVAs the host mapped (the IOMMU blocks it silently otherwise). Intel's DMAR and AMD-Vi each log one
// line per fault naming the requester's bus:dev.fn; reading /dev/kmsg needs root or CAP_SYSLOG.

import { closeSync, constants as fsc, openSync, readSync } from 'node:fs';

/**
 * Watch `kmsgPath` (/dev/kmsg) for IOMMU faults naming `slot`, calling `onFault` with each record's
 * text, polled every 100 ms. What was logged before the call is skipped. Undefined when the log is
 * unreadable.
 */
export function watchIommuFaults(
  kmsgPath: string,
  slot: string,
  onFault: (line: string) => void,
): { close(): void } | undefined {
  let kmsg: number;
  try {
    kmsg = openSync(kmsgPath, fsc.O_RDONLY | fsc.O_NONBLOCK);
  } catch {
    return undefined;
  }
  const buf = Buffer.alloc(8192);
  const drain = (deliver: boolean) => {
    for (;;) {
      let n: number;
      try {
        n = readSync(kmsg, buf, 0, buf.length, null);
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === 'EPIPE') continue; // records were overwritten; the next read resumes
        return;
      }
      if (n <= 0) return;
      const line = buf.toString('utf8', 0, n);
      if (deliver && iommuFaultMentions(line, slot)) onFault(line.slice(line.indexOf(';') + 1).trim());
    }
  };
  drain(false); // what was logged before we opened the device is not ours
  const timer = setInterval(() => drain(true), 100);
  timer.unref();
  return {
    close() {
      clearInterval(timer);
      closeSync(kmsg);
    },
  };
}

/** Does a kernel log record report an IOMMU fault for `slot` ("0000:00:03.0")? Intel DMAR and AMD-Vi formats. */
export function iommuFaultMentions(record: string, slot: string): boolean {
  const short = slot.slice(5); // "00:03.0": DMAR prints the bus:dev.fn without the domain
  if (/DMAR:.*Request device \[([0-9a-f:.]+)\]/i.test(record)) {
    const m = /Request device \[([0-9a-f:.]+)\]/i.exec(record)!;
    return m[1] === short || m[1] === slot;
  }
  const amd = /AMD-Vi:.*IO_PAGE_FAULT.*device=([0-9a-f:.]+)/i.exec(record);
  return !!amd && (amd[1] === short || amd[1] === slot);
}

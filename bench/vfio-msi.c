// The C baseline for the VFIO interrupt round trip (test/vm/vfio.guest.mjs): the same loop as the edu
// driver's OP_RAISE over VFIO MSI — write edu's raise register, block in read() on the MSI eventfd,
// acknowledge — with nothing in between. Usage: vfio-msi <BDF> <iommu group> [rounds]
// Prints one JSON line: {"rounds":N,"medianUs":X}. Type1v2 container/group API (Linux 6.1).
#include <fcntl.h>
#include <linux/vfio.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static void die(const char* what) {
  perror(what);
  exit(1);
}

static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s BDF GROUP [rounds]\n", argv[0]);
    return 2;
  }
  int rounds = argc > 3 ? atoi(argv[3]) : 500;
  char path[64];
  int container = open("/dev/vfio/vfio", O_RDWR);
  if (container < 0) die("open /dev/vfio/vfio");
  snprintf(path, sizeof path, "/dev/vfio/%s", argv[2]);
  int group = open(path, O_RDWR);
  if (group < 0) die(path);
  struct vfio_group_status st = {.argsz = sizeof st};
  if (ioctl(group, VFIO_GROUP_GET_STATUS, &st) < 0 || !(st.flags & VFIO_GROUP_FLAGS_VIABLE)) die("VFIO_GROUP_GET_STATUS");
  if (ioctl(group, VFIO_GROUP_SET_CONTAINER, &container) < 0) die("VFIO_GROUP_SET_CONTAINER");
  if (ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0) die("VFIO_SET_IOMMU");
  int dev = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, argv[1]);
  if (dev < 0) die("VFIO_GROUP_GET_DEVICE_FD");
  struct vfio_region_info bar = {.argsz = sizeof bar, .index = VFIO_PCI_BAR0_REGION_INDEX};
  if (ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &bar) < 0) die("VFIO_DEVICE_GET_REGION_INFO");
  volatile uint32_t* regs = mmap(NULL, bar.size, PROT_READ | PROT_WRITE, MAP_SHARED, dev, bar.offset);
  if (regs == MAP_FAILED) die("mmap BAR0");
  // Memory decoding and bus mastering on: an MSI is a memory write by the device.
  struct vfio_region_info cfg = {.argsz = sizeof cfg, .index = VFIO_PCI_CONFIG_REGION_INDEX};
  if (ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &cfg) < 0) die("VFIO_DEVICE_GET_REGION_INFO config");
  uint16_t cmd;
  if (pread(dev, &cmd, 2, cfg.offset + 4) != 2) die("pread command");
  cmd |= 0x6;
  if (pwrite(dev, &cmd, 2, cfg.offset + 4) != 2) die("pwrite command");
  int efd = eventfd(0, EFD_CLOEXEC);
  char buf[sizeof(struct vfio_irq_set) + sizeof(int)];
  struct vfio_irq_set* irq = (struct vfio_irq_set*)buf;
  irq->argsz = sizeof buf;
  irq->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
  irq->index = VFIO_PCI_MSI_IRQ_INDEX;
  irq->start = 0;
  irq->count = 1;
  memcpy(irq->data, &efd, sizeof efd);
  if (ioctl(dev, VFIO_DEVICE_SET_IRQS, irq) < 0) die("VFIO_DEVICE_SET_IRQS");
  double* us = calloc(rounds, sizeof *us);
  for (int i = 0; i < rounds; i++) {
    struct timespec t0, t1;
    uint64_t n;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    regs[0x60 / 4] = 0x1000;  // raise
    struct pollfd p = {.fd = efd, .events = POLLIN};
    if (poll(&p, 1, 2000) != 1) {
      fprintf(stderr, "vfio-msi: no MSI within 2 s (round %d)\n", i);
      return 1;
    }
    if (read(efd, &n, sizeof n) != sizeof n) die("read eventfd");
    regs[0x64 / 4] = regs[0x24 / 4];  // acknowledge what is pending
    clock_gettime(CLOCK_MONOTONIC, &t1);
    us[i] = (t1.tv_sec - t0.tv_sec) * 1e6 + (t1.tv_nsec - t0.tv_nsec) / 1e3;
  }
  qsort(us, rounds, sizeof *us, cmp);
  printf("{\"rounds\":%d,\"medianUs\":%.1f}\n", rounds, us[rounds / 2]);
  return 0;
}

// The C baseline for the INTx interrupt round trip over uio_pci_generic (test/vm/vfio.guest.mjs): the
// same loop as the edu driver's OP_RAISE — unmask the line, write edu's raise register, block in read()
// on /dev/uioN, acknowledge — with nothing in between. uio_pci_generic has no irqcontrol (a write to
// /dev/uioN is ENOSYS): it masks INTx through the command register's INTx-disable bit (PCI 2.3) and user
// space unmasks by clearing it in config space. It maps no BAR either: BAR0 comes from sysfs (resource0).
// Usage: uio-intx <uioN> [rounds]. Prints one JSON line: {"rounds":N,"medianUs":X}.
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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
  if (argc < 2) {
    fprintf(stderr, "usage: %s uioN [rounds]\n", argv[0]);
    return 2;
  }
  int rounds = argc > 2 ? atoi(argv[2]) : 500;
  char path[96];
  snprintf(path, sizeof path, "/dev/%s", argv[1]);
  int fd = open(path, O_RDWR);
  if (fd < 0) die(path);
  snprintf(path, sizeof path, "/sys/class/uio/%s/device/resource0", argv[1]);
  int bar = open(path, O_RDWR);
  if (bar < 0) die(path);
  volatile uint32_t* regs = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, bar, 0);
  if (regs == MAP_FAILED) die("mmap resource0");
  snprintf(path, sizeof path, "/sys/class/uio/%s/device/config", argv[1]);
  int cfg = open(path, O_RDWR);
  if (cfg < 0) die(path);
  double* us = calloc(rounds, sizeof *us);
  for (int i = 0; i < rounds; i++) {
    struct timespec t0, t1;
    uint16_t cmd;
    uint32_t count;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (pread(cfg, &cmd, 2, 4) != 2) die("pread command");
    cmd &= ~0x400;  // INTx disable off: unmask
    if (pwrite(cfg, &cmd, 2, 4) != 2) die("pwrite command");
    regs[0x60 / 4] = 0x1000;                                         // raise
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 2000) != 1) {
      fprintf(stderr, "uio-intx: no interrupt within 2 s (round %d)\n", i);
      return 1;
    }
    if (read(fd, &count, sizeof count) != sizeof count) die("read /dev/uioN");
    regs[0x64 / 4] = regs[0x24 / 4];  // acknowledge what is pending: the line drops
    clock_gettime(CLOCK_MONOTONIC, &t1);
    us[i] = (t1.tv_sec - t0.tv_sec) * 1e6 + (t1.tv_nsec - t0.tv_nsec) / 1e3;
  }
  qsort(us, rounds, sizeof *us, cmp);
  printf("{\"rounds\":%d,\"medianUs\":%.1f}\n", rounds, us[rounds / 2]);
  return 0;
}

// Native C baselines for `npm run bench`, compiled at bench time (cc -O2 -pthread).
// Every mode works on file descriptors the bench runner passes (inherited: 3, 4, ...), so C and the
// sandboxed driver touch the very same memfd mappings and eventfds.
//
//   regs N                     fd 3: a memfd register file. ns per volatile 32-bit read and write, and
//                              per read and write with the flight recorder's work done in C.
//   page-cross N               fd 3: a mapping. ns per pass of one read loop placed inside a page and
//                              across a page boundary (a cost of QEMU's TCG, not of hardware).
//   irq-pinger N               fd 3: eventfd, fd 4: memfd handshake page. Waits for the waiter to be
//                              ready, stamps CLOCK_MONOTONIC into the page, writes the eventfd. N times.
//   irq-waiter N               fd 3, fd 4 as above: the C side of the latency test (poll + read).
//   irq-threads N              fd 3, fd 4 as above: pinger and waiter as two threads of one process.
//   ring-device MS             fd 3: registers, fd 4: DMA memory. The packet source and sink.
//   ring-driver MS BATCH       fd 3, fd 4 as above: the C driver forwarding RX -> TX in batches.
//   e1000-device MS BUS        fd 3: an e1000 BAR0 (128 KiB), fd 4: DMA memory at bus address BUS.
//                              The subset of the 82540EM the e1000 driver uses, polled: a packet
//                              source into the RX ring and a checking sink for the TX ring.
//   e1000-driver MS BATCH BUS  fd 3, fd 4 as above: an ixy-style C e1000 driver forwarding RX -> TX.
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *map(int fd, size_t size) {
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) { perror("mmap"); exit(2); }
	return p;
}

/* ---- registers ---------------------------------------------------------------------------- */
/* The flight recorder's work as the gate compiled into a driver does it (host/sandbox/inline-rewrite.ts
   `record`; the format in host/sandbox/shared.ts): each writer counts its own entries in an i64, the
   slot is the low halves' sum masked, an entry is two 8-byte stores (offset | op, width, region; the
   value). Done here by cc -O2 around the same volatile access, it is the floor of a recorded access on
   this CPU: what the best compiler makes of the same work. */
struct recorder {
	volatile uint64_t reads, writes, js;
	volatile uint64_t ring[256 * 2];
};
static struct recorder rec;
#define REC_META(op, width) ((uint64_t)(op) << 56 | (uint64_t)(width) << 48)
static inline void record(volatile uint64_t *own, volatile uint64_t *other, uint64_t meta, uint32_t off, uint64_t v) {
	uint64_t t = *own;
	*own = t + 1;
	uint32_t slot = ((uint32_t)t + (uint32_t)*other + (uint32_t)rec.js) & 255;
	rec.ring[slot * 2] = off | meta;
	rec.ring[slot * 2 + 1] = v;
}

static int regs(long n) {
	volatile uint32_t *r = map(3, 4096);
	uint32_t sum = 0;
	uint64_t t0 = now_ns();
	for (long i = 0; i < n; i++) sum += r[(i & 7)];
	uint64_t t1 = now_ns();
	for (long i = 0; i < n; i++) r[(i & 7) + 8] = (uint32_t)i;
	uint64_t t2 = now_ns();
	for (long i = 0; i < n; i++) {
		uint32_t v = r[(i & 7)];
		record(&rec.reads, &rec.writes, REC_META(1, 4), (uint32_t)(i & 7) * 4, v);
		sum += v;
	}
	uint64_t t3 = now_ns();
	for (long i = 0; i < n; i++) {
		record(&rec.writes, &rec.reads, REC_META(2, 4), (uint32_t)((i & 7) + 8) * 4, (uint32_t)i);
		r[(i & 7) + 8] = (uint32_t)i;
	}
	uint64_t t4 = now_ns();
	printf("{\"readNs\":%.3f,\"writeNs\":%.3f,\"readRecordedNs\":%.3f,\"writeRecordedNs\":%.3f,\"sum\":%u}\n",
	       (double)(t1 - t0) / n, (double)(t2 - t1) / n, (double)(t3 - t2) / n, (double)(t4 - t3) / n, sum);
	return 0;
}

/* ---- a TCG cost the guest's register metric meets ----------------------------------------------- */
/* One read loop of two basic blocks (a forward branch, always taken, in the middle), in two copies
   that differ only in where they sit: "same" has the whole loop inside one 4 KiB page, "cross" starts
   its second block on the next page, so both of its jumps go to a block on another page. On hardware
   the two cost the same. QEMU's TCG chains a translated block straight to the next only within a
   page; a jump to another page looks the next block up instead, on every pass. The sandbox's access
   loop is compiled by V8 wherever its code space has room, so in one load it may straddle a page and
   in the next not: the VM test measures the pair on the same mapping beside its register metrics. */
#if defined(__x86_64__)
#define PAGE_CROSS_LOOP(name, pad)                                                                      \
	__attribute__((noinline, aligned(4096))) static uint32_t name(volatile uint32_t *r, long n) {   \
		uint32_t sum = 0;                                                                       \
		long i = 0;                                                                             \
		__asm__ volatile("jmp 1f\n.skip " #pad ", 0x90\n"                                       \
				 "1: mov %1, %%rdx\n and $7, %%rdx\n add (%2,%%rdx,4), %0\n"              \
				 " test %%rdx, %%rdx\n jns 2f\n nop\n"                                     \
				 "2: inc %1\n cmp %3, %1\n jl 1b\n"                                        \
				 : "+r"(sum), "+r"(i)                                                    \
				 : "r"(r), "r"(n)                                                        \
				 : "rdx", "cc", "memory");                                               \
		return sum;                                                                             \
	}
/* 1024: the loop at +0x409, well inside the function's first page. 4072: the loop's first block at
   +0xff1..+0xfff, its second (after the nop at +0x1000) from +0x1001. */
PAGE_CROSS_LOOP(loop_same_page, 1024)
PAGE_CROSS_LOOP(loop_cross_page, 4072)
static int page_cross(long n) {
	volatile uint32_t *r = map(3, 4096);
	double same = 1e30, cross = 1e30;
	uint32_t sum = 0;
	for (int k = 0; k < 5; k++) { /* best of five, alternated */
		uint64_t t0 = now_ns();
		sum += loop_same_page(r, n);
		uint64_t t1 = now_ns();
		sum += loop_cross_page(r, n);
		uint64_t t2 = now_ns();
		if ((double)(t1 - t0) / n < same) same = (double)(t1 - t0) / n;
		if ((double)(t2 - t1) / n < cross) cross = (double)(t2 - t1) / n;
	}
	printf("{\"sameNs\":%.3f,\"crossNs\":%.3f,\"sum\":%u}\n", same, cross, sum);
	return 0;
}
#else
static int page_cross(long n) {
	(void)n;
	fprintf(stderr, "page-cross: x86-64 only\n");
	return 2;
}
#endif

/* ---- interrupt wake-up ---------------------------------------------------------------------- */
/* Handshake page (u64 words): [0] waiter's ready sequence, [1] pinger's stamp, [2] pinger's sequence,
   [16 + i] latencies the C waiter measured. */
static int irq_pinger(long n) {
	volatile uint64_t *pg = map(4, 1 << 20);
	for (long i = 1; i <= n; i++) {
		uint64_t deadline = now_ns() + 5000000000ull;
		while (pg[0] != (uint64_t)i) { if (now_ns() > deadline) { fprintf(stderr, "pinger: waiter not ready for %ld\n", i); return 1; } }
		/* give the waiter time to block in its wait */
		uint64_t settle = now_ns() + 20000; while (now_ns() < settle);
		pg[1] = now_ns();
		pg[2] = (uint64_t)i;
		uint64_t one = 1;
		if (write(3, &one, 8) != 8) { perror("write eventfd"); return 1; }
	}
	return 0;
}

static int irq_waiter(long n) {
	volatile uint64_t *pg = map(4, 1 << 20);
	struct pollfd p = { .fd = 3, .events = POLLIN };
	for (long i = 1; i <= n; i++) {
		pg[0] = (uint64_t)i;
		if (poll(&p, 1, 5000) != 1) { fprintf(stderr, "waiter: timeout\n"); return 1; }
		uint64_t v;
		if (read(3, &v, 8) != 8) { perror("read eventfd"); return 1; }
		pg[16 + i - 1] = now_ns() - pg[1];
	}
	return 0;
}

static void *pinger_thread(void *arg) {
	irq_pinger((long)arg);
	return NULL;
}

static int irq_threads(long n) {
	pthread_t t;
	if (pthread_create(&t, NULL, pinger_thread, (void *)n) != 0) { perror("pthread_create"); return 1; }
	int r = irq_waiter(n);
	pthread_join(t, NULL);
	return r;
}

/* ---- the ring device ------------------------------------------------------------------------ */
/* Registers (u32): 0 RX_PROD (device), 1 RX_CONS (driver), 2 TX_PROD (driver), 3 TX_CONS (device),
   4 STOP, 5 errors. DMA memory: RX descriptors at 0, TX descriptors at 16 KiB (16 bytes each:
   u64 buffer offset, u32 length, u32 sequence), RX buffers at 64 KiB, TX buffers at 64 KiB + 256 KiB. */
#define RING 512
#define PKT 64
#define BUF 512
#define RX_DESC 0
#define TX_DESC 16384
#define RX_BUF 65536
#define TX_BUF (65536 + RING * BUF)
#define DMA_SIZE (TX_BUF + RING * BUF)

struct desc { uint64_t buf; uint32_t len; uint32_t seq; };

static int ring_device(long ms) {
	volatile uint32_t *reg = map(3, 4096);
	uint8_t *dma = map(4, DMA_SIZE);
	volatile struct desc *rx = (volatile struct desc *)(dma + RX_DESC);
	volatile struct desc *tx = (volatile struct desc *)(dma + TX_DESC);
	uint32_t rx_prod = 0, tx_cons = 0, seq_out = 0, seq_in = 0, errors = 0;
	for (int i = 0; i < RING; i++) { rx[i].buf = RX_BUF + (uint64_t)i * BUF; tx[i].buf = TX_BUF + (uint64_t)i * BUF; }
	reg[0] = reg[1] = reg[2] = reg[3] = reg[4] = reg[5] = 0;   /* STOP too: the last driver set it */
	uint64_t end = now_ns() + (uint64_t)ms * 1000000ull;
	while (!reg[4] && now_ns() < end) {
		/* source: fill every free RX slot */
		uint32_t rx_cons = __atomic_load_n(&reg[1], __ATOMIC_ACQUIRE);
		while (rx_prod - rx_cons < RING) {
			volatile struct desc *d = &rx[rx_prod % RING];
			uint8_t *b = dma + d->buf;
			memset(b, (uint8_t)seq_out, PKT);
			memcpy(b, &seq_out, 4);
			d->len = PKT;
			d->seq = seq_out++;
			rx_prod++;
		}
		__atomic_store_n(&reg[0], rx_prod, __ATOMIC_RELEASE);
		/* sink: take every forwarded TX slot, check it is the next packet */
		uint32_t tx_prod = __atomic_load_n(&reg[2], __ATOMIC_ACQUIRE);
		while (tx_cons != tx_prod) {
			volatile struct desc *d = &tx[tx_cons % RING];
			uint32_t s;
			memcpy(&s, dma + d->buf, 4);
			if (s != seq_in || d->len != PKT) errors++;
			seq_in++;
			tx_cons++;
		}
		__atomic_store_n(&reg[3], tx_cons, __ATOMIC_RELEASE);
	}
	reg[5] = errors;
	printf("{\"forwarded\":%u,\"errors\":%u}\n", seq_in, errors);
	return 0;
}

static int ring_driver(long ms, long batch) {
	volatile uint32_t *reg = map(3, 4096);
	uint8_t *dma = map(4, DMA_SIZE);
	volatile struct desc *rx = (volatile struct desc *)(dma + RX_DESC);
	volatile struct desc *tx = (volatile struct desc *)(dma + TX_DESC);
	uint32_t rx_cons = 0, tx_prod = 0;
	uint64_t forwarded = 0, end = now_ns() + (uint64_t)ms * 1000000ull;
	for (uint32_t spin = 0; ; spin++) {
		if ((spin & 255) == 0 && now_ns() >= end) break;   /* the clock every 256 turns, as the Wasm driver */
		uint32_t rx_prod = __atomic_load_n(&reg[0], __ATOMIC_ACQUIRE);
		uint32_t tx_cons = __atomic_load_n(&reg[3], __ATOMIC_ACQUIRE);
		uint32_t n = rx_prod - rx_cons, room = RING - (tx_prod - tx_cons);
		if (n > room) n = room;
		if (n > (uint32_t)batch) n = (uint32_t)batch;
		if (!n) continue;
		for (uint32_t i = 0; i < n; i++) {
			volatile struct desc *r = &rx[(rx_cons + i) % RING], *t = &tx[(tx_prod + i) % RING];
			memcpy(dma + t->buf, dma + r->buf, r->len);
			t->len = r->len;
			t->seq = r->seq;
		}
		rx_cons += n;
		tx_prod += n;
		forwarded += n;
		__atomic_store_n(&reg[1], rx_cons, __ATOMIC_RELEASE);
		__atomic_store_n(&reg[2], tx_prod, __ATOMIC_RELEASE);
	}
	reg[4] = 1;
	printf("{\"forwarded\":%llu}\n", (unsigned long long)forwarded);
	return 0;
}

/* ---- the e1000 (82540EM) -------------------------------------------------------------------- */
/* Register offsets and bits as guest-drivers/e1000/index.ts names them (8254x SDM section 13). BAR0
   is a plain memfd, so nothing happens on an access: this device polls its registers instead, and
   does on its own turn what the 82540EM does on the access (CTRL.RST clears, TDT starts transmit).
   What the polled device does not model: ICR causes (it raises no interrupt, so ICR reads 0), the
   EEPROM (RAH0 is preset with AV, as QEMU presets it), the statistics registers (they stay 0) and
   link changes (STATUS.LU is set for good). */
#define E_CTRL 0x0000
#define E_STATUS 0x0008
#define E_RCTL 0x0100
#define E_TCTL 0x0400
#define E_RDBAL 0x2800
#define E_RDBAH 0x2804
#define E_RDLEN 0x2808
#define E_RDH 0x2810
#define E_RDT 0x2818
#define E_TDBAL 0x3800
#define E_TDBAH 0x3804
#define E_TDLEN 0x3808
#define E_TDH 0x3810
#define E_TDT 0x3818
#define E_RAL0 0x5400
#define E_RAH0 0x5404
/* The bench's own words, past every register the driver may touch: [0] quit (the runner sets it),
   [1] pause: while it is set the device sleeps instead of polling (the bench's interleaved rounds keep
   three devices, and only the one being measured may take a CPU), [2] the device's answer: set while
   it is paused, so the runner knows no DMA is under way, [3] the CPU to run on after a pause, plus
   one (0: wherever it runs; a device woken from its sleep may land on the driver's CPU and the two
   spinners then share it for a scheduler period). */
#define E_BENCH 0x1f000
#define E_PAUSE (E_BENCH + 4)
#define E_PAUSED (E_BENCH + 8)
#define E_CPU (E_BENCH + 12)
#define E_BAR0_SIZE 0x20000
#define E_DMA_SIZE 0x40000
#define CTRL_RST (1u << 26)
#define CTRL_SLU (1u << 6)
#define STATUS_LU (1u << 1)
#define STATUS_1000 (2u << 6)
#define RCTL_EN (1u << 1)
#define TCTL_EN (1u << 1)
#define RAH_AV (1u << 31)
#define RXD_DD 0x01
#define RXD_EOP 0x02
#define TXD_CMD_RS 0x08
#define TXD_DD 0x01
#define E_FRAME 64 /* bytes on the wire, without the CRC (SECRC strips it) */
static const uint8_t e_mac[6] = { 0x02, 0x00, 0x00, 0xe1, 0x00, 0x01 };

/* Legacy descriptors, 16 bytes [3.2.3, 3.3.3]. */
struct e_rxd { uint64_t addr; uint16_t len; uint16_t csum; uint8_t status; uint8_t errors; uint16_t special; };
struct e_txd { uint64_t addr; uint16_t len; uint8_t cso; uint8_t cmd; uint8_t status; uint8_t css; uint16_t special; };

#define R32(r, off) __atomic_load_n(&(r)[(off) >> 2], __ATOMIC_ACQUIRE)
#define W32(r, off, v) __atomic_store_n(&(r)[(off) >> 2], (uint32_t)(v), __ATOMIC_RELEASE)

static char e_first_error[256];
static int e1000_device(long ms, uint64_t bus) {
	uint32_t *reg = map(3, E_BAR0_SIZE);
	uint8_t *dma = map(4, E_DMA_SIZE);
	uint32_t seq_out = 0, seq_in = 0;
	uint64_t generated = 0, transmitted = 0, errors = 0, dma_errors = 0, resets = 0;
	memset(reg, 0, E_BAR0_SIZE);
	W32(reg, E_STATUS, STATUS_LU | STATUS_1000);
	W32(reg, E_RAL0, e_mac[0] | e_mac[1] << 8 | e_mac[2] << 16 | (uint32_t)e_mac[3] << 24);
	W32(reg, E_RAH0, e_mac[4] | e_mac[5] << 8 | RAH_AV);
	/* Where a descriptor's buffer lies in the DMA memory: NULL outside it (counted, never touched). */
#define E_AT(addr, len) ((addr) >= bus && (addr) - bus + (len) <= E_DMA_SIZE ? dma + ((addr) - bus) : NULL)
	uint64_t end = now_ns() + (uint64_t)ms * 1000000ull;
	for (uint32_t spin = 0; !R32(reg, E_BENCH); spin++) {
		if ((spin & 1023) == 0 && now_ns() > end) break;
		if (R32(reg, E_PAUSE)) {
			W32(reg, E_PAUSED, 1);
			while (R32(reg, E_PAUSE) && !R32(reg, E_BENCH) && now_ns() < end) usleep(100);
			uint32_t cpu = R32(reg, E_CPU);
			if (cpu) {
				cpu_set_t set;
				CPU_ZERO(&set);
				CPU_SET(cpu - 1, &set);
				if (sched_setaffinity(0, sizeof set, &set)) perror("e1000-device: sched_setaffinity");
			}
			W32(reg, E_PAUSED, 0);
			continue;
		}
		uint32_t ctrl = R32(reg, E_CTRL);
		if (ctrl & CTRL_RST) {
			/* [13.4.1] A software reset: both units stop, the rings start over. Frames the
			   driver had not handed to the transmitter are gone, so the sink expects the next
			   frame the source makes. */
			W32(reg, E_RCTL, 0);
			W32(reg, E_TCTL, 0);
			W32(reg, E_RDH, 0);
			W32(reg, E_RDT, 0);
			W32(reg, E_TDH, 0);
			W32(reg, E_TDT, 0);
			seq_in = seq_out;
			resets++;
			W32(reg, E_CTRL, ctrl & ~CTRL_RST);
			continue;
		}
		/* Receive: fill every buffer the driver has given (RDH up to, not including, RDT). */
		/* The enable bit first: a driver programs the ring before it sets EN, so the ring registers
		   read after it are the programmed ones (read before it, they may predate a reprogramming). */
		uint32_t rx_on = R32(reg, E_RCTL) & RCTL_EN, rlen = R32(reg, E_RDLEN) / 16;
		if (rx_on && rlen) {
			uint64_t base = (uint64_t)R32(reg, E_RDBAH) << 32 | R32(reg, E_RDBAL);
			struct e_rxd *ring = (struct e_rxd *)E_AT(base, (uint64_t)rlen * 16);
			uint32_t head = R32(reg, E_RDH), tail = R32(reg, E_RDT);
			if (!ring || head >= rlen || tail >= rlen) {
				if (!dma_errors++) snprintf(e_first_error, sizeof e_first_error, "e1000-device: RX ring at 0x%llx, %u descriptors, head %u, tail %u: outside the DMA memory", (unsigned long long)base, rlen, head, tail);
			} else if (head != tail) {
				for (; head != tail; head = (head + 1) % rlen) {
					struct e_rxd *d = &ring[head];
					uint8_t *b = E_AT(d->addr, 2048);
					if (!b) {
						if (!dma_errors++) snprintf(e_first_error, sizeof e_first_error, "e1000-device: RX descriptor %u: buffer 0x%llx outside the DMA memory", head, (unsigned long long)d->addr);
						break;
					}
					memcpy(b, e_mac, 6);
					memcpy(b + 6, "\x02\x00\x00\xaa\xbb\x99\x88\xb5", 8);
					memcpy(b + 14, &seq_out, 4);
					memset(b + 18, (uint8_t)seq_out, E_FRAME - 18);
					d->len = E_FRAME;
					d->errors = 0;
					__atomic_store_n(&d->status, RXD_DD | RXD_EOP, __ATOMIC_RELEASE);
					seq_out++;
					generated++;
					/* the head moves per descriptor, as on the 82540EM: a driver (or the descriptor
					   firewall) that follows RDH sees each frame, not each burst */
					W32(reg, E_RDH, (head + 1) % rlen);
				}
			}
		}
		/* Transmit: every descriptor from TDH up to TDT; check it is the next frame, write DD if RS. */
		uint32_t tx_on = R32(reg, E_TCTL) & TCTL_EN, tlen = R32(reg, E_TDLEN) / 16;
		if (tx_on && tlen) {
			uint64_t base = (uint64_t)R32(reg, E_TDBAH) << 32 | R32(reg, E_TDBAL);
			struct e_txd *ring = (struct e_txd *)E_AT(base, (uint64_t)tlen * 16);
			uint32_t head = R32(reg, E_TDH), tail = R32(reg, E_TDT);
			if (!ring || head >= tlen || tail >= tlen) {
				if (!dma_errors++) snprintf(e_first_error, sizeof e_first_error, "e1000-device: TX ring at 0x%llx, %u descriptors, head %u, tail %u: outside the DMA memory", (unsigned long long)base, tlen, head, tail);
			} else if (head != tail) {
				for (; head != tail; head = (head + 1) % tlen) {
					struct e_txd *d = &ring[head];
					uint8_t *b = E_AT(d->addr, d->len);
					uint32_t s = 0;
					if (!b) {
						if (!dma_errors++) snprintf(e_first_error, sizeof e_first_error, "e1000-device: TX descriptor %u: buffer 0x%llx+%u outside the DMA memory", head, (unsigned long long)d->addr, d->len);
						break;
					}
					if (d->len >= 18) memcpy(&s, b + 14, 4);
					if (d->len != E_FRAME || s != seq_in || b[E_FRAME - 1] != (uint8_t)s) errors++;
					seq_in = s + 1;
					transmitted++;
					if (d->cmd & TXD_CMD_RS) __atomic_store_n(&d->status, TXD_DD, __ATOMIC_RELEASE);
					W32(reg, E_TDH, (head + 1) % tlen);
				}
			}
		}
	}
	printf("{\"generated\":%llu,\"transmitted\":%llu,\"errors\":%llu,\"dmaErrors\":%llu,\"resets\":%llu,\"firstError\":\"%s\"}\n",
	       (unsigned long long)generated, (unsigned long long)transmitted, (unsigned long long)errors,
	       (unsigned long long)dma_errors, (unsigned long long)resets, e_first_error);
	return 0;
}

/* The C baseline: guest-drivers/e1000/index.ts's init and its forward request (op 6), ixy-style,
   with the same layout (64 + 64 legacy descriptors in the first page, 2048-byte RX and 1536-byte TX
   buffers from 4 KiB), the same copy of each frame into its TX buffer and one RDT and one TDT write
   per batch; when it waits, it reads the head register, as the Wasm driver does (there, for the
   descriptor firewall's sake: a head read copies the write-backs). */
#define E_N 64
#define E_RX_BUF 4096
#define E_TX_BUF (E_RX_BUF + E_N * 2048)
static int e1000_driver(long ms, long batch, uint64_t bus) {
	volatile uint32_t *reg = map(3, E_BAR0_SIZE);
	uint8_t *dma = map(4, E_DMA_SIZE);
	struct e_rxd *rx = (struct e_rxd *)dma;
	struct e_txd *tx = (struct e_txd *)(dma + E_N * 16);
	/* reset [14.4]: mask interrupts, CTRL.RST, wait for it to clear */
	reg[0xd8 >> 2] = 0xffffffff;
	reg[E_CTRL >> 2] |= CTRL_RST;
	for (uint64_t t = now_ns() + 1000000000ull; reg[E_CTRL >> 2] & CTRL_RST;)
		if (now_ns() > t) { fprintf(stderr, "e1000-driver: CTRL.RST did not clear\n"); return 1; }
	if (!(reg[E_RAH0 >> 2] & RAH_AV)) { fprintf(stderr, "e1000-driver: no MAC in RAL0\n"); return 1; }
	reg[E_CTRL >> 2] |= CTRL_SLU;
	for (int i = 0; i < E_N; i++) {
		tx[i] = (struct e_txd){ .addr = bus + E_TX_BUF + (uint64_t)i * 1536 };
		rx[i] = (struct e_rxd){ .addr = bus + E_RX_BUF + (uint64_t)i * 2048 };
	}
	reg[E_TDBAL >> 2] = (uint32_t)(bus + E_N * 16);
	reg[E_TDBAH >> 2] = (uint32_t)((bus + E_N * 16) >> 32);
	reg[E_TDLEN >> 2] = E_N * 16;
	reg[E_TDH >> 2] = 0;
	reg[E_TDT >> 2] = 0;
	reg[E_TCTL >> 2] = TCTL_EN | (1u << 3) | (0x10u << 4) | (0x40u << 12);
	reg[E_RDBAL >> 2] = (uint32_t)bus;
	reg[E_RDBAH >> 2] = (uint32_t)(bus >> 32);
	reg[E_RDLEN >> 2] = E_N * 16;
	reg[E_RDH >> 2] = 0;
	reg[E_RDT >> 2] = E_N - 1;
	reg[E_RCTL >> 2] = RCTL_EN | (1u << 15) | (1u << 26);
	uint32_t rx_next = 0, tx_tail = 0, tx_clean = 0;
	if (batch < 1) batch = 1;
	uint64_t forwarded = 0, end = now_ns() + (uint64_t)ms * 1000000ull;
	for (uint32_t spin = 0;; spin++) {
		if ((spin & 255) == 0 && now_ns() >= end) break; /* the clock every 256 turns, as the Wasm driver */
		while (tx_clean != tx_tail && (__atomic_load_n(&tx[tx_clean].status, __ATOMIC_ACQUIRE) & TXD_DD))
			tx_clean = (tx_clean + 1) % E_N;
		uint32_t room = (tx_clean + E_N - 1 - tx_tail) % E_N;
		if (!room) { (void)reg[E_TDH >> 2]; continue; }
		uint32_t n = 0;
		int last = -1;
		while (n < (uint32_t)batch && n < room) {
			struct e_rxd *d = &rx[rx_next];
			uint8_t st = __atomic_load_n(&d->status, __ATOMIC_ACQUIRE);
			if (!(st & RXD_DD)) break;
			if ((st & RXD_EOP) && !d->errors && d->len && d->len <= 1518) {
				struct e_txd *t = &tx[tx_tail];
				memcpy(dma + E_TX_BUF + tx_tail * 1536, dma + E_RX_BUF + rx_next * 2048, d->len);
				t->addr = bus + E_TX_BUF + (uint64_t)tx_tail * 1536;
				t->len = d->len;
				t->cmd = 0x01 | 0x02 | TXD_CMD_RS;
				t->status = 0;
				tx_tail = (tx_tail + 1) % E_N;
				n++;
			}
			*d = (struct e_rxd){ .addr = bus + E_RX_BUF + (uint64_t)rx_next * 2048 }; /* re-armed whole */
			last = (int)rx_next;
			rx_next = (rx_next + 1) % E_N;
		}
		if (last >= 0) __atomic_store_n(&reg[E_RDT >> 2], (uint32_t)last, __ATOMIC_RELEASE);
		if (n) __atomic_store_n(&reg[E_TDT >> 2], tx_tail, __ATOMIC_RELEASE);
		else if (last < 0) (void)reg[E_RDH >> 2];
		forwarded += n;
	}
	printf("{\"forwarded\":%llu}\n", (unsigned long long)forwarded);
	return 0;
}

int main(int argc, char **argv) {
	if (argc < 3) { fprintf(stderr, "usage: native MODE ARGS\n"); return 2; }
	long a = atol(argv[2]), b = argc > 3 ? atol(argv[3]) : 0;
	if (!strcmp(argv[1], "regs")) return regs(a);
	if (!strcmp(argv[1], "page-cross")) return page_cross(a);
	if (!strcmp(argv[1], "irq-pinger")) return irq_pinger(a);
	if (!strcmp(argv[1], "irq-waiter")) return irq_waiter(a);
	if (!strcmp(argv[1], "irq-threads")) return irq_threads(a);
	if (!strcmp(argv[1], "ring-device")) return ring_device(a);
	if (!strcmp(argv[1], "ring-driver")) return ring_driver(a, b);
	if (!strcmp(argv[1], "e1000-device") && argc > 3) return e1000_device(a, strtoull(argv[3], NULL, 0));
	if (!strcmp(argv[1], "e1000-driver") && argc > 4) return e1000_driver(a, b, strtoull(argv[4], NULL, 0));
	fprintf(stderr, "unknown mode %s\n", argv[1]);
	return 2;
}

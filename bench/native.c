// Native C baselines for `npm run bench`, compiled at bench time (cc -O2 -pthread).
// Every mode works on file descriptors the bench runner passes (inherited: 3, 4, ...), so C and the
// sandboxed driver touch the very same memfd mappings and eventfds.
//
//   regs N                     fd 3: a memfd register file. ns per volatile 32-bit read and write.
//   irq-pinger N               fd 3: eventfd, fd 4: memfd handshake page. Waits for the waiter to be
//                              ready, stamps CLOCK_MONOTONIC into the page, writes the eventfd. N times.
//   irq-waiter N               fd 3, fd 4 as above: the C side of the latency test (poll + read).
//   irq-threads N              fd 3, fd 4 as above: pinger and waiter as two threads of one process.
//   ring-device MS             fd 3: registers, fd 4: DMA memory. The packet source and sink.
//   ring-driver MS BATCH       fd 3, fd 4 as above: the C driver forwarding RX -> TX in batches.
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
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
static int regs(long n) {
	volatile uint32_t *r = map(3, 4096);
	uint32_t sum = 0;
	uint64_t t0 = now_ns();
	for (long i = 0; i < n; i++) sum += r[(i & 7)];
	uint64_t t1 = now_ns();
	for (long i = 0; i < n; i++) r[(i & 7) + 8] = (uint32_t)i;
	uint64_t t2 = now_ns();
	printf("{\"readNs\":%.3f,\"writeNs\":%.3f,\"sum\":%u}\n", (double)(t1 - t0) / n, (double)(t2 - t1) / n, sum);
	return 0;
}

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

int main(int argc, char **argv) {
	if (argc < 3) { fprintf(stderr, "usage: native MODE ARGS\n"); return 2; }
	long a = atol(argv[2]), b = argc > 3 ? atol(argv[3]) : 0;
	if (!strcmp(argv[1], "regs")) return regs(a);
	if (!strcmp(argv[1], "irq-pinger")) return irq_pinger(a);
	if (!strcmp(argv[1], "irq-waiter")) return irq_waiter(a);
	if (!strcmp(argv[1], "irq-threads")) return irq_threads(a);
	if (!strcmp(argv[1], "ring-device")) return ring_device(a);
	if (!strcmp(argv[1], "ring-driver")) return ring_driver(a, b);
	fprintf(stderr, "unknown mode %s\n", argv[1]);
	return 2;
}

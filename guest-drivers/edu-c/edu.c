/*
 * Driver for QEMU's "edu" educational PCI device (1234:11e8), in C against the wasmdrv C SDK.
 * It answers exactly what the AssemblyScript driver (guest-drivers/edu/index.ts) answers; see that
 * file and QEMU's docs/specs/edu.rst for the register map. Same manifest (guest-drivers/edu/manifest.json).
 *
 * Requests (op, little-endian u32 arguments -> response):
 *   1 identify () -> id, liveness ok     2 factorial (n) -> n!, through the interrupt path
 *   3 raise (count, value) -> seen       4 DMA round trip (bytes...) -> the same bytes
 *   5 liveness (v) -> ~v                 6 stats () -> interrupts, factorials, DMA transfers
 */
#include <wasmdrv.h>

WASMDRV_DRIVER();

/* edu.rst: register map (BAR0) */
#define BAR0 0
#define REG_ID 0x00          /* RO: 0xRRrr00ed */
#define REG_LIVENESS 0x04    /* RW: reads back the bitwise inverse */
#define REG_FACTORIAL 0x08   /* RW: write n, read n! when STATUS_COMPUTING clears */
#define REG_STATUS 0x20      /* RW: bit 0 computing (RO), bit 7 raise interrupt after factorial */
#define REG_IRQ_STATUS 0x24  /* RO: pending interrupt bits */
#define REG_IRQ_RAISE 0x60   /* WO: status |= value */
#define REG_IRQ_ACK 0x64     /* WO: status &= ~value */
#define REG_DMA_SRC 0x80     /* RW 64 */
#define REG_DMA_DST 0x88     /* RW 64 */
#define REG_DMA_COUNT 0x90   /* RW 64 */
#define REG_DMA_CMD 0x98     /* RW 64 */

#define STATUS_COMPUTING 0x01u
#define STATUS_IRQ_FACT 0x80u
#define IRQ_FACT 0x00000001u
#define IRQ_DMA 0x00000100u
#define DMA_CMD_START 0x1ull
#define DMA_CMD_TO_RAM 0x2ull  /* device buffer -> RAM (clear: RAM -> device buffer) */
#define DMA_CMD_IRQ 0x4ull
#define DEVICE_BUFFER 0x40000ull
#define DEVICE_BUFFER_SIZE 4096u
#define ID_MAGIC_MASK 0xffu
#define ID_MAGIC 0xedu

#define FACTORIAL_TIMEOUT_US 1000000u
#define DMA_TIMEOUT_US 2000000u
#define RAISE_TIMEOUT_US 1000000u

enum { OP_IDENTIFY = 1, OP_FACTORIAL, OP_RAISE, OP_DMA, OP_LIVENESS, OP_STATS };
enum { ERR_UNKNOWN_OP = -1, ERR_TIMEOUT = -2, ERR_CANCELLED = -3, ERR_TOO_LARGE = -4, ERR_NO_DMA = -5 };
#define STATE_VERSION 1u

static uint32_t device_id, interrupts_seen, factorials_done, dma_transfers;

/* Acknowledge what is pending (needed under uio_pci_generic; a no-op after the kernel stub acked). */
static uint32_t ack_pending(void)
{
	uint32_t pending = wd_read32(BAR0, REG_IRQ_STATUS);
	if (pending)
		wd_write32(BAR0, REG_IRQ_ACK, pending);
	return pending;
}

/* Wait for one interrupt inside a handler: 0, ERR_TIMEOUT or ERR_CANCELLED. */
static int32_t wait_interrupt(uint32_t timeout_us)
{
	int32_t r = wd_irq_wait(timeout_us);
	if (r == WD_WAIT_CANCELLED)
		return ERR_CANCELLED;
	if (r != WD_WAIT_INTERRUPT)
		return ERR_TIMEOUT;
	interrupts_seen++;
	ack_pending();
	return 0;
}

static bool liveness_ok(void)
{
	const uint32_t pattern = 0x5a5aa5a5;
	wd_write32(BAR0, REG_LIVENESS, pattern);
	return wd_read32(BAR0, REG_LIVENESS) == ~pattern;
}

/* n! through the interrupt path: arm "raise interrupt after factorial", start, wait, read. */
static int64_t factorial(uint32_t n)
{
	wd_set_bits32(BAR0, REG_STATUS, STATUS_IRQ_FACT);
	wd_write32(BAR0, REG_FACTORIAL, n);
	int32_t r = wait_interrupt(FACTORIAL_TIMEOUT_US);
	if (r < 0)
		return r;
	if (!wd_wait_bits32(BAR0, REG_STATUS, STATUS_COMPUTING, 0, FACTORIAL_TIMEOUT_US))
		return ERR_TIMEOUT;
	factorials_done++;
	return wd_read32(BAR0, REG_FACTORIAL);
}

static int32_t raise_irqs(uint32_t count, uint32_t value)
{
	uint32_t seen = 0;
	for (uint32_t i = 0; i < count; i++) {
		wd_write32(BAR0, REG_IRQ_RAISE, value);
		int32_t r = wait_interrupt(RAISE_TIMEOUT_US);
		if (r == ERR_CANCELLED)
			return r;
		if (r == 0)
			seen++;
	}
	return (int32_t)seen;
}

static int32_t dma_transfer(uint64_t ram, uint64_t device, uint32_t len, bool to_ram)
{
	wd_write64(BAR0, REG_DMA_SRC, to_ram ? device : ram);
	wd_write64(BAR0, REG_DMA_DST, to_ram ? ram : device);
	wd_write64(BAR0, REG_DMA_COUNT, len);
	wd_write64(BAR0, REG_DMA_CMD, DMA_CMD_START | DMA_CMD_IRQ | (to_ram ? DMA_CMD_TO_RAM : 0));
	int32_t r = wait_interrupt(DMA_TIMEOUT_US);
	if (r < 0)
		return r;
	if (wd_read64(BAR0, REG_DMA_CMD) & DMA_CMD_START)
		return ERR_TIMEOUT;
	dma_transfers++;
	return 0;
}

/* Host -> device -> host through the window and the device buffer; answers what came back. */
static int32_t dma_round_trip(uint32_t len)
{
	if (wd_dma_count() < 1)
		return ERR_NO_DMA;
	struct wd_dma_window w = wd_dma_get(0);
	if (len > DEVICE_BUFFER_SIZE || len * 2 > w.size)
		return ERR_TOO_LARGE;
	__builtin_memcpy(w.addr, wd_arg_ptr(0), len);
	int32_t r = dma_transfer(wd_dma_bus_at(&w, 0), DEVICE_BUFFER, len, false);
	if (r < 0)
		return r;
	__builtin_memset(w.addr, 0, w.size);
	r = dma_transfer(wd_dma_bus_at(&w, len), DEVICE_BUFFER, len, true);
	if (r < 0)
		return r;
	struct wd_out o = { 0 };
	wd_out_bytes(&o, w.addr + len, len);
	return wd_out_end(&o);
}

WASMDRV_EXPORT(probe) int32_t probe(void)
{
	char msg[96];
	device_id = wd_read32(BAR0, REG_ID);
	if ((device_id & ID_MAGIC_MASK) != ID_MAGIC) {
		uint32_t n = wd_fmt_str(msg, 0, sizeof msg, "edu: unexpected id ");
		n = wd_fmt_hex(msg, n, sizeof msg, device_id);
		wd_fmt_str(msg, n, sizeof msg, " (want 0x..ed)");
		wd_log_error(msg);
		return -1;
	}
	if (!liveness_ok()) {
		wd_log_error("edu: liveness check failed");
		return -2;
	}
	ack_pending();
	uint32_t n = wd_fmt_str(msg, 0, sizeof msg, "edu: found device id ");
	n = wd_fmt_hex(msg, n, sizeof msg, device_id);
	n = wd_fmt_str(msg, n, sizeof msg, " (version ");
	n = wd_fmt_dec(msg, n, sizeof msg, device_id >> 24);
	n = wd_fmt_str(msg, n, sizeof msg, ".");
	n = wd_fmt_dec(msg, n, sizeof msg, (device_id >> 16) & 0xff);
	wd_fmt_str(msg, n, sizeof msg, "), liveness ok (C)");
	wd_log_info(msg);
	return 0;
}

WASMDRV_EXPORT(remove) void remove(void)
{
	wd_clear_bits32(BAR0, REG_STATUS, STATUS_IRQ_FACT);
	ack_pending();
}

/* edu has no reset register: quiesce what a previous instance may have left running. */
WASMDRV_EXPORT(reset) void reset(void)
{
	wd_clear_bits32(BAR0, REG_STATUS, STATUS_IRQ_FACT);
	wd_wait_bits32(BAR0, REG_STATUS, STATUS_COMPUTING, 0, FACTORIAL_TIMEOUT_US);
	ack_pending();
}

WASMDRV_EXPORT(interrupt) void interrupt(uint32_t count)
{
	interrupts_seen++;
	uint32_t pending = ack_pending();
	if (pending & ~(IRQ_FACT | IRQ_DMA)) {
		char msg[64];
		uint32_t n = wd_fmt_str(msg, 0, sizeof msg, "edu: interrupt ");
		n = wd_fmt_dec(msg, n, sizeof msg, count);
		n = wd_fmt_str(msg, n, sizeof msg, " status ");
		wd_fmt_hex(msg, n, sizeof msg, pending);
		wd_log_info(msg);
	}
}

WASMDRV_EXPORT(request) int32_t request(uint32_t op, uint32_t len)
{
	struct wd_out o = { 0 };
	switch (op) {
	case OP_IDENTIFY: {
		uint32_t id = wd_read32(BAR0, REG_ID);
		wd_out_u32(&o, id);
		wd_out_u32(&o, liveness_ok() ? 1 : 0);
		return wd_out_end(&o);
	}
	case OP_FACTORIAL: {
		int64_t v = factorial(wd_arg_u32(len, 0));
		if (v < 0)
			return (int32_t)v;
		wd_out_u32(&o, (uint32_t)v);
		return wd_out_end(&o);
	}
	case OP_RAISE: {
		uint32_t value = wd_arg_u32(len, 1);
		int32_t r = raise_irqs(wd_arg_u32(len, 0), value ? value : 0x1000);
		if (r < 0)
			return r;
		wd_out_u32(&o, (uint32_t)r);
		return wd_out_end(&o);
	}
	case OP_DMA:
		return dma_round_trip(len);
	case OP_LIVENESS:
		wd_write32(BAR0, REG_LIVENESS, wd_arg_u32(len, 0));
		wd_out_u32(&o, wd_read32(BAR0, REG_LIVENESS));
		return wd_out_end(&o);
	case OP_STATS:
		wd_out_u32(&o, interrupts_seen);
		wd_out_u32(&o, factorials_done);
		wd_out_u32(&o, dma_transfers);
		return wd_out_end(&o);
	}
	char msg[48];
	uint32_t n = wd_fmt_str(msg, 0, sizeof msg, "edu: unknown request op ");
	wd_fmt_dec(msg, n, sizeof msg, op);
	wd_log_warn(msg);
	return ERR_UNKNOWN_OP;
}

/* Hot reload: versioned state, the same layout as the AssemblyScript driver's. */
WASMDRV_EXPORT(state_save) int32_t state_save(void)
{
	struct wd_out o = { 0 };
	wd_out_u32(&o, STATE_VERSION);
	wd_out_u32(&o, device_id);
	wd_out_u32(&o, interrupts_seen);
	wd_out_u32(&o, factorials_done);
	wd_out_u32(&o, dma_transfers);
	return wd_out_end(&o);
}

WASMDRV_EXPORT(state_restore) int32_t state_restore(uint32_t len)
{
	struct wd_state s = { 0, len };
	if (wd_state_u32(&s) != STATE_VERSION || len < 20)
		return -1;
	device_id = wd_state_u32(&s);
	interrupts_seen = wd_state_u32(&s);
	factorials_done = wd_state_u32(&s);
	dma_transfers = wd_state_u32(&s);
	return 0;
}

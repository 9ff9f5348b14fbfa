/*
 * The wasmdrv driver SDK for C (ABI v1, wit/wasmdrv-driver.wit): the same calls as the AssemblyScript
 * SDK (guest-drivers/sdk/index.ts), as static inline functions over the raw imports in wasmdrv_abi.h.
 * Freestanding: no libc, no allocator. Build (scripts/build-drivers.mjs does this):
 *
 *   clang-14 --target=wasm32 -O2 -ffreestanding -nostdlib -mbulk-memory -I guest-drivers/sdk-c \
 *     -Wl,--no-entry -Wl,--import-memory -Wl,--export-dynamic driver.c -o driver.wasm
 *
 * then the host's finishDriver (host/build-c-rust.ts) adds the `wasmdrv_abi_version` global and keeps only ABI exports.
 *
 * A driver includes this header once, writes WASMDRV_DRIVER(); at file scope (the io buffer and the
 * DMA area with their exports), and defines probe, remove, interrupt and request with WASMDRV_EXPORT.
 */
#ifndef WASMDRV_H
#define WASMDRV_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include "wasmdrv_abi.h"

#define WASMDRV_EXPORT(name) __attribute__((export_name(#name)))

/* --- ABI plumbing --------------------------------------------------------------------------------- */

#define WASMDRV_IO_BUFFER_SIZE 8192u
#define WASMDRV_DMA_AREA_SIZE 65536u

extern uint8_t wasmdrv_io[WASMDRV_IO_BUFFER_SIZE];

/* Defines the io buffer, the DMA area (4096-aligned, zero-filled: no bytes in the binary) and their
 * four exports, plus memcpy/memset for the compiler (lowered to memory.copy / memory.fill). */
#define WASMDRV_DRIVER()                                                                              \
	uint8_t wasmdrv_io[WASMDRV_IO_BUFFER_SIZE] __attribute__((aligned(16)));                          \
	static uint8_t wasmdrv_dma[WASMDRV_DMA_AREA_SIZE] __attribute__((aligned(4096)));                 \
	WASMDRV_EXPORT(io_buffer) uint32_t io_buffer(void) { return (uint32_t)(uintptr_t)wasmdrv_io; }    \
	WASMDRV_EXPORT(io_buffer_size) uint32_t io_buffer_size(void) { return WASMDRV_IO_BUFFER_SIZE; }   \
	WASMDRV_EXPORT(dma_area) uint32_t dma_area(void) { return (uint32_t)(uintptr_t)wasmdrv_dma; }     \
	WASMDRV_EXPORT(dma_area_size) uint32_t dma_area_size(void) { return WASMDRV_DMA_AREA_SIZE; }      \
	void *memcpy(void *d, const void *s, size_t n) { __builtin_memcpy(d, s, n); return d; }           \
	void *memset(void *d, int c, size_t n) { __builtin_memset(d, c, n); return d; }                   \
	struct wasmdrv_semicolon

/* --- logging, time, giving up --------------------------------------------------------------------- */

static inline uint32_t wd_strlen(const char *s) { uint32_t n = 0; while (s[n]) n++; return n; }
static inline void wd_log(uint32_t level, const char *msg) { wasmdrv_log(level, msg, wd_strlen(msg)); }
static inline void wd_log_debug(const char *msg) { wd_log(0, msg); }
static inline void wd_log_info(const char *msg) { wd_log(1, msg); }
static inline void wd_log_warn(const char *msg) { wd_log(2, msg); }
static inline void wd_log_error(const char *msg) { wd_log(3, msg); }
/* The host stops the driver with a `panic` fault carrying msg. Never returns. */
static inline _Noreturn void wd_fail(const char *msg) { wasmdrv_panic(msg, wd_strlen(msg)); __builtin_trap(); }
/* Monotonic nanoseconds (virtual under the fuzzer). */
static inline uint64_t wd_now_ns(void) { return wasmdrv_clock_ns(); }
/* Sleep up to us microseconds; false when the host cancelled the sleep. */
static inline bool wd_sleep_us(uint32_t us) { return wasmdrv_sleep_us(us) == 0; }

/* A tiny formatter for log lines: appends to buf (size cap), returns the new length. */
static inline uint32_t wd_fmt_str(char *buf, uint32_t at, uint32_t cap, const char *s) {
	while (*s && at + 1 < cap) buf[at++] = *s++;
	buf[at] = 0;
	return at;
}
static inline uint32_t wd_fmt_hex(char *buf, uint32_t at, uint32_t cap, uint64_t v) {
	char tmp[16];
	int n = 0;
	do { tmp[n++] = "0123456789abcdef"[v & 15]; v >>= 4; } while (v && n < 16);
	at = wd_fmt_str(buf, at, cap, "0x");
	while (n && at + 1 < cap) buf[at++] = tmp[--n];
	buf[at] = 0;
	return at;
}
static inline uint32_t wd_fmt_dec(char *buf, uint32_t at, uint32_t cap, uint64_t v) {
	char tmp[20];
	int n = 0;
	do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v && n < 20);
	while (n && at + 1 < cap) buf[at++] = tmp[--n];
	buf[at] = 0;
	return at;
}

/* --- registers: every access is checked by the host ---------------------------------------------- */

static inline uint8_t wd_read8(uint32_t r, uint32_t off) { return (uint8_t)wasmdrv_reg_read8(r, off); }
static inline uint16_t wd_read16(uint32_t r, uint32_t off) { return (uint16_t)wasmdrv_reg_read16(r, off); }
static inline uint32_t wd_read32(uint32_t r, uint32_t off) { return wasmdrv_reg_read32(r, off); }
static inline uint64_t wd_read64(uint32_t r, uint32_t off) { return wasmdrv_reg_read64(r, off); }
static inline void wd_write8(uint32_t r, uint32_t off, uint8_t v) { wasmdrv_reg_write8(r, off, v); }
static inline void wd_write16(uint32_t r, uint32_t off, uint16_t v) { wasmdrv_reg_write16(r, off, v); }
static inline void wd_write32(uint32_t r, uint32_t off, uint32_t v) { wasmdrv_reg_write32(r, off, v); }
static inline void wd_write64(uint32_t r, uint32_t off, uint64_t v) { wasmdrv_reg_write64(r, off, v); }
static inline uint32_t wd_region_size(uint32_t r) { return wasmdrv_region_size(r); }
static inline void wd_set_bits32(uint32_t r, uint32_t off, uint32_t bits) { wd_write32(r, off, wd_read32(r, off) | bits); }
static inline void wd_clear_bits32(uint32_t r, uint32_t off, uint32_t bits) { wd_write32(r, off, wd_read32(r, off) & ~bits); }
/* Poll until (read32 & mask) == expected, at most timeout_us. False on timeout (no wait without one). */
static inline bool wd_wait_bits32(uint32_t r, uint32_t off, uint32_t mask, uint32_t expected, uint32_t timeout_us) {
	uint64_t deadline = wd_now_ns() + (uint64_t)timeout_us * 1000;
	while ((wd_read32(r, off) & mask) != expected)
		if (wd_now_ns() >= deadline) return (wd_read32(r, off) & mask) == expected;
	return true;
}

/* --- x86 port ranges --------------------------------------------------------------------------------- */

static inline uint8_t wd_in8(uint32_t p, uint32_t off) { return (uint8_t)wasmdrv_io_in8(p, off); }
static inline uint16_t wd_in16(uint32_t p, uint32_t off) { return (uint16_t)wasmdrv_io_in16(p, off); }
static inline uint32_t wd_in32(uint32_t p, uint32_t off) { return wasmdrv_io_in32(p, off); }
static inline void wd_out8(uint32_t p, uint32_t off, uint8_t v) { wasmdrv_io_out8(p, off, v); }
static inline void wd_out16(uint32_t p, uint32_t off, uint16_t v) { wasmdrv_io_out16(p, off, v); }
static inline void wd_out32(uint32_t p, uint32_t off, uint32_t v) { wasmdrv_io_out32(p, off, v); }

/* --- interrupts --------------------------------------------------------------------------------------- */

#define WD_WAIT_INTERRUPT 1
#define WD_WAIT_TIMEOUT 0
#define WD_WAIT_CANCELLED (-1)
static inline int32_t wd_irq_wait(uint32_t timeout_us) { return wasmdrv_irq_wait(timeout_us); }
static inline uint32_t wd_irq_count(void) { return wasmdrv_irq_count(); }
static inline void wd_irq_enable(void) { wasmdrv_irq_enable(); }
static inline void wd_irq_disable(void) { wasmdrv_irq_disable(); }

/* --- DMA windows -------------------------------------------------------------------------------------- */

struct wd_dma_window {
	uint8_t *addr; /* in this driver's memory */
	uint32_t size;
	uint64_t bus;  /* as the device sees byte 0 */
};
static inline uint32_t wd_dma_count(void) { return wasmdrv_dma_window_count(); }
static inline struct wd_dma_window wd_dma_get(uint32_t w) {
	struct wd_dma_window win = { (uint8_t *)(uintptr_t)wasmdrv_dma_window_addr(w), wasmdrv_dma_window_size(w), wasmdrv_dma_window_bus(w) };
	return win;
}
/* Bus address of byte `offset` of the window; panics when outside it. */
static inline uint64_t wd_dma_bus_at(const struct wd_dma_window *w, uint32_t offset) {
	if (offset > w->size) wd_fail("DMA offset outside the window");
	return w->bus + offset;
}

/* --- requests and state: little-endian fields in the io buffer --------------------------------------- */

/* Argument `index` (u32) of a request of `len` bytes; past the end reads as 0. */
static inline uint32_t wd_arg_u32(uint32_t len, uint32_t index) {
	uint32_t at = index * 4, v;
	if (at + 4 > len) return 0;
	__builtin_memcpy(&v, wasmdrv_io + at, 4);
	return v;
}
static inline uint64_t wd_arg_u64_at(uint32_t len, uint32_t byte_offset) {
	uint64_t v;
	if (byte_offset + 8 > len) return 0;
	__builtin_memcpy(&v, wasmdrv_io + byte_offset, 8);
	return v;
}
static inline uint8_t *wd_arg_ptr(uint32_t byte_offset) { return wasmdrv_io + byte_offset; }

/* A response (or saved state) being written into the io buffer; wd_out_end returns its length. */
struct wd_out { uint32_t at; };
static inline void wd_out_u32(struct wd_out *o, uint32_t v) { __builtin_memcpy(wasmdrv_io + o->at, &v, 4); o->at += 4; }
static inline void wd_out_u64(struct wd_out *o, uint64_t v) { __builtin_memcpy(wasmdrv_io + o->at, &v, 8); o->at += 8; }
static inline void wd_out_bytes(struct wd_out *o, const void *src, uint32_t len) {
	if (o->at + len > WASMDRV_IO_BUFFER_SIZE) wd_fail("response larger than the io buffer");
	__builtin_memmove(wasmdrv_io + o->at, src, len);
	o->at += len;
}
static inline int32_t wd_out_end(const struct wd_out *o) { return (int32_t)o->at; }

/* Reads fields back from a saved state in the io buffer (past the end reads as 0). */
struct wd_state { uint32_t at, len; };
static inline uint32_t wd_state_u32(struct wd_state *s) {
	uint32_t v;
	if (s->at + 4 > s->len) return 0;
	__builtin_memcpy(&v, wasmdrv_io + s->at, 4);
	s->at += 4;
	return v;
}
static inline uint64_t wd_state_u64(struct wd_state *s) {
	uint64_t v;
	if (s->at + 8 > s->len) return 0;
	__builtin_memcpy(&v, wasmdrv_io + s->at, 8);
	s->at += 8;
	return v;
}

#endif /* WASMDRV_H */

// Raw ABI imports (wit/wasmdrv-driver.wit). UNCHECKED on the driver side: drivers use the helpers in
// index.ts instead. This is the only file in guest-drivers/ that declares @external imports.

// registers
@external("wasmdrv", "region_count") export declare function region_count(): i32;
@external("wasmdrv", "region_size") export declare function region_size(region: i32): i32;
@external("wasmdrv", "reg_read8") export declare function reg_read8(region: i32, offset: u32): u32;
@external("wasmdrv", "reg_read16") export declare function reg_read16(region: i32, offset: u32): u32;
@external("wasmdrv", "reg_read32") export declare function reg_read32(region: i32, offset: u32): u32;
@external("wasmdrv", "reg_read64") export declare function reg_read64(region: i32, offset: u32): u64;
@external("wasmdrv", "reg_write8") export declare function reg_write8(region: i32, offset: u32, value: u32): void;
@external("wasmdrv", "reg_write16") export declare function reg_write16(region: i32, offset: u32, value: u32): void;
@external("wasmdrv", "reg_write32") export declare function reg_write32(region: i32, offset: u32, value: u32): void;
@external("wasmdrv", "reg_write64") export declare function reg_write64(region: i32, offset: u32, value: u64): void;

// ports
@external("wasmdrv", "port_count") export declare function port_count(): i32;
@external("wasmdrv", "port_size") export declare function port_size(region: i32): i32;
@external("wasmdrv", "io_in8") export declare function io_in8(region: i32, offset: u32): u32;
@external("wasmdrv", "io_in16") export declare function io_in16(region: i32, offset: u32): u32;
@external("wasmdrv", "io_in32") export declare function io_in32(region: i32, offset: u32): u32;
@external("wasmdrv", "io_out8") export declare function io_out8(region: i32, offset: u32, value: u32): void;
@external("wasmdrv", "io_out16") export declare function io_out16(region: i32, offset: u32, value: u32): void;
@external("wasmdrv", "io_out32") export declare function io_out32(region: i32, offset: u32, value: u32): void;

// irq
@external("wasmdrv", "irq_wait") export declare function irq_wait(timeout_us: u32): i32;
@external("wasmdrv", "irq_count") export declare function irq_count(): u32;
@external("wasmdrv", "irq_enable") export declare function irq_enable(): void;
@external("wasmdrv", "irq_disable") export declare function irq_disable(): void;

// dma
@external("wasmdrv", "dma_window_count") export declare function dma_window_count(): i32;
@external("wasmdrv", "dma_window_addr") export declare function dma_window_addr(w: i32): usize;
@external("wasmdrv", "dma_window_size") export declare function dma_window_size(w: i32): u32;
@external("wasmdrv", "dma_window_bus") export declare function dma_window_bus(w: i32): u64;

// services
@external("wasmdrv", "log") export declare function log(level: i32, ptr: usize, len: usize): void;
@external("wasmdrv", "clock_ns") export declare function clock_ns(): u64;
@external("wasmdrv", "sleep_us") export declare function sleep_us(us: u32): i32;
@external("wasmdrv", "panic") export declare function panic(ptr: usize, len: usize): void;

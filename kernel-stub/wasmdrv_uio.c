// SPDX-License-Identifier: GPL-2.0
/*
 * wasmdrv_uio - a generic UIO stub for wasmdrv's sandboxed user-space drivers.
 *
 * The stub maps a device's registers and acknowledges its interrupt; everything else happens in a
 * WebAssembly driver in user space (see the wasmdrv README). Its only device-specific knowledge is
 * a small table saying, per PCI vendor:device, which BARs become UIO maps and how to acknowledge
 * the interrupt.
 *
 * Build (against the running kernel, or KDIR=/usr/src/linux-headers-<version>):
 *     make -C kernel-stub [KDIR=...]
 * Load:
 *     insmod wasmdrv_uio.ko [dma_size=65536] [uart_port=0x2f8 uart_irq=3]
 * An e1000 (8086:100e) is only taken when asked for by driver_override (the stub never grabs a
 * machine's NICs on load):
 *     echo wasmdrv_uio > /sys/bus/pci/devices/0000:00:04.0/driver_override
 *     echo 0000:00:04.0 > /sys/bus/pci/drivers/e1000/unbind     (if e1000.ko holds it)
 *     echo 0000:00:04.0 > /sys/bus/pci/drivers_probe
 * Bind a PCI device that is not in the table (it gets the generic entry: INTx masking in the
 * handler, re-enabled by the 4-byte irqcontrol write of 1 to /dev/uioN):
 *     echo "VVVV DDDD" > /sys/bus/pci/drivers/wasmdrv_uio/new_id
 * Parameters:
 *     dma_size   bytes of DMA-coherent memory per PCI device, exposed as the map named "dma" whose
 *                sysfs maps/mapN/addr is the bus address the device uses (0 disables; default 64 KiB)
 *     uart_port  I/O base of a 16550 UART to expose as a UIO port region (0 = none)
 *     uart_irq   its IRQ; the handler masks the UART (IER = 0), user space re-enables it
 *
 * What user space sees (/sys/class/uio/uioN):
 *     name      "wasmdrv-<entry>" (wasmdrv-edu, wasmdrv-e1000, wasmdrv-generic, wasmdrv-uart16550)
 *     maps/     map0..: the table's BARs ("bar0", ...), then "dma"; map i is at mmap offset i * PAGE_SIZE
 *     portio/   the UART's port range (UIO_PORT_X86)
 * Reads of /dev/uioN return the 4-byte interrupt count; writes take irqcontrol (1 unmask, 0 mask).
 */

#include <linux/dma-mapping.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/ioport.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/platform_device.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/uio_driver.h>
#include <linux/version.h>

/*
 * vma->vm_flags is read-only from Linux 6.3 on (the vm_flags wrapper functions of "mm: introduce vma->vm_flags
 * wrapper functions"): flags are set through vm_flags_set(). Older kernels assign the field.
 */
/*
 * Whether the device's driver_override names this driver. Newer kernels (and Debian's 6.12, which
 * backports it) keep the override in struct device behind a lock, with device_match_driver_override();
 * older ones in pci_dev->driver_override. Kbuild tests the header (STUB_DEVICE_DRIVER_OVERRIDE): a
 * version number cannot tell a backport.
 */
static struct pci_driver stub_pci_driver;

static bool stub_driver_override_is_us(struct pci_dev *pdev)
{
#ifdef STUB_DEVICE_DRIVER_OVERRIDE
	return device_match_driver_override(&pdev->dev, &stub_pci_driver.driver) > 0;
#else
	return pdev->driver_override && !strcmp(pdev->driver_override, stub_pci_driver.name);
#endif
}

static inline void stub_vm_flags_set(struct vm_area_struct *vma, vm_flags_t flags)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
	vm_flags_set(vma, flags);
#else
	vma->vm_flags |= flags;
#endif
}

#define DRV_NAME "wasmdrv_uio"
#define DRV_VERSION "0.1"

static unsigned int dma_size = 65536;
module_param(dma_size, uint, 0444);
MODULE_PARM_DESC(dma_size, "bytes of DMA-coherent memory per PCI device (0 = none)");

static unsigned int uart_port;
module_param(uart_port, uint, 0444);
MODULE_PARM_DESC(uart_port, "I/O base of a 16550 UART to expose (0 = none)");

static unsigned int uart_irq;
module_param(uart_irq, uint, 0444);
MODULE_PARM_DESC(uart_irq, "IRQ of that UART");

/* How a device in the table interrupts and is acknowledged. */
enum ack_kind {
	ACK_STATUS_WRITE_BACK, /* read status; 0 = not ours; else write it to the ack register */
	ACK_INTX_MASK,	       /* PCI 2.3 INTx masking; irqcontrol re-enables */
};

struct stub_entry {
	const char *name;
	u32 bars; /* bitmask of memory BARs that become UIO maps */
	enum ack_kind ack;
	int status_bar;
	u32 status_off;
	u32 ack_off;	       /* in status_bar */
	unsigned int dma_bits; /* DMA mask the device can address */
};

/* QEMU's edu device: status 0x24, acknowledge 0x64, 28-bit DMA addresses (docs/specs/edu.rst). */
static const struct stub_entry edu_entry = {
	.name = "wasmdrv-edu",
	.bars = BIT(0),
	.ack = ACK_STATUS_WRITE_BACK,
	.status_bar = 0,
	.status_off = 0x24,
	.ack_off = 0x64,
	.dma_bits = 28,
};

/*
 * Intel 82540EM (QEMU's e1000, 8086:100e). Its cause register ICR is read-to-clear, so a handler
 * that read it would take the causes away from the driver; and writing IMC would mask the device
 * without telling whether it raised the line. PCI 2.3 INTx masking does both without touching the
 * device: the status bit says whether it interrupted, the command bit masks it, irqcontrol re-enables
 * it after the driver has read ICR. Only BAR0 (MMIO, 128 KiB) is mapped: QEMU leaves the I/O BAR
 * unimplemented. Load with dma_size=262144 for the driver's rings and buffers.
 */
static const struct stub_entry e1000_entry = {
	.name = "wasmdrv-e1000",
	.bars = BIT(0),
	.ack = ACK_INTX_MASK,
	.dma_bits = 32,
};

/* Devices added through new_id: every memory BAR, INTx masking, 32-bit DMA. */
static const struct stub_entry generic_entry = {
	.name = "wasmdrv-generic",
	.bars = 0x3f,
	.ack = ACK_INTX_MASK,
	.dma_bits = 32,
};

struct stub_pci {
	struct uio_info info;
	struct pci_dev *pdev;
	const struct stub_entry *entry;
	void __iomem *status_regs;
	void *dma_virt;
	dma_addr_t dma_bus;
	int dma_map; /* index of the "dma" map, or -1 */
	spinlock_t lock;
	bool irq_masked;
};

static irqreturn_t stub_pci_irq(int irq, struct uio_info *info)
{
	struct stub_pci *s = info->priv;
	u32 status;

	if (s->entry->ack == ACK_INTX_MASK)
		return pci_check_and_mask_intx(s->pdev) ? IRQ_HANDLED : IRQ_NONE;

	status = ioread32(s->status_regs + s->entry->status_off);
	if (!status || status == 0xffffffff)
		return IRQ_NONE;
	iowrite32(status, s->status_regs + s->entry->ack_off);
	return IRQ_HANDLED;
}

/* The 4-byte write to /dev/uioN: 1 unmask, 0 mask. Idempotent, so user space may re-arm freely. */
static int stub_pci_irqcontrol(struct uio_info *info, s32 on)
{
	struct stub_pci *s = info->priv;
	unsigned long flags;

	if (s->entry->ack == ACK_INTX_MASK) {
		pci_intx(s->pdev, !!on);
		return 0;
	}
	spin_lock_irqsave(&s->lock, flags);
	if (on && s->irq_masked) {
		s->irq_masked = false;
		enable_irq(info->irq);
	} else if (!on && !s->irq_masked) {
		s->irq_masked = true;
		disable_irq_nosync(info->irq);
	}
	spin_unlock_irqrestore(&s->lock, flags);
	return 0;
}

/* BARs are mapped uncached; the DMA buffer through the DMA API so its attributes match the kernel's. */
static int stub_pci_mmap(struct uio_info *info, struct vm_area_struct *vma)
{
	struct stub_pci *s = info->priv;
	unsigned long mi = vma->vm_pgoff;
	unsigned long len = vma->vm_end - vma->vm_start;
	struct uio_mem *mem;

	if (mi >= MAX_UIO_MAPS || !info->mem[mi].size)
		return -EINVAL;
	mem = &info->mem[mi];
	if (len > PAGE_ALIGN(mem->size))
		return -EINVAL;
	if ((int)mi == s->dma_map) {
		vma->vm_pgoff = 0;
		return dma_mmap_coherent(&s->pdev->dev, vma, s->dma_virt, s->dma_bus, len);
	}
	stub_vm_flags_set(vma, VM_IO | VM_DONTEXPAND | VM_DONTDUMP);
	vma->vm_page_prot = pgprot_noncached(vma->vm_page_prot);
	return io_remap_pfn_range(vma, vma->vm_start, mem->addr >> PAGE_SHIFT, len,
				  vma->vm_page_prot);
}

static int stub_pci_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	const struct stub_entry *entry =
		id->driver_data ? (const struct stub_entry *)id->driver_data : &generic_entry;
	struct stub_pci *s;
	int bar, n = 0, err;

	/* A NIC is someone's network: take it only when the administrator named this driver for it. */
	if (entry == &e1000_entry && !stub_driver_override_is_us(pdev))
		return -ENODEV;

	err = pcim_enable_device(pdev);
	if (err)
		return err;
	if (!pdev->irq) {
		dev_warn(&pdev->dev, "no legacy interrupt: interrupts will not be delivered\n");
	} else if (entry->ack == ACK_INTX_MASK && !pci_intx_mask_supported(pdev)) {
		dev_err(&pdev->dev, "device does not support INTx masking\n");
		return -ENODEV;
	}
	err = pci_request_regions(pdev, DRV_NAME);
	if (err)
		return err;

	s = devm_kzalloc(&pdev->dev, sizeof(*s), GFP_KERNEL);
	if (!s) {
		err = -ENOMEM;
		goto release;
	}
	s->pdev = pdev;
	s->entry = entry;
	s->dma_map = -1;
	spin_lock_init(&s->lock);

	for (bar = 0; bar < PCI_STD_NUM_BARS && n < MAX_UIO_MAPS - 1; bar++) {
		if (!(entry->bars & BIT(bar)) ||
		    !(pci_resource_flags(pdev, bar) & IORESOURCE_MEM) ||
		    !pci_resource_len(pdev, bar))
			continue;
		s->info.mem[n].name = devm_kasprintf(&pdev->dev, GFP_KERNEL, "bar%d", bar);
		s->info.mem[n].addr = pci_resource_start(pdev, bar);
		s->info.mem[n].size = pci_resource_len(pdev, bar);
		s->info.mem[n].memtype = UIO_MEM_PHYS;
		n++;
	}
	if (entry->ack == ACK_STATUS_WRITE_BACK) {
		s->status_regs = pcim_iomap(pdev, entry->status_bar, 0);
		if (!s->status_regs) {
			err = -ENOMEM;
			goto release;
		}
	}

	if (dma_size) {
		pci_set_master(pdev);
		err = dma_set_mask_and_coherent(&pdev->dev, DMA_BIT_MASK(entry->dma_bits));
		if (err)
			goto release;
		s->dma_virt = dmam_alloc_coherent(&pdev->dev, PAGE_ALIGN(dma_size), &s->dma_bus,
						  GFP_KERNEL);
		if (!s->dma_virt) {
			err = -ENOMEM;
			goto release;
		}
		s->dma_map = n;
		s->info.mem[n].name = "dma";
		s->info.mem[n].addr = s->dma_bus; /* sysfs addr: the bus address the device uses */
		s->info.mem[n].size = PAGE_ALIGN(dma_size);
		s->info.mem[n].memtype = UIO_MEM_PHYS;
		n++;
	}

	s->info.name = entry->name;
	s->info.version = DRV_VERSION;
	s->info.priv = s;
	s->info.irq = pdev->irq ? pdev->irq : UIO_IRQ_NONE;
	s->info.irq_flags = IRQF_SHARED;
	s->info.handler = stub_pci_irq;
	s->info.irqcontrol = stub_pci_irqcontrol;
	s->info.mmap = stub_pci_mmap;

	err = devm_uio_register_device(&pdev->dev, &s->info);
	if (err)
		goto release;
	pci_set_drvdata(pdev, s);
	dev_info(&pdev->dev, "%s: %d map(s), dma %pad+%u\n", entry->name, n, &s->dma_bus,
		 s->dma_virt ? PAGE_ALIGN(dma_size) : 0);
	return 0;

release:
	pci_release_regions(pdev);
	return err;
}

static void stub_pci_remove(struct pci_dev *pdev)
{
	/* devm undoes the UIO device, the DMA buffer and the mapping; the regions are ours to release. */
	pci_release_regions(pdev);
}

static const struct pci_device_id stub_pci_ids[] = {
	{ PCI_DEVICE(0x1234, 0x11e8), .driver_data = (kernel_ulong_t)&edu_entry },
	/* only through driver_override (see the header and stub_pci_probe) */
	{ PCI_DEVICE(0x8086, 0x100e), .driver_data = (kernel_ulong_t)&e1000_entry },
	{
		0,
	}
};
MODULE_DEVICE_TABLE(pci, stub_pci_ids);

static struct pci_driver stub_pci_driver = {
	.name = DRV_NAME,
	.id_table = stub_pci_ids,
	.probe = stub_pci_probe,
	.remove = stub_pci_remove,
};

/* ---- 16550 UART on a fixed port and IRQ ------------------------------------------------------ */

#define UART_IER 1
#define UART_IIR 2
#define UART_IIR_NO_INT 0x01

static struct platform_device *uart_pdev;
static struct uio_info uart_info;

static irqreturn_t stub_uart_irq(int irq, struct uio_info *info)
{
	unsigned long base = info->port[0].start;

	if (inb(base + UART_IIR) & UART_IIR_NO_INT)
		return IRQ_NONE;
	outb(0, base + UART_IER); /* mask: user space services the UART and re-enables IER */
	return IRQ_HANDLED;
}

static int stub_uart_init(void)
{
	int err;

	if (!uart_port)
		return 0;
	if (!request_region(uart_port, 8, "wasmdrv-uart16550")) {
		pr_err(DRV_NAME ": ports 0x%x-0x%x are busy\n", uart_port, uart_port + 7);
		return -EBUSY;
	}
	outb(0, uart_port + UART_IER);
	uart_pdev = platform_device_register_simple("wasmdrv-uart16550", -1, NULL, 0);
	if (IS_ERR(uart_pdev)) {
		err = PTR_ERR(uart_pdev);
		goto release;
	}
	uart_info.name = "wasmdrv-uart16550";
	uart_info.version = DRV_VERSION;
	uart_info.port[0].name = "uart";
	uart_info.port[0].start = uart_port;
	uart_info.port[0].size = 8;
	uart_info.port[0].porttype = UIO_PORT_X86;
	uart_info.irq = uart_irq ? uart_irq : UIO_IRQ_NONE;
	uart_info.irq_flags = 0;
	uart_info.handler = stub_uart_irq;
	err = uio_register_device(&uart_pdev->dev, &uart_info);
	if (err)
		goto unregister;
	pr_info(DRV_NAME ": 16550 at 0x%x irq %u\n", uart_port, uart_irq);
	return 0;

unregister:
	platform_device_unregister(uart_pdev);
release:
	release_region(uart_port, 8);
	return err;
}

static void stub_uart_exit(void)
{
	if (!uart_port)
		return;
	uio_unregister_device(&uart_info);
	platform_device_unregister(uart_pdev);
	release_region(uart_port, 8);
}

static int __init stub_init(void)
{
	int err = stub_uart_init();

	if (err)
		return err;
	err = pci_register_driver(&stub_pci_driver);
	if (err)
		stub_uart_exit();
	return err;
}

static void __exit stub_exit(void)
{
	pci_unregister_driver(&stub_pci_driver);
	stub_uart_exit();
}

module_init(stub_init);
module_exit(stub_exit);

MODULE_LICENSE("GPL v2");
MODULE_DESCRIPTION("Generic UIO stub for wasmdrv sandboxed user-space drivers");
MODULE_VERSION(DRV_VERSION);

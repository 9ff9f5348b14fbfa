// wasmdrv native addon: the thin layer that touches mmap, ioperm, poll and file descriptors.
//
// Policy lives in TypeScript (host/native.ts documents every function). Here: do the syscall, and on
// failure throw an Error carrying errno, syscall and path (host/native.ts names the errno). Lifetimes are explicit: Mapping.close()
// detaches every ArrayBuffer it handed out before munmap, so no JS or Wasm access outlives the memory.

#include <napi.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <time.h>
#include <unistd.h>
#include <linux/vfio.h>
#if defined(__x86_64__) || defined(__i386__)
#include <sys/io.h>
#define WASMDRV_HAVE_PORTIO 1
#endif

#include <string>
#include <vector>

namespace
{

[[noreturn]] void ThrowErrno(Napi::Env env, int err, const char *syscall,
			     const std::string &path = "")
{
	// The errno's name ("ENOENT") is added in TypeScript (host/native.ts, util.getSystemErrorName).
	std::string msg =
		std::string(syscall) + (path.empty() ? "" : " " + path) + ": " + strerror(err);
	Napi::Error e = Napi::Error::New(env, msg);
	e.Set("errno", Napi::Number::New(env, err));
	e.Set("syscall", Napi::String::New(env, syscall));
	if (!path.empty())
		e.Set("path", Napi::String::New(env, path));
	throw e;
}

int64_t Int(const Napi::CallbackInfo &info, size_t i, const char *what)
{
	if (info.Length() <= i || !info[i].IsNumber()) {
		throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
	}
	return info[i].As<Napi::Number>().Int64Value();
}

std::string Str(const Napi::CallbackInfo &info, size_t i, const char *what)
{
	if (info.Length() <= i || !info[i].IsString()) {
		throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a string");
	}
	return info[i].As<Napi::String>().Utf8Value();
}

std::string OptStr(const Napi::CallbackInfo &info, size_t i)
{
	return info.Length() > i && info[i].IsString() ? info[i].As<Napi::String>().Utf8Value()
						       : "";
}

// Constructors are per environment: the addon is loaded by the main thread and by every driver's
// worker, each with its own V8 isolate, so nothing JS-related may live in a static.
struct PerEnv {
	Napi::FunctionReference mapping;
	Napi::FunctionReference fixedMapping;
};

PerEnv &Data(Napi::Env env)
{
	return *env.GetInstanceData<PerEnv>();
}

// ---------------------------------------------------------------------------------------------------
// Mapping: an mmap'd region handing out external ArrayBuffers, detached on close.
// ---------------------------------------------------------------------------------------------------

class Mapping : public Napi::ObjectWrap<Mapping>
{
      public:
	static void Init(Napi::Env env, Napi::Object exports)
	{
		Napi::Function f = DefineClass(env, "Mapping",
					       {
						       InstanceAccessor<&Mapping::Size>("size"),
						       InstanceAccessor<&Mapping::Closed>("closed"),
						       InstanceMethod<&Mapping::Buffer>("buffer"),
						       InstanceMethod<&Mapping::Close>("close"),
					       });
		Data(env).mapping = Napi::Persistent(f);
		exports.Set("Mapping", f);
	}

	static Napi::Object Make(Napi::Env env, void *addr, size_t size, const std::string &path)
	{
		Napi::Object o = Data(env).mapping.New({});
		Mapping *m = Unwrap(o);
		m->addr_ = addr;
		m->size_ = size;
		m->path_ = path;
		return o;
	}

	explicit Mapping(const Napi::CallbackInfo &info) : Napi::ObjectWrap<Mapping>(info)
	{
	}

	~Mapping() override
	{
		// Backstop only: close() is the plan. The buffers are gone with the environment at this point.
		if (addr_)
			munmap(addr_, size_);
	}

      private:
	Napi::Value Size(const Napi::CallbackInfo &info)
	{
		return Napi::Number::New(info.Env(), double(size_));
	}
	Napi::Value Closed(const Napi::CallbackInfo &info)
	{
		return Napi::Boolean::New(info.Env(), addr_ == nullptr);
	}

	Napi::Value Buffer(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		if (!addr_)
			ThrowErrno(env, EBADF, "mmap", path_ + " (mapping closed)");
		Napi::ArrayBuffer ab =
			Napi::ArrayBuffer::New(env, addr_, size_, [](Napi::Env, void *) {});
		// Weak references: a buffer the program dropped needs no detaching.
		buffers_.push_back(Napi::Weak(ab));
		return ab;
	}

	Napi::Value Close(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		if (!addr_)
			return env.Undefined();
		for (auto &ref : buffers_) {
			if (ref.IsEmpty())
				continue;
			Napi::Value v = ref.Value();
			if (v.IsArrayBuffer()) {
				napi_status s = napi_detach_arraybuffer(env, v);
				if (s != napi_ok)
					throw Napi::Error::New(
						env, "napi_detach_arraybuffer failed for " + path_);
			}
			ref.Reset();
		}
		buffers_.clear();
		if (munmap(addr_, size_) != 0)
			ThrowErrno(env, errno, "munmap", path_);
		addr_ = nullptr;
		return env.Undefined();
	}

	void *addr_ = nullptr;
	size_t size_ = 0;
	std::string path_;
	std::vector<Napi::Reference<Napi::ArrayBuffer>> buffers_;
};

// A file mapped MAP_FIXED over part of an existing buffer; close() puts anonymous zero pages back.
class FixedMapping : public Napi::ObjectWrap<FixedMapping>
{
      public:
	static void Init(Napi::Env env, Napi::Object exports)
	{
		Napi::Function f =
			DefineClass(env, "FixedMapping",
				    {
					    InstanceAccessor<&FixedMapping::Size>("size"),
					    InstanceAccessor<&FixedMapping::Closed>("closed"),
					    InstanceMethod<&FixedMapping::Close>("close"),
				    });
		Data(env).fixedMapping = Napi::Persistent(f);
		exports.Set("FixedMapping", f);
	}

	static Napi::Object Make(Napi::Env env, void *addr, size_t size, const std::string &path)
	{
		Napi::Object o = Data(env).fixedMapping.New({});
		FixedMapping *m = Unwrap(o);
		m->addr_ = addr;
		m->size_ = size;
		m->path_ = path;
		return o;
	}

	explicit FixedMapping(const Napi::CallbackInfo &info) : Napi::ObjectWrap<FixedMapping>(info)
	{
	}

      private:
	Napi::Value Size(const Napi::CallbackInfo &info)
	{
		return Napi::Number::New(info.Env(), double(size_));
	}
	Napi::Value Closed(const Napi::CallbackInfo &info)
	{
		return Napi::Boolean::New(info.Env(), addr_ == nullptr);
	}

	Napi::Value Close(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		if (!addr_)
			return env.Undefined();
		void *r = mmap(addr_, size_, PROT_READ | PROT_WRITE,
			       MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (r == MAP_FAILED)
			ThrowErrno(env, errno, "mmap", path_ + " (restoring anonymous pages)");
		addr_ = nullptr;
		return env.Undefined();
	}

	void *addr_ = nullptr;
	size_t size_ = 0;
	std::string path_;
};

// ---------------------------------------------------------------------------------------------------
// Functions
// ---------------------------------------------------------------------------------------------------

Napi::Value PageSize(const Napi::CallbackInfo &info)
{
	return Napi::Number::New(info.Env(), double(sysconf(_SC_PAGESIZE)));
}

Napi::Value Open(const Napi::CallbackInfo &info)
{
	std::string path = Str(info, 0, "path");
	bool ro = info.Length() > 1 && info[1].ToBoolean();
	int fd = open(path.c_str(), (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		ThrowErrno(info.Env(), errno, "open", path);
	return Napi::Number::New(info.Env(), fd);
}

Napi::Value Close(const Napi::CallbackInfo &info)
{
	int fd = int(Int(info, 0, "fd"));
	if (close(fd) != 0)
		ThrowErrno(info.Env(), errno, "close", "fd " + std::to_string(fd));
	return info.Env().Undefined();
}

Napi::Value MemfdCreate(const Napi::CallbackInfo &info)
{
	std::string name = Str(info, 0, "name");
	int64_t size = Int(info, 1, "size");
	int fd = memfd_create(name.c_str(), MFD_CLOEXEC);
	if (fd < 0)
		ThrowErrno(info.Env(), errno, "memfd_create", name);
	if (ftruncate(fd, off_t(size)) != 0) {
		int e = errno;
		close(fd);
		ThrowErrno(info.Env(), e, "ftruncate", name);
	}
	return Napi::Number::New(info.Env(), fd);
}

Napi::Value MapFdImpl(Napi::Env env, int fd, int64_t size, int64_t offset, const std::string &path)
{
	if (size <= 0 || offset < 0)
		ThrowErrno(env, EINVAL, "mmap", path);
	void *addr =
		mmap(nullptr, size_t(size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, off_t(offset));
	if (addr == MAP_FAILED)
		ThrowErrno(env, errno, "mmap", path);
	return Mapping::Make(env, addr, size_t(size), path);
}

Napi::Value MapFd(const Napi::CallbackInfo &info)
{
	int fd = int(Int(info, 0, "fd"));
	std::string path = OptStr(info, 3);
	if (path.empty())
		path = "fd " + std::to_string(fd);
	return MapFdImpl(info.Env(), fd, Int(info, 1, "size"), Int(info, 2, "offset"), path);
}

Napi::Value MapFile(const Napi::CallbackInfo &info)
{
	std::string path = Str(info, 0, "path");
	int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
	if (fd < 0)
		ThrowErrno(info.Env(), errno, "open", path);
	try {
		Napi::Value m = MapFdImpl(info.Env(), fd, Int(info, 1, "size"),
					  Int(info, 2, "offset"), path);
		close(fd);
		return m;
	} catch (...) {
		close(fd);
		throw;
	}
}

Napi::Value MapIntoBuffer(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	if (info.Length() < 5 || !info[0].IsArrayBuffer())
		throw Napi::TypeError::New(env, "buffer must be an ArrayBuffer");
	Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
	int64_t off = Int(info, 1, "byteOffset");
	int64_t size = Int(info, 2, "size");
	int fd = int(Int(info, 3, "fd"));
	int64_t fdOff = Int(info, 4, "fdOffset");
	std::string path = OptStr(info, 5);
	if (path.empty())
		path = "fd " + std::to_string(fd);
	const int64_t page = sysconf(_SC_PAGESIZE);
	uint8_t *base = static_cast<uint8_t *>(ab.Data());
	int64_t len = int64_t(ab.ByteLength());
	if (off < 0 || size <= 0 || fdOff < 0 || off > len || size > len - off || off % page ||
	    size % page || fdOff % page ||
	    (reinterpret_cast<uintptr_t>(base + off) % uintptr_t(page))) {
		ThrowErrno(env, EINVAL, "mmap",
			   path + " (range must be page-aligned and inside the buffer)");
	}
	void *want = base + off;
	void *addr = mmap(want, size_t(size), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd,
			  off_t(fdOff));
	if (addr == MAP_FAILED)
		ThrowErrno(env, errno, "mmap", path);
	return FixedMapping::Make(env, addr, size_t(size), path);
}

Napi::Value EventfdCreate(const Napi::CallbackInfo &info)
{
	unsigned initial =
		info.Length() > 0 && info[0].IsNumber() ? unsigned(Int(info, 0, "initial")) : 0;
	int fd = eventfd(initial, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd < 0)
		ThrowErrno(info.Env(), errno, "eventfd");
	return Napi::Number::New(info.Env(), fd);
}

Napi::Value EventfdWrite(const Napi::CallbackInfo &info)
{
	int fd = int(Int(info, 0, "fd"));
	uint64_t n = info.Length() > 1 && info[1].IsNumber() ? uint64_t(Int(info, 1, "n")) : 1;
	if (write(fd, &n, sizeof n) != sizeof n)
		ThrowErrno(info.Env(), errno, "write", "eventfd " + std::to_string(fd));
	return info.Env().Undefined();
}

// eventfdWriteStamped(fd, words, i): words[i] = CLOCK_MONOTONIC in ns (words a BigUint64Array), then
// add 1 to eventfd fd: what a C interrupt source does (stamp, signal) with nothing between the two.
// The irq bench's JavaScript pinger used monotonicInto, stores and eventfdWrite, and each wake-up it
// timed included that call's return and the next one's argument checks (~0.2 us; docs/benchmarks.md).
Napi::Value EventfdWriteStamped(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int fd = int(Int(info, 0, "fd"));
	if (info.Length() < 3 || !info[1].IsTypedArray() ||
	    info[1].As<Napi::TypedArray>().TypedArrayType() != napi_biguint64_array)
		throw Napi::TypeError::New(env, "words must be a BigUint64Array");
	Napi::TypedArrayOf<uint64_t> words = info[1].As<Napi::TypedArrayOf<uint64_t>>();
	int64_t i = Int(info, 2, "index");
	if (i < 0 || size_t(i) >= words.ElementLength())
		throw Napi::RangeError::New(env, "index outside words");
	volatile uint64_t *at = words.Data() + i;
	uint64_t one = 1;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	*at = uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
	if (write(fd, &one, sizeof one) != sizeof one)
		ThrowErrno(env, errno, "write", "eventfd " + std::to_string(fd));
	return env.Undefined();
}

Napi::Value EventfdRead(const Napi::CallbackInfo &info)
{
	int fd = int(Int(info, 0, "fd"));
	uint64_t n = 0;
	ssize_t r = read(fd, &n, sizeof n);
	if (r < 0) {
		if (errno == EAGAIN)
			return Napi::Number::New(info.Env(), 0);
		ThrowErrno(info.Env(), errno, "read", "eventfd " + std::to_string(fd));
	}
	return Napi::Number::New(info.Env(), double(n));
}

int64_t NowMs()
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// The arguments (out, i) of monotonicInto and clockInto: out (info[0]) a Float64Array, i (info[1]) an
// index inside it. The array and the address of its element i, else a TypeError or a RangeError.
struct ClockOut {
	Napi::Float64Array out;
	double *at;
};

ClockOut ClockOutArgs(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	if (info.Length() < 2 || !info[0].IsTypedArray() ||
	    info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
		throw Napi::TypeError::New(env, "out must be a Float64Array");
	Napi::Float64Array out = info[0].As<Napi::Float64Array>();
	int64_t i = Int(info, 1, "index");
	if (i < 0 || size_t(i) >= out.ElementLength())
		throw Napi::RangeError::New(env, "index outside out");
	return { out, out.Data() + i };
}

// monotonicInto(out, i): out[i] = CLOCK_MONOTONIC in ns (out a Float64Array). The clock without a
// return value: a number of ns returned from native code is a heap number, allocated on every read.
Napi::Value MonotonicInto(const Napi::CallbackInfo &info)
{
	double *at = ClockOutArgs(info).at;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	*at = double(ts.tv_sec) * 1e9 + double(ts.tv_nsec);
	return info.Env().Undefined();
}

// clockInto(out, i): a function of no arguments that stores CLOCK_MONOTONIC in ns into out[i] (out a
// Float64Array), for a Wasm import to be the native function itself: a JavaScript closure calling
// monotonicInto adds a frame and monotonicInto's argument checks (~150 ns of its ~200 ns per call,
// docs/benchmarks.md, "The interrupt tail"). The element's address is taken once; the function keeps
// the array alive (a property), and for a plain ArrayBuffer, which can be detached, checks that first.
struct ClockSlot {
	double *at;
	napi_ref buffer; // the ArrayBuffer when it can be detached, else nullptr
};

napi_value ClockFill(napi_env env, napi_callback_info info)
{
	void *data = nullptr;
	napi_get_cb_info(env, info, nullptr, nullptr, nullptr, &data);
	ClockSlot *slot = static_cast<ClockSlot *>(data);
	if (slot->buffer) {
		napi_value ab;
		bool detached = true;
		if (napi_get_reference_value(env, slot->buffer, &ab) != napi_ok ||
		    napi_is_detached_arraybuffer(env, ab, &detached) != napi_ok || detached) {
			napi_throw_type_error(env, nullptr,
					      "clock: its Float64Array's buffer was detached");
			return nullptr;
		}
	}
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	*slot->at = double(ts.tv_sec) * 1e9 + double(ts.tv_nsec);
	return nullptr;
}

Napi::Value ClockInto(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	auto [out, at] = ClockOutArgs(info);
	Napi::Value ab =
		out.ArrayBuffer(); // a SharedArrayBuffer comes back too (napi_get_typedarray_info)
	bool plain = false;
	NAPI_THROW_IF_FAILED(env, napi_is_arraybuffer(env, ab, &plain), Napi::Value());
	ClockSlot *slot = new ClockSlot{ at, nullptr };
	if (plain && napi_create_reference(env, ab, 1, &slot->buffer) != napi_ok) {
		delete slot;
		throw Napi::Error::New(env, "clockInto: napi_create_reference failed");
	}
	napi_value fn;
	if (napi_create_function(env, "clock", NAPI_AUTO_LENGTH, ClockFill, slot, &fn) != napi_ok) {
		if (slot->buffer)
			napi_delete_reference(env, slot->buffer);
		delete slot;
		throw Napi::Error::New(env, "clockInto: napi_create_function failed");
	}
	Napi::Function f(env, fn);
	f.AddFinalizer(
		[](Napi::Env e, ClockSlot *s) {
			if (s->buffer)
				napi_delete_reference(e, s->buffer);
			delete s;
		},
		slot);
	// The array stays alive as long as the function: the slot's address stays valid.
	f.DefineProperty(Napi::PropertyDescriptor::Value("out", out, napi_default));
	return f;
}

// poll() on fds[0..n) for POLLIN, retrying EINTR with the time left; returns bit i set when fds[i] is
// readable (or in error/hangup). `p` has room for 31 entries; a negative fd is ignored by poll().
uint32_t PollBits(Napi::Env env, const Napi::Int32Array &fds, int64_t timeout, struct pollfd *p)
{
	size_t n = fds.ElementLength();
	for (size_t i = 0; i < n; i++) {
		p[i].fd = fds[i];
		p[i].events = POLLIN;
		p[i].revents = 0;
	}
	const int64_t deadline = timeout >= 0 ? NowMs() + timeout : -1;
	for (;;) {
		int left = timeout < 0 ? -1 : int(deadline - NowMs() > 0 ? deadline - NowMs() : 0);
		int r = poll(p, nfds_t(n), left);
		if (r >= 0)
			break;
		if (errno != EINTR)
			ThrowErrno(env, errno, "poll");
	}
	uint32_t bits = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i].revents & (POLLIN | POLLERR | POLLHUP | POLLNVAL))
			bits |= 1u << i;
	}
	return bits;
}

Napi::Int32Array FdsArg(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	if (info.Length() < 2 || !info[0].IsTypedArray() ||
	    info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
		throw Napi::TypeError::New(env, "fds must be an Int32Array");
	}
	Napi::Int32Array fds = info[0].As<Napi::Int32Array>();
	if (fds.ElementLength() > 31)
		ThrowErrno(env, EINVAL, "poll", "(more than 31 fds)");
	return fds;
}

Napi::Value Poll(const Napi::CallbackInfo &info)
{
	Napi::Int32Array fds = FdsArg(info);
	struct pollfd p[31];
	return Napi::Number::New(info.Env(),
				 PollBits(info.Env(), fds, Int(info, 1, "timeoutMs"), p));
}

// pollRead(fds, timeoutMs, width, out): poll() as above, then, when fds[0] is readable and width is
// 4 (a UIO event count) or 8 (an eventfd counter), read it in the same call and store the value in
// out[0] (a Float64Array; when it has a second element, out[1] gets CLOCK_MONOTONIC in ns taken as
// poll() returned, for latency breakdowns; a third gets it again after the read). Bit 31 of the result says a value was read: the result is
// returned as a signed 32-bit number (negative then), which V8 keeps as a small integer; as an unsigned
// one it was a heap number, allocated on every interrupt. One crossing instead of two on the interrupt
// path. EAGAIN (someone else consumed it) is not an error: nothing is read.
Napi::Value PollRead(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	Napi::Int32Array fds = FdsArg(info);
	if (fds.ElementLength() < 1)
		ThrowErrno(env, EINVAL, "poll", "(no fds)");
	if (info.Length() < 4 || !info[3].IsTypedArray() ||
	    info[3].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
	    info[3].As<Napi::TypedArray>().ElementLength() < 1) {
		throw Napi::TypeError::New(env, "out must be a Float64Array");
	}
	Napi::Float64Array out = info[3].As<Napi::Float64Array>();
	int64_t timeout = Int(info, 1, "timeoutMs");
	int64_t width = Int(info, 2, "width");
	if (width != 4 && width != 8)
		throw Napi::TypeError::New(env, "width must be 4 or 8");
	struct pollfd p[31];
	uint32_t bits = PollBits(env, fds, timeout, p);
	if (out.ElementLength() >= 2) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		out[1] = double(ts.tv_sec) * 1e9 + double(ts.tv_nsec);
	}
	if (bits & 1) {
		uint64_t v = 0;
		ssize_t r = read(p[0].fd, &v, size_t(width));
		if (r == width) {
			out[0] = width == 4 ? double(uint32_t(v)) : double(v);
			bits |= 1u << 31;
		} else if (r < 0 && errno != EAGAIN) {
			ThrowErrno(env, errno, "read", "fd " + std::to_string(p[0].fd));
		}
	}
	if (out.ElementLength() >=
	    3) { // out[2]: the clock again as the read returned (the bench's breakdown)
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		out[2] = double(ts.tv_sec) * 1e9 + double(ts.tv_nsec);
	}
	return Napi::Number::New(env, double(int32_t(bits)));
}

// irqWaiter(cfg): irq_wait(timeoutUs) as a native function, for the Wasm import to be the function
// itself, so that an interrupt's way back into the driver crosses no JavaScript: the wait polls, reads
// the count and does the bookkeeping JavaScript did (host/sandbox/interrupts.ts noteCount: the
// coalesced and interrupt counters, the recorder's irq entry) here, then returns 1 to Wasm. What it does
// not serve it hands to cfg.slow, the JavaScript wait, with the same argument: a stop already asked
// for, interrupts the driver turned off. cfg.rearm (optional) runs before each wait for a line that
// masks on every event; cfg.after (optional) after each new count, before the driver looks (the
// descriptor firewall's write-backs). cfg:
//   fds     Int32Array [the interrupt fd, the cancel fd]
//   width   4: a UIO event count (the value is the count), 8: an eventfd counter (added to it)
//   source  Float64Array: [0] the source's cumulative count (shared with its consume()/absorb())
//   state   Float64Array: [0] the count the driver has seen, [1] non-zero while it wants interrupts,
//           [2] non-zero to call cfg.after after a new count
//   area    Int32Array over the driver's shared area from its byte 0 (host/sandbox/shared.ts)
//   layout  byte offsets in the area: stop (an i32), interrupts and coalesced (f64 counters), jsEntries,
//           gateReads, gateWrites (i64 counters), ring (the recorder), entries (a power of two), irqOp
// source and state must be over SharedArrayBuffers (they cannot be detached); the area may be a
// mapping's ArrayBuffer, checked for detachment on each call. The function keeps all of them alive.
struct WaitSlot {
	int fds[2];
	int width;
	double *source;
	double *state;
	uint8_t *area;
	size_t areaBytes;
	uint32_t stop, interrupts, coalesced, jsEntries, gateReads, gateWrites, ring, mask, irqOp;
	napi_ref areaBuffer; // when it is a plain ArrayBuffer (detachable), else nullptr
	napi_ref slow, rearm, after;
	std::vector<napi_ref> keep;
};

void UnrefSlot(napi_env env, WaitSlot *s)
{
	for (napi_ref r : { s->areaBuffer, s->slow, s->rearm, s->after })
		if (r)
			napi_delete_reference(env, r);
	for (napi_ref r : s->keep)
		napi_delete_reference(env, r);
	delete s;
}

int64_t NowNs()
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// Call a JavaScript function of the slot; nullptr when it threw (the exception stays pending).
napi_value CallSlot(napi_env env, napi_ref fn, size_t argc, napi_value *argv)
{
	napi_value f, recv, result = nullptr;
	if (napi_get_reference_value(env, fn, &f) != napi_ok ||
	    napi_get_undefined(env, &recv) != napi_ok)
		return nullptr;
	if (napi_call_function(env, recv, f, argc, argv, &result) != napi_ok)
		return nullptr;
	return result;
}

napi_value ThrowWait(napi_env env, int err, const char *what, int fd)
{
	std::string msg = std::string(what) + " fd " + std::to_string(fd) + ": " + strerror(err);
	napi_value m, e, n, sys;
	napi_create_string_utf8(env, msg.c_str(), NAPI_AUTO_LENGTH, &m);
	napi_create_error(env, nullptr, m, &e);
	napi_create_int32(env, err, &n);
	napi_set_named_property(env, e, "errno", n);
	napi_create_string_utf8(env, what, NAPI_AUTO_LENGTH, &sys);
	napi_set_named_property(env, e, "syscall", sys);
	napi_throw(env, e);
	return nullptr;
}

// What noteCount does in JavaScript, in the same order: coalesced events, the count seen, the
// recorder's irq entry (slot = the writers' total & mask, as DriverShared.record), interrupts + 1.
void NoteCount(WaitSlot *s, uint32_t count)
{
	uint32_t delta = count - uint32_t(s->state[0]);
	if (delta > 1)
		*reinterpret_cast<double *>(s->area + s->coalesced) += double(delta - 1);
	s->state[0] = double(count);
	uint64_t *js = reinterpret_cast<uint64_t *>(s->area + s->jsEntries);
	uint32_t total = uint32_t(*reinterpret_cast<uint64_t *>(s->area + s->gateReads)) +
			 uint32_t(*reinterpret_cast<uint64_t *>(s->area + s->gateWrites)) +
			 uint32_t(*js);
	int32_t *e = reinterpret_cast<int32_t *>(s->area + s->ring + size_t(total & s->mask) * 16);
	e[0] = 0;
	e[1] = int32_t(s->irqOp);
	e[2] = int32_t(count);
	e[3] = 0;
	*js += 1;
	*reinterpret_cast<double *>(s->area + s->interrupts) += 1;
}

napi_value IrqWait(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	void *data = nullptr;
	if (napi_get_cb_info(env, info, &argc, argv, nullptr, &data) != napi_ok)
		return nullptr;
	WaitSlot *s = static_cast<WaitSlot *>(data);
	if (argc < 1 && napi_get_undefined(env, &argv[0]) != napi_ok)
		return nullptr;
	if (s->areaBuffer) {
		napi_value ab;
		bool detached = true;
		if (napi_get_reference_value(env, s->areaBuffer, &ab) != napi_ok ||
		    napi_is_detached_arraybuffer(env, ab, &detached) != napi_ok || detached) {
			napi_throw_type_error(env, nullptr,
					      "irq_wait: the shared area's buffer was detached");
			return nullptr;
		}
	}
	const int32_t *stop = reinterpret_cast<const int32_t *>(s->area + s->stop);
	if (__atomic_load_n(stop, __ATOMIC_SEQ_CST) || s->state[1] == 0)
		return CallSlot(env, s->slow, 1, argv);
	uint32_t timeoutUs = 0;
	if (napi_get_value_uint32(env, argv[0], &timeoutUs) != napi_ok) {
		napi_throw_type_error(env, nullptr, "irq_wait: timeout must be a number");
		return nullptr;
	}
	if (s->rearm && !CallSlot(env, s->rearm, 0, nullptr))
		return nullptr;
	const int64_t deadline = NowNs() + int64_t(timeoutUs) * 1000;
	struct pollfd p[2] = { { s->fds[0], POLLIN, 0 }, { s->fds[1], POLLIN, 0 } };
	int32_t result = 0; // WAIT_TIMEOUT
	for (;;) {
		int64_t left = deadline - NowNs();
		if (left < 0)
			left = 0;
		p[0].revents = p[1].revents = 0;
		// Whole milliseconds through poll(), only the sub-millisecond rest through ppoll(): woken by
		// the interrupt, ppoll() with a timeout resumes ~0.2 us later than poll() with the same
		// timeout in ms (docs/benchmarks.md, "Stop 23"). poll() returns when its ms are up and the
		// loop takes the rest, so the deadline stays exact to the ns.
		int r;
		if (left >= 1000000) {
			r = poll(p, 2, int(left / 1000000)); // at most 2^32 us: 4,294,967 ms
		} else {
			struct timespec ts = { 0, long(left) };
			r = ppoll(p, 2, &ts, nullptr);
		}
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return ThrowWait(env, errno, "poll", s->fds[0]);
		}
		if (p[1].revents || __atomic_load_n(stop, __ATOMIC_SEQ_CST)) {
			result = -1; // WAIT_CANCELLED
			break;
		}
		if (p[0].revents & (POLLIN | POLLERR | POLLHUP | POLLNVAL)) {
			uint64_t v = 0;
			ssize_t n = read(s->fds[0], &v, size_t(s->width));
			if (n == s->width) {
				uint32_t count = s->width == 4
							 ? uint32_t(v)
							 : uint32_t(uint64_t(s->source[0]) + v);
				s->source[0] = double(count);
				if (count != uint32_t(s->state[0])) {
					NoteCount(s, count);
					if (s->after && s->state[2] != 0 &&
					    !CallSlot(env, s->after, 0, nullptr))
						return nullptr;
					result = 1; // WAIT_INTERRUPT
					break;
				}
			} else if (n < 0 && errno != EAGAIN) {
				return ThrowWait(env, errno, "read", s->fds[0]);
			}
		}
		// (poll()'s whole ms can end before the deadline: the loop then waits out the rest)
		if (NowNs() >= deadline)
			break;
	}
	napi_value out;
	napi_create_int32(env, result, &out);
	return out;
}

double *SabFloat64(const Napi::Object &cfg, const char *name, size_t min,
		   std::vector<napi_ref> &keep)
{
	Napi::Env env = cfg.Env();
	Napi::Value v = cfg.Get(name);
	if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
	    v.As<Napi::TypedArray>().ElementLength() < min)
		throw Napi::TypeError::New(env, std::string("irqWaiter: ") + name +
							" must be a Float64Array of at least " +
							std::to_string(min));
	Napi::Float64Array a = v.As<Napi::Float64Array>();
	bool plain = true;
	NAPI_THROW_IF_FAILED(env, napi_is_arraybuffer(env, a.ArrayBuffer(), &plain), nullptr);
	if (plain)
		throw Napi::TypeError::New(env, std::string("irqWaiter: ") + name +
							" must be over a SharedArrayBuffer");
	napi_ref r;
	NAPI_THROW_IF_FAILED(env, napi_create_reference(env, a, 1, &r), nullptr);
	keep.push_back(r);
	return a.Data();
}

Napi::Value IrqWaiter(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	if (info.Length() < 1 || !info[0].IsObject())
		throw Napi::TypeError::New(env, "irqWaiter: cfg must be an object");
	Napi::Object cfg = info[0].As<Napi::Object>();
	WaitSlot *s = new WaitSlot{};
	try {
		Napi::Value fds = cfg.Get("fds");
		if (!fds.IsTypedArray() ||
		    fds.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array ||
		    fds.As<Napi::TypedArray>().ElementLength() != 2)
			throw Napi::TypeError::New(env,
						   "irqWaiter: fds must be an Int32Array of 2");
		s->fds[0] = fds.As<Napi::Int32Array>()[0];
		s->fds[1] = fds.As<Napi::Int32Array>()[1];
		Napi::Value w = cfg.Get("width");
		s->width = w.IsNumber() ? w.As<Napi::Number>().Int32Value() : 0;
		if (s->width != 4 && s->width != 8)
			throw Napi::TypeError::New(env, "irqWaiter: width must be 4 or 8");
		s->source = SabFloat64(cfg, "source", 1, s->keep);
		s->state = SabFloat64(cfg, "state", 3, s->keep);
		Napi::Value area = cfg.Get("area");
		if (!area.IsTypedArray() ||
		    area.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
			throw Napi::TypeError::New(env, "irqWaiter: area must be an Int32Array");
		Napi::Int32Array a = area.As<Napi::Int32Array>();
		if (a.ByteOffset() != 0)
			throw Napi::TypeError::New(
				env, "irqWaiter: area must start at its buffer's byte 0");
		s->area = reinterpret_cast<uint8_t *>(a.Data());
		Napi::Value ab = a.ArrayBuffer();
		s->areaBytes = a.ArrayBuffer().ByteLength();
		bool plain = false;
		NAPI_THROW_IF_FAILED(env, napi_is_arraybuffer(env, ab, &plain), Napi::Value());
		napi_ref ar;
		NAPI_THROW_IF_FAILED(env, napi_create_reference(env, a, 1, &ar), Napi::Value());
		s->keep.push_back(ar);
		if (plain)
			NAPI_THROW_IF_FAILED(env, napi_create_reference(env, ab, 1, &s->areaBuffer),
					     Napi::Value());
		Napi::Value l = cfg.Get("layout");
		if (!l.IsObject())
			throw Napi::TypeError::New(env, "irqWaiter: layout must be an object");
		Napi::Object lo = l.As<Napi::Object>();
		auto field = [&](const char *name, uint32_t bytes, uint32_t align) {
			Napi::Value v = lo.Get(name);
			int64_t x = v.IsNumber() ? v.As<Napi::Number>().Int64Value() : -1;
			if (x < 0 || uint64_t(x) + bytes > s->areaBytes || x % align)
				throw Napi::RangeError::New(
					env, std::string("irqWaiter: layout.") + name +
						     " is outside the area or misaligned");
			return uint32_t(x);
		};
		s->stop = field("stop", 4, 4);
		s->interrupts = field("interrupts", 8, 8);
		s->coalesced = field("coalesced", 8, 8);
		s->jsEntries = field("jsEntries", 8, 8);
		s->gateReads = field("gateReads", 8, 8);
		s->gateWrites = field("gateWrites", 8, 8);
		Napi::Value en = lo.Get("entries");
		uint32_t entries = en.IsNumber() ? en.As<Napi::Number>().Uint32Value() : 0;
		if (!entries || entries & (entries - 1))
			throw Napi::RangeError::New(
				env, "irqWaiter: layout.entries must be a power of two");
		s->mask = entries - 1;
		s->ring = field("ring", 0, 8);
		if (uint64_t(s->ring) + uint64_t(entries) * 16 > s->areaBytes)
			throw Napi::RangeError::New(
				env, "irqWaiter: the recorder runs past the area's end");
		s->irqOp = lo.Get("irqOp").IsNumber()
				   ? lo.Get("irqOp").As<Napi::Number>().Uint32Value()
				   : 0;
		auto fn = [&](const char *name, bool required) -> napi_ref {
			Napi::Value v = cfg.Get(name);
			if (v.IsUndefined() && !required)
				return nullptr;
			if (!v.IsFunction())
				throw Napi::TypeError::New(env, std::string("irqWaiter: ") + name +
									" must be a function");
			napi_ref r;
			NAPI_THROW_IF_FAILED(env, napi_create_reference(env, v, 1, &r), nullptr);
			return r;
		};
		s->slow = fn("slow", true);
		s->rearm = fn("rearm", false);
		s->after = fn("after", false);
	} catch (...) {
		UnrefSlot(env, s);
		throw;
	}
	napi_value f;
	if (napi_create_function(env, "irq_wait", NAPI_AUTO_LENGTH, IrqWait, s, &f) != napi_ok) {
		UnrefSlot(env, s);
		throw Napi::Error::New(env, "irqWaiter: napi_create_function failed");
	}
	Napi::Function fun(env, f);
	fun.AddFinalizer([](Napi::Env e, WaitSlot *slot) { UnrefSlot(e, slot); }, s);
	return fun;
}

Napi::Value ReadU32(const Napi::CallbackInfo &info)
{
	int fd = int(Int(info, 0, "fd"));
	uint32_t v = 0;
	ssize_t r = read(fd, &v, sizeof v);
	if (r < 0)
		ThrowErrno(info.Env(), errno, "read", "fd " + std::to_string(fd));
	if (r != sizeof v)
		ThrowErrno(info.Env(), EIO, "read", "fd " + std::to_string(fd) + " (short read)");
	return Napi::Number::New(info.Env(), double(v));
}

Napi::Value WriteU32(const Napi::CallbackInfo &info)
{
	int fd = int(Int(info, 0, "fd"));
	uint32_t v = uint32_t(Int(info, 1, "value"));
	ssize_t r = write(fd, &v, sizeof v);
	if (r < 0)
		ThrowErrno(info.Env(), errno, "write", "fd " + std::to_string(fd));
	if (r != sizeof v)
		ThrowErrno(info.Env(), EIO, "write", "fd " + std::to_string(fd) + " (short write)");
	return info.Env().Undefined();
}

Napi::Value Pread(const Napi::CallbackInfo &info)
{
	int fd = int(Int(info, 0, "fd"));
	int64_t off = Int(info, 1, "offset");
	int64_t width = Int(info, 2, "width");
	if (width != 1 && width != 2 && width != 4)
		ThrowErrno(info.Env(), EINVAL, "pread", "(width must be 1, 2 or 4)");
	uint8_t b[4] = { 0, 0, 0, 0 };
	ssize_t r = pread(fd, b, size_t(width), off_t(off));
	if (r < 0)
		ThrowErrno(info.Env(), errno, "pread", "fd " + std::to_string(fd));
	if (r != width)
		ThrowErrno(info.Env(), EIO, "pread", "fd " + std::to_string(fd) + " (short read)");
	uint32_t v =
		uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24;
	return Napi::Number::New(info.Env(), double(v));
}

Napi::Value Pwrite(const Napi::CallbackInfo &info)
{
	int fd = int(Int(info, 0, "fd"));
	int64_t off = Int(info, 1, "offset");
	int64_t width = Int(info, 2, "width");
	uint32_t v = uint32_t(Int(info, 3, "value"));
	if (width != 1 && width != 2 && width != 4)
		ThrowErrno(info.Env(), EINVAL, "pwrite", "(width must be 1, 2 or 4)");
	uint8_t b[4] = { uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24) };
	ssize_t r = pwrite(fd, b, size_t(width), off_t(off));
	if (r < 0)
		ThrowErrno(info.Env(), errno, "pwrite", "fd " + std::to_string(fd));
	if (r != width)
		ThrowErrno(info.Env(), EIO, "pwrite",
			   "fd " + std::to_string(fd) + " (short write)");
	return info.Env().Undefined();
}

#ifdef WASMDRV_HAVE_PORTIO
Napi::Value Ioperm(const Napi::CallbackInfo &info, int on)
{
	int64_t base = Int(info, 0, "base");
	int64_t count = Int(info, 1, "count");
	if (base < 0 || count <= 0 || base + count > 0x10000)
		ThrowErrno(info.Env(), EINVAL, "ioperm", "(port range)");
	if (ioperm((unsigned long)base, (unsigned long)count, on) != 0) {
		char buf[64];
		snprintf(buf, sizeof buf, "ports 0x%llx+%lld", (unsigned long long)base,
			 (long long)count);
		ThrowErrno(info.Env(), errno, "ioperm", buf);
	}
	return info.Env().Undefined();
}
Napi::Value IopermGrant(const Napi::CallbackInfo &info)
{
	return Ioperm(info, 1);
}
Napi::Value IopermRevoke(const Napi::CallbackInfo &info)
{
	return Ioperm(info, 0);
}
uint16_t Port(const Napi::CallbackInfo &info)
{
	int64_t p = Int(info, 0, "port");
	if (p < 0 || p > 0xffff)
		ThrowErrno(info.Env(), EINVAL, "in/out", "(port out of range)");
	return uint16_t(p);
}
Napi::Value Inb(const Napi::CallbackInfo &info)
{
	return Napi::Number::New(info.Env(), inb(Port(info)));
}
Napi::Value Inw(const Napi::CallbackInfo &info)
{
	return Napi::Number::New(info.Env(), inw(Port(info)));
}
Napi::Value Inl(const Napi::CallbackInfo &info)
{
	return Napi::Number::New(info.Env(), double(inl(Port(info))));
}
Napi::Value Outb(const Napi::CallbackInfo &info)
{
	outb(uint8_t(Int(info, 1, "value")), Port(info));
	return info.Env().Undefined();
}
Napi::Value Outw(const Napi::CallbackInfo &info)
{
	outw(uint16_t(Int(info, 1, "value")), Port(info));
	return info.Env().Undefined();
}
Napi::Value Outl(const Napi::CallbackInfo &info)
{
	outl(uint32_t(Int(info, 1, "value")), Port(info));
	return info.Env().Undefined();
}
#else
Napi::Value NoPorts(const Napi::CallbackInfo &info)
{
	ThrowErrno(info.Env(), ENOSYS, "ioperm", "(no port I/O on this architecture)");
}
#define IopermGrant NoPorts
#define IopermRevoke NoPorts
#define Inb NoPorts
#define Inw NoPorts
#define Inl NoPorts
#define Outb NoPorts
#define Outw NoPorts
#define Outl NoPorts
#endif

// getsockopt(SO_PEERCRED): who is on the other end of a UNIX socket (the service's access control).
Napi::Value PeerCredentials(const Napi::CallbackInfo &info)
{
	int fd = int(Int(info, 0, "fd"));
	struct ucred cred;
	socklen_t len = sizeof cred;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
		ThrowErrno(info.Env(), errno, "getsockopt", "fd " + std::to_string(fd));
	Napi::Object o = Napi::Object::New(info.Env());
	o.Set("pid", Napi::Number::New(info.Env(), cred.pid));
	o.Set("uid", Napi::Number::New(info.Env(), cred.uid));
	o.Set("gid", Napi::Number::New(info.Env(), cred.gid));
	return o;
}

// sd_notify(3) without libsystemd: one datagram to the AF_UNIX socket systemd names in $NOTIFY_SOCKET
// ("@name" is in the abstract namespace). Node has no UNIX datagram sockets, so the addon sends it.
bool UnixAddress(const std::string &path, struct sockaddr_un *sa, socklen_t *len)
{
	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	if (path.empty() || path.size() >= sizeof sa->sun_path)
		return false;
	memcpy(sa->sun_path, path.data(), path.size());
	if (path[0] == '@')
		sa->sun_path[0] = '\0';
	*len = socklen_t(offsetof(struct sockaddr_un, sun_path) + path.size() +
			 (path[0] == '@' ? 0 : 1));
	return true;
}

Napi::Value UnixDgramSend(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	std::string path = Str(info, 0, "path");
	std::string msg = Str(info, 1, "message");
	struct sockaddr_un sa;
	socklen_t len;
	if (!UnixAddress(path, &sa, &len))
		ThrowErrno(env, EINVAL, "sendto", path + " (not a UNIX socket address)");
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		ThrowErrno(env, errno, "socket", path);
	ssize_t n = sendto(fd, msg.data(), msg.size(), MSG_NOSIGNAL, (struct sockaddr *)&sa, len);
	int err = errno;
	close(fd);
	if (n < 0)
		ThrowErrno(env, err, "sendto", path);
	return Napi::Number::New(env, double(n));
}

// The receiving end (tests, and anyone standing in for systemd): bound, non-blocking, SO_PASSCRED on
// so that each datagram says which process sent it (systemd's NotifyAccess=main checks exactly that).
Napi::Value UnixDgramBind(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	std::string path = Str(info, 0, "path");
	struct sockaddr_un sa;
	socklen_t len;
	if (!UnixAddress(path, &sa, &len))
		ThrowErrno(env, EINVAL, "bind", path + " (not a UNIX socket address)");
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		ThrowErrno(env, errno, "socket", path);
	int one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) != 0 ||
	    bind(fd, (struct sockaddr *)&sa, len) != 0) {
		int err = errno;
		close(fd);
		ThrowErrno(env, err, "bind", path);
	}
	return Napi::Number::New(env, fd);
}

// One datagram, or null when none is waiting: { data, pid, uid, gid }.
Napi::Value UnixDgramRecv(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int fd = int(Int(info, 0, "fd"));
	std::vector<char> buf(65536);
	union {
		struct cmsghdr align;
		char bytes[CMSG_SPACE(sizeof(struct ucred))];
	} control;
	struct iovec iov = { buf.data(), buf.size() };
	struct msghdr mh;
	memset(&mh, 0, sizeof mh);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = control.bytes;
	mh.msg_controllen = sizeof control.bytes;
	ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return env.Null();
		ThrowErrno(env, errno, "recvmsg", "fd " + std::to_string(fd));
	}
	Napi::Object o = Napi::Object::New(env);
	o.Set("data", Napi::String::New(env, buf.data(), size_t(n)));
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_CREDENTIALS)
			continue;
		struct ucred cred;
		memcpy(&cred, CMSG_DATA(c), sizeof cred);
		o.Set("pid", Napi::Number::New(env, cred.pid));
		o.Set("uid", Napi::Number::New(env, cred.uid));
		o.Set("gid", Napi::Number::New(env, cred.gid));
	}
	return o;
}

// TAP interfaces (/dev/net/tun, IFF_TAP | IFF_NO_PI): one read or write is one Ethernet frame.
Napi::Value TapOpen(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	std::string name = OptStr(info, 0);
	if (name.size() >= IFNAMSIZ)
		ThrowErrno(env, EINVAL, "TUNSETIFF",
			   name + " (interface names are at most 15 bytes)");
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		ThrowErrno(env, errno, "open", "/dev/net/tun");
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
	if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
		int err = errno;
		close(fd);
		ThrowErrno(env, err, "TUNSETIFF", name.empty() ? "/dev/net/tun" : name);
	}
	Napi::Object o = Napi::Object::New(env);
	o.Set("fd", Napi::Number::New(env, fd));
	o.Set("name", Napi::String::New(env, ifr.ifr_name));
	return o;
}

Napi::Value TapSetCarrier(const Napi::CallbackInfo &info)
{
	int fd = int(Int(info, 0, "fd"));
	int on = info.Length() > 1 && info[1].ToBoolean().Value() ? 1 : 0;
	if (ioctl(fd, TUNSETCARRIER, &on) != 0)
		ThrowErrno(info.Env(), errno, "TUNSETCARRIER", "fd " + std::to_string(fd));
	return info.Env().Undefined();
}

// SIOCSIFHWADDR / SIOCSIFFLAGS on an interface by name (through a throwaway datagram socket).
int IfSocket(Napi::Env env, const std::string &name, struct ifreq *ifr)
{
	if (name.empty() || name.size() >= IFNAMSIZ)
		ThrowErrno(env, EINVAL, "ioctl", name + " (not an interface name)");
	memset(ifr, 0, sizeof *ifr);
	strncpy(ifr->ifr_name, name.c_str(), IFNAMSIZ - 1);
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		ThrowErrno(env, errno, "socket", name);
	return s;
}

Napi::Value NetSetMac(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	std::string name = Str(info, 0, "name");
	if (info.Length() < 2 || !info[1].IsTypedArray())
		throw Napi::TypeError::New(env, "mac must be a Uint8Array of 6 bytes");
	Napi::Uint8Array mac = info[1].As<Napi::Uint8Array>();
	if (mac.ElementLength() != 6)
		throw Napi::TypeError::New(env, "mac must be a Uint8Array of 6 bytes");
	struct ifreq ifr;
	int s = IfSocket(env, name, &ifr);
	ifr.ifr_hwaddr.sa_family = 1; /* ARPHRD_ETHER */
	memcpy(ifr.ifr_hwaddr.sa_data, mac.Data(), 6);
	int r = ioctl(s, SIOCSIFHWADDR, &ifr);
	int err = errno;
	close(s);
	if (r != 0)
		ThrowErrno(env, err, "SIOCSIFHWADDR", name);
	return env.Undefined();
}

Napi::Value NetSetUp(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	std::string name = Str(info, 0, "name");
	bool up = info.Length() > 1 && info[1].ToBoolean().Value();
	struct ifreq ifr;
	int s = IfSocket(env, name, &ifr);
	int r = ioctl(s, SIOCGIFFLAGS, &ifr);
	if (r == 0) {
		if (up)
			ifr.ifr_flags |= IFF_UP;
		else
			ifr.ifr_flags &= ~IFF_UP;
		r = ioctl(s, SIOCSIFFLAGS, &ifr);
	}
	int err = errno;
	close(s);
	if (r != 0)
		ThrowErrno(env, err, "SIOCSIFFLAGS", name);
	return env.Undefined();
}

// One read()/write() of a whole buffer: a frame on a TAP fd. read returns -1 when nothing is there.
Napi::Value ReadInto(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int fd = int(Int(info, 0, "fd"));
	if (info.Length() < 2 || !info[1].IsTypedArray())
		throw Napi::TypeError::New(env, "buffer must be a Uint8Array");
	Napi::Uint8Array b = info[1].As<Napi::Uint8Array>();
	ssize_t n;
	do
		n = read(fd, b.Data(), b.ElementLength());
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return Napi::Number::New(env, -1);
	if (n < 0)
		ThrowErrno(env, errno, "read", "fd " + std::to_string(fd));
	return Napi::Number::New(env, double(n));
}

Napi::Value WriteFrom(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int fd = int(Int(info, 0, "fd"));
	if (info.Length() < 2 || !info[1].IsTypedArray())
		throw Napi::TypeError::New(env, "buffer must be a Uint8Array");
	Napi::Uint8Array b = info[1].As<Napi::Uint8Array>();
	ssize_t n;
	do
		n = write(fd, b.Data(), b.ElementLength());
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return Napi::Number::New(env, -1);
	if (n < 0)
		ThrowErrno(env, errno, "write", "fd " + std::to_string(fd));
	return Napi::Number::New(env, double(n));
}

// ---------------------------------------------------------------------------------------------------
// VFIO (Linux type1 container/group API, include/uapi/linux/vfio.h). Thin wrappers: one ioctl each.
// The container, group and device fds are opened with open() and owned by TypeScript
// (host/devices/vfio.ts), which holds every policy: which IOVA, which IRQ index, when to reset.
// Every failure throws an Error with errno, code, syscall "ioctl", `ioctl` (the request's name) and
// `path` (the device address or node the caller names in `label`).
// ---------------------------------------------------------------------------------------------------

[[noreturn]] void ThrowVfio(Napi::Env env, int err, const char *ioctlName, const std::string &label)
{
	// The errno's name (and the message's "(ENOTTY)") is added in TypeScript, as for ThrowErrno.
	std::string msg =
		std::string(ioctlName) + (label.empty() ? "" : " " + label) + ": " + strerror(err);
	Napi::Error e = Napi::Error::New(env, msg);
	e.Set("errno", Napi::Number::New(env, err));
	e.Set("syscall", Napi::String::New(env, "ioctl"));
	e.Set("ioctl", Napi::String::New(env, ioctlName));
	if (!label.empty())
		e.Set("path", Napi::String::New(env, label));
	throw e;
}

int VfioCall(Napi::Env env, int fd, unsigned long req, void *arg, const char *ioctlName,
	     const std::string &label)
{
	int r;
	do {
		r = ioctl(fd, req, arg);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		ThrowVfio(env, errno, ioctlName, label);
	return r;
}

int VfioCallInt(Napi::Env env, int fd, unsigned long req, unsigned long arg, const char *ioctlName,
		const std::string &label)
{
	int r;
	do {
		r = ioctl(fd, req, arg);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		ThrowVfio(env, errno, ioctlName, label);
	return r;
}

uint64_t U64Arg(const Napi::CallbackInfo &info, size_t i, const char *what)
{
	if (info.Length() > i && info[i].IsBigInt()) {
		bool lossless = true;
		uint64_t v = info[i].As<Napi::BigInt>().Uint64Value(&lossless);
		if (!lossless)
			throw Napi::TypeError::New(info.Env(),
						   std::string(what) + " does not fit in 64 bits");
		return v;
	}
	int64_t v = Int(info, i, what);
	if (v < 0)
		throw Napi::TypeError::New(info.Env(), std::string(what) + " must not be negative");
	return uint64_t(v);
}

// vfioApiVersion(container): VFIO_GET_API_VERSION (0 = VFIO_API_VERSION).
Napi::Value VfioApiVersion(const Napi::CallbackInfo &info)
{
	int fd = int(Int(info, 0, "container"));
	return Napi::Number::New(info.Env(), VfioCallInt(info.Env(), fd, VFIO_GET_API_VERSION, 0,
							 "VFIO_GET_API_VERSION", OptStr(info, 1)));
}

// vfioCheckExtension(container, ext): >0 when the container supports the IOMMU model `ext`.
Napi::Value VfioCheckExtension(const Napi::CallbackInfo &info)
{
	int fd = int(Int(info, 0, "container"));
	unsigned long ext = (unsigned long)Int(info, 1, "extension");
	return Napi::Number::New(info.Env(), VfioCallInt(info.Env(), fd, VFIO_CHECK_EXTENSION, ext,
							 "VFIO_CHECK_EXTENSION", OptStr(info, 2)));
}

// vfioSetIommu(container, type, label): legal once a group is attached.
Napi::Value VfioSetIommu(const Napi::CallbackInfo &info)
{
	int fd = int(Int(info, 0, "container"));
	unsigned long type = (unsigned long)Int(info, 1, "type");
	VfioCallInt(info.Env(), fd, VFIO_SET_IOMMU, type, "VFIO_SET_IOMMU", OptStr(info, 2));
	return info.Env().Undefined();
}

// vfioGroupStatus(group, label): the flags (VIABLE = 1, CONTAINER_SET = 2).
Napi::Value VfioGroupStatus(const Napi::CallbackInfo &info)
{
	int fd = int(Int(info, 0, "group"));
	struct vfio_group_status st;
	memset(&st, 0, sizeof st);
	st.argsz = sizeof st;
	VfioCall(info.Env(), fd, VFIO_GROUP_GET_STATUS, &st, "VFIO_GROUP_GET_STATUS",
		 OptStr(info, 1));
	return Napi::Number::New(info.Env(), st.flags);
}

Napi::Value VfioGroupSetContainer(const Napi::CallbackInfo &info)
{
	int group = int(Int(info, 0, "group"));
	int container = int(Int(info, 1, "container"));
	VfioCall(info.Env(), group, VFIO_GROUP_SET_CONTAINER, &container,
		 "VFIO_GROUP_SET_CONTAINER", OptStr(info, 2));
	return info.Env().Undefined();
}

Napi::Value VfioGroupUnsetContainer(const Napi::CallbackInfo &info)
{
	int group = int(Int(info, 0, "group"));
	VfioCallInt(info.Env(), group, VFIO_GROUP_UNSET_CONTAINER, 0, "VFIO_GROUP_UNSET_CONTAINER",
		    OptStr(info, 1));
	return info.Env().Undefined();
}

// vfioGroupDeviceFd(group, "0000:00:03.0"): a new device fd (O_CLOEXEC is the kernel's default here).
Napi::Value VfioGroupDeviceFd(const Napi::CallbackInfo &info)
{
	int group = int(Int(info, 0, "group"));
	std::string name = Str(info, 1, "device name");
	int fd = VfioCall(info.Env(), group, VFIO_GROUP_GET_DEVICE_FD,
			  const_cast<char *>(name.c_str()), "VFIO_GROUP_GET_DEVICE_FD", name);
	return Napi::Number::New(info.Env(), fd);
}

// vfioIommuInfo(container, label): { flags, iovaPgsizes } (VFIO_IOMMU_GET_INFO, no capability chain).
Napi::Value VfioIommuInfo(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int fd = int(Int(info, 0, "container"));
	struct vfio_iommu_type1_info ii;
	memset(&ii, 0, sizeof ii);
	ii.argsz = sizeof ii;
	VfioCall(env, fd, VFIO_IOMMU_GET_INFO, &ii, "VFIO_IOMMU_GET_INFO", OptStr(info, 1));
	Napi::Object o = Napi::Object::New(env);
	o.Set("flags", Napi::Number::New(env, ii.flags));
	o.Set("iovaPgsizes", Napi::BigInt::New(env, uint64_t(ii.iova_pgsizes)));
	return o;
}

// vfioMapDma(container, buffer, iova, flags, label): VFIO_IOMMU_MAP_DMA of the whole ArrayBuffer (an
// external buffer over a host mapping: its base is the vaddr the kernel pins). flags READ=1|WRITE=2.
Napi::Value VfioMapDma(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int fd = int(Int(info, 0, "container"));
	if (info.Length() < 2 || !info[1].IsArrayBuffer())
		throw Napi::TypeError::New(env, "buffer must be an ArrayBuffer");
	Napi::ArrayBuffer ab = info[1].As<Napi::ArrayBuffer>();
	uint64_t iova = U64Arg(info, 2, "iova");
	uint32_t flags = uint32_t(Int(info, 3, "flags"));
	std::string label = OptStr(info, 4);
	if (ab.ByteLength() == 0 || ab.Data() == nullptr)
		ThrowVfio(env, EINVAL, "VFIO_IOMMU_MAP_DMA", label + " (empty or detached buffer)");
	struct vfio_iommu_type1_dma_map m;
	memset(&m, 0, sizeof m);
	m.argsz = sizeof m;
	m.flags = flags;
	m.vaddr = uint64_t(reinterpret_cast<uintptr_t>(ab.Data()));
	m.iova = iova;
	m.size = uint64_t(ab.ByteLength());
	VfioCall(env, fd, VFIO_IOMMU_MAP_DMA, &m, "VFIO_IOMMU_MAP_DMA", label);
	return env.Undefined();
}

// vfioUnmapDma(container, iova, size, label): returns the bytes the kernel unmapped.
Napi::Value VfioUnmapDma(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int fd = int(Int(info, 0, "container"));
	struct vfio_iommu_type1_dma_unmap u;
	memset(&u, 0, sizeof u);
	u.argsz = sizeof u;
	u.iova = U64Arg(info, 1, "iova");
	u.size = U64Arg(info, 2, "size");
	VfioCall(env, fd, VFIO_IOMMU_UNMAP_DMA, &u, "VFIO_IOMMU_UNMAP_DMA", OptStr(info, 3));
	return Napi::Number::New(env, double(u.size));
}

// vfioDeviceInfo(device, label): { flags, numRegions, numIrqs } (flags RESET = 1, PCI = 2).
Napi::Value VfioDeviceInfo(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int fd = int(Int(info, 0, "device"));
	struct vfio_device_info di;
	memset(&di, 0, sizeof di);
	di.argsz = sizeof di;
	VfioCall(env, fd, VFIO_DEVICE_GET_INFO, &di, "VFIO_DEVICE_GET_INFO", OptStr(info, 1));
	Napi::Object o = Napi::Object::New(env);
	o.Set("flags", Napi::Number::New(env, di.flags));
	o.Set("numRegions", Napi::Number::New(env, di.num_regions));
	o.Set("numIrqs", Napi::Number::New(env, di.num_irqs));
	return o;
}

// vfioRegionInfo(device, index, label): { index, flags, size, offset } (flags READ 1, WRITE 2, MMAP 4).
// `offset` is where the region lives in the device fd (pread/pwrite/mmap).
Napi::Value VfioRegionInfo(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int fd = int(Int(info, 0, "device"));
	uint32_t index = uint32_t(Int(info, 1, "index"));
	struct vfio_region_info ri;
	memset(&ri, 0, sizeof ri);
	ri.argsz = sizeof ri;
	ri.index = index;
	VfioCall(env, fd, VFIO_DEVICE_GET_REGION_INFO, &ri, "VFIO_DEVICE_GET_REGION_INFO",
		 OptStr(info, 2) + " region " + std::to_string(index));
	Napi::Object o = Napi::Object::New(env);
	o.Set("index", Napi::Number::New(env, ri.index));
	o.Set("flags", Napi::Number::New(env, ri.flags));
	o.Set("size", Napi::Number::New(env, double(ri.size)));
	o.Set("offset", Napi::Number::New(env, double(ri.offset)));
	return o;
}

// vfioIrqInfo(device, index, label): { index, flags, count } (flags EVENTFD 1, MASKABLE 2, AUTOMASKED 4).
Napi::Value VfioIrqInfo(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int fd = int(Int(info, 0, "device"));
	uint32_t index = uint32_t(Int(info, 1, "index"));
	struct vfio_irq_info ii;
	memset(&ii, 0, sizeof ii);
	ii.argsz = sizeof ii;
	ii.index = index;
	VfioCall(env, fd, VFIO_DEVICE_GET_IRQ_INFO, &ii, "VFIO_DEVICE_GET_IRQ_INFO",
		 OptStr(info, 2) + " irq " + std::to_string(index));
	Napi::Object o = Napi::Object::New(env);
	o.Set("index", Napi::Number::New(env, ii.index));
	o.Set("flags", Napi::Number::New(env, ii.flags));
	o.Set("count", Napi::Number::New(env, ii.count));
	return o;
}

// vfioSetIrqs(device, index, start, action, fds | count, label): VFIO_DEVICE_SET_IRQS.
//   fds an Int32Array: DATA_EVENTFD with those eventfds (-1 deassigns one) for vectors start..;
//   a number: DATA_NONE for that many vectors (count 0 with ACTION_TRIGGER disables the index).
// action: MASK = 8, UNMASK = 16, TRIGGER = 32 (VFIO_IRQ_SET_ACTION_*).
Napi::Value VfioSetIrqs(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int fd = int(Int(info, 0, "device"));
	uint32_t index = uint32_t(Int(info, 1, "index"));
	uint32_t start = uint32_t(Int(info, 2, "start"));
	uint32_t action = uint32_t(Int(info, 3, "action"));
	std::string label = OptStr(info, 5) + " irq " + std::to_string(index);
	if (action != VFIO_IRQ_SET_ACTION_MASK && action != VFIO_IRQ_SET_ACTION_UNMASK &&
	    action != VFIO_IRQ_SET_ACTION_TRIGGER) {
		ThrowVfio(env, EINVAL, "VFIO_DEVICE_SET_IRQS",
			  label + " (action must be MASK, UNMASK or TRIGGER)");
	}
	std::vector<int32_t> fds;
	uint32_t count;
	uint32_t dataFlag;
	if (info.Length() > 4 && info[4].IsTypedArray() &&
	    info[4].As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
		Napi::Int32Array a = info[4].As<Napi::Int32Array>();
		for (size_t i = 0; i < a.ElementLength(); i++)
			fds.push_back(a[i]);
		count = uint32_t(fds.size());
		dataFlag = VFIO_IRQ_SET_DATA_EVENTFD;
	} else {
		count = uint32_t(Int(info, 4, "fds or count"));
		dataFlag = VFIO_IRQ_SET_DATA_NONE;
	}
	std::vector<uint8_t> buf(sizeof(struct vfio_irq_set) + fds.size() * sizeof(int32_t), 0);
	struct vfio_irq_set *s = reinterpret_cast<struct vfio_irq_set *>(buf.data());
	s->argsz = uint32_t(buf.size());
	s->flags = dataFlag | action;
	s->index = index;
	s->start = start;
	s->count = count;
	if (!fds.empty())
		memcpy(s->data, fds.data(), fds.size() * sizeof(int32_t));
	VfioCall(env, fd, VFIO_DEVICE_SET_IRQS, s, "VFIO_DEVICE_SET_IRQS", label);
	return env.Undefined();
}

// vfioDeviceReset(device, label): VFIO_DEVICE_RESET (function-level or bus reset, whatever the
// kernel has for the device; EINVAL/ENOTTY when it has none).
Napi::Value VfioDeviceReset(const Napi::CallbackInfo &info)
{
	int fd = int(Int(info, 0, "device"));
	VfioCallInt(info.Env(), fd, VFIO_DEVICE_RESET, 0, "VFIO_DEVICE_RESET", OptStr(info, 1));
	return info.Env().Undefined();
}

void InitVfio(Napi::Env env, Napi::Object exports)
{
	exports.Set("vfioApiVersion", Napi::Function::New(env, VfioApiVersion));
	exports.Set("vfioCheckExtension", Napi::Function::New(env, VfioCheckExtension));
	exports.Set("vfioSetIommu", Napi::Function::New(env, VfioSetIommu));
	exports.Set("vfioGroupStatus", Napi::Function::New(env, VfioGroupStatus));
	exports.Set("vfioGroupSetContainer", Napi::Function::New(env, VfioGroupSetContainer));
	exports.Set("vfioGroupUnsetContainer", Napi::Function::New(env, VfioGroupUnsetContainer));
	exports.Set("vfioGroupDeviceFd", Napi::Function::New(env, VfioGroupDeviceFd));
	exports.Set("vfioIommuInfo", Napi::Function::New(env, VfioIommuInfo));
	exports.Set("vfioMapDma", Napi::Function::New(env, VfioMapDma));
	exports.Set("vfioUnmapDma", Napi::Function::New(env, VfioUnmapDma));
	exports.Set("vfioDeviceInfo", Napi::Function::New(env, VfioDeviceInfo));
	exports.Set("vfioRegionInfo", Napi::Function::New(env, VfioRegionInfo));
	exports.Set("vfioIrqInfo", Napi::Function::New(env, VfioIrqInfo));
	exports.Set("vfioSetIrqs", Napi::Function::New(env, VfioSetIrqs));
	exports.Set("vfioDeviceReset", Napi::Function::New(env, VfioDeviceReset));
}

// --------------------------------------------------------------------------------------------- end VFIO

Napi::Object Init(Napi::Env env, Napi::Object exports)
{
	env.SetInstanceData<PerEnv>(new PerEnv());
	Mapping::Init(env, exports);
	FixedMapping::Init(env, exports);
	exports.Set("pageSize", Napi::Function::New(env, PageSize));
	exports.Set("open", Napi::Function::New(env, Open));
	exports.Set("close", Napi::Function::New(env, Close));
	exports.Set("memfdCreate", Napi::Function::New(env, MemfdCreate));
	exports.Set("mapFd", Napi::Function::New(env, MapFd));
	exports.Set("mapFile", Napi::Function::New(env, MapFile));
	exports.Set("mapIntoBuffer", Napi::Function::New(env, MapIntoBuffer));
	exports.Set("eventfdCreate", Napi::Function::New(env, EventfdCreate));
	exports.Set("eventfdWrite", Napi::Function::New(env, EventfdWrite));
	exports.Set("eventfdRead", Napi::Function::New(env, EventfdRead));
	exports.Set("eventfdWriteStamped", Napi::Function::New(env, EventfdWriteStamped));
	exports.Set("poll", Napi::Function::New(env, Poll));
	exports.Set("pollRead", Napi::Function::New(env, PollRead));
	exports.Set("monotonicInto", Napi::Function::New(env, MonotonicInto));
	exports.Set("clockInto", Napi::Function::New(env, ClockInto));
	exports.Set("irqWaiter", Napi::Function::New(env, IrqWaiter));
	exports.Set("readU32", Napi::Function::New(env, ReadU32));
	exports.Set("writeU32", Napi::Function::New(env, WriteU32));
	exports.Set("pread", Napi::Function::New(env, Pread));
	exports.Set("peerCredentials", Napi::Function::New(env, PeerCredentials));
	exports.Set("pwrite", Napi::Function::New(env, Pwrite));
	exports.Set("unixDgramSend", Napi::Function::New(env, UnixDgramSend));
	exports.Set("unixDgramBind", Napi::Function::New(env, UnixDgramBind));
	exports.Set("unixDgramRecv", Napi::Function::New(env, UnixDgramRecv));
	exports.Set("tapOpen", Napi::Function::New(env, TapOpen));
	exports.Set("tapSetCarrier", Napi::Function::New(env, TapSetCarrier));
	exports.Set("netSetMac", Napi::Function::New(env, NetSetMac));
	exports.Set("netSetUp", Napi::Function::New(env, NetSetUp));
	exports.Set("readInto", Napi::Function::New(env, ReadInto));
	exports.Set("writeFrom", Napi::Function::New(env, WriteFrom));
	exports.Set("iopermGrant", Napi::Function::New(env, IopermGrant));
	exports.Set("iopermRevoke", Napi::Function::New(env, IopermRevoke));
	exports.Set("inb", Napi::Function::New(env, Inb));
	exports.Set("inw", Napi::Function::New(env, Inw));
	exports.Set("inl", Napi::Function::New(env, Inl));
	exports.Set("outb", Napi::Function::New(env, Outb));
	exports.Set("outw", Napi::Function::New(env, Outw));
	exports.Set("outl", Napi::Function::New(env, Outl));
	InitVfio(env, exports);
	return exports;
}

} // namespace

NODE_API_MODULE(wasmdrv, Init)

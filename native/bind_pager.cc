// JS face of native/uffd_pager.h: plain functions on `exports.pager`. Addresses and offsets are
// JS numbers (< 2^53; the regions live below 2^47), so the fault path allocates no BigInts.
#include <napi.h>
#include <unistd.h>

#include "addon.h"
#include "uffd_pager.h"

namespace legoos {
namespace {

int int_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string("pager: '") + name + "' must be a number");
  return info[i].As<Napi::Number>().Int32Value();
}

uint64_t u64_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string("pager: '") + name + "' must be a number");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > 9007199254740991.0) throw Napi::RangeError::New(info.Env(), std::string("pager: '") + name + "' out of range");
  return static_cast<uint64_t>(d);
}

// A byte range inside a Uint8Array argument, bounds-checked.
uint8_t* bytes_arg(const Napi::CallbackInfo& info, size_t i, uint64_t off, uint64_t len) {
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw Napi::TypeError::New(info.Env(), "pager: buffer must be a Uint8Array");
  auto a = info[i].As<Napi::Uint8Array>();
  if (off > a.ByteLength() || len > a.ByteLength() - off) throw Napi::RangeError::New(info.Env(), "pager: range outside the buffer");
  return a.Data() + off;
}

template <typename F>
auto guard(Napi::Env env, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Error& e) {
    throw to_js(env, e);
  }
}

Napi::Value OpenDevice(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), guard(info.Env(), [] { return pager::open_uffd_device(); }));
}

Napi::Value NewUffd(const Napi::CallbackInfo& info) {
  int dev = int_arg(info, 0, "devfd");
  return Napi::Number::New(info.Env(), guard(info.Env(), [&] { return pager::new_uffd(dev); }));
}

Napi::Value Memfd(const Napi::CallbackInfo& info) {
  if (!info[0].IsString()) throw Napi::TypeError::New(info.Env(), "pager.memfd(name, size): name must be a string");
  std::string name = info[0].As<Napi::String>();
  uint64_t size = u64_arg(info, 1, "size");
  return Napi::Number::New(info.Env(), guard(info.Env(), [&] { return pager::memfd(name, size); }));
}

Napi::Value Socketpair(const Napi::CallbackInfo& info) {
  auto p = guard(info.Env(), [] { return pager::seqpacket_pair(); });
  auto a = Napi::Array::New(info.Env(), 2);
  a.Set(0u, p.first);
  a.Set(1u, p.second);
  return a;
}

Napi::Value Recv(const Napi::CallbackInfo& info) {
  int sock = int_arg(info, 0, "sock");
  int timeout = int_arg(info, 1, "timeoutMs");
  auto m = guard(info.Env(), [&] { return pager::recv_msg(sock, timeout); });
  auto o = Napi::Object::New(info.Env());
  o.Set("payload", Napi::String::New(info.Env(), m.first));
  o.Set("fd", m.second);
  return o;
}

Napi::Value Send(const Napi::CallbackInfo& info) {
  int sock = int_arg(info, 0, "sock");
  if (!info[1].IsString()) throw Napi::TypeError::New(info.Env(), "pager.send(sock, payload): payload must be a string");
  std::string s = info[1].As<Napi::String>();
  guard(info.Env(), [&] { pager::send_msg(sock, s); return 0; });
  return info.Env().Undefined();
}

Napi::Value Api(const Napi::CallbackInfo& info) {
  int uffd = int_arg(info, 0, "uffd");
  uint64_t features = u64_arg(info, 1, "features");
  return Napi::Number::New(info.Env(), static_cast<double>(guard(info.Env(), [&] { return pager::uffd_api(uffd, features); })));
}

Napi::Value EpollCreate(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), guard(info.Env(), [] { return pager::epoll_new(); }));
}

Napi::Value EpollAdd(const Napi::CallbackInfo& info) {
  int epfd = int_arg(info, 0, "epfd"), fd = int_arg(info, 1, "fd");
  uint64_t slot = u64_arg(info, 2, "slot");
  guard(info.Env(), [&] { pager::epoll_add(epfd, fd, (slot << 32) | static_cast<uint32_t>(fd)); return 0; });
  return info.Env().Undefined();
}

Napi::Value EpollDel(const Napi::CallbackInfo& info) {
  int epfd = int_arg(info, 0, "epfd"), fd = int_arg(info, 1, "fd");
  guard(info.Env(), [&] { pager::epoll_del(epfd, fd); return 0; });
  return info.Env().Undefined();
}

// waitFaults(epfd, timeoutMs, spinUs, out: Float64Array) -> n; out[3i..] = slot, address, flags
Napi::Value WaitFaults(const Napi::CallbackInfo& info) {
  int epfd = int_arg(info, 0, "epfd"), timeout = int_arg(info, 1, "timeoutMs"), spin = int_arg(info, 2, "spinUs");
  if (!info[3].IsTypedArray() || info[3].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    throw Napi::TypeError::New(info.Env(), "pager.waitFaults: out must be a Float64Array");
  auto out = info[3].As<Napi::Float64Array>();
  size_t max = out.ElementLength() / 3;
  if (max > 64) max = 64;
  pager::Fault f[64];
  size_t n = guard(info.Env(), [&] { return pager::wait_faults(epfd, timeout, spin, f, max); });
  double* o = out.Data();
  for (size_t i = 0; i < n; i++) {
    o[3 * i] = static_cast<double>(f[i].token >> 32);
    o[3 * i + 1] = static_cast<double>(f[i].address);
    o[3 * i + 2] = static_cast<double>(f[i].flags);
  }
  return Napi::Number::New(info.Env(), static_cast<double>(n));
}

// copy(uffd, dst, src: Uint8Array, srcOffset, length, writeProtect) -> 0 | -errno
Napi::Value Copy(const Napi::CallbackInfo& info) {
  int uffd = int_arg(info, 0, "uffd");
  uint64_t dst = u64_arg(info, 1, "dst"), off = u64_arg(info, 3, "srcOffset"), len = u64_arg(info, 4, "length");
  const uint8_t* src = bytes_arg(info, 2, off, len);
  bool wp = info[5].ToBoolean();
  return Napi::Number::New(info.Env(), guard(info.Env(), [&] { return pager::copy(uffd, dst, src, len, wp); }));
}

Napi::Value Zeropage(const Napi::CallbackInfo& info) {
  int uffd = int_arg(info, 0, "uffd");
  uint64_t dst = u64_arg(info, 1, "dst"), len = u64_arg(info, 2, "length");
  return Napi::Number::New(info.Env(), guard(info.Env(), [&] { return pager::zeropage(uffd, dst, len); }));
}

Napi::Value WriteProtect(const Napi::CallbackInfo& info) {
  int uffd = int_arg(info, 0, "uffd");
  uint64_t addr = u64_arg(info, 1, "addr"), len = u64_arg(info, 2, "length");
  bool protect = info[3].ToBoolean(), wake = info[4].ToBoolean();
  return Napi::Number::New(info.Env(), guard(info.Env(), [&] { return pager::write_protect(uffd, addr, len, protect, wake); }));
}

Napi::Value Wake(const Napi::CallbackInfo& info) {
  int uffd = int_arg(info, 0, "uffd");
  uint64_t addr = u64_arg(info, 1, "addr"), len = u64_arg(info, 2, "length");
  return Napi::Number::New(info.Env(), guard(info.Env(), [&] { return pager::wake(uffd, addr, len); }));
}

Napi::Value PunchHole(const Napi::CallbackInfo& info) {
  int fd = int_arg(info, 0, "fd");
  uint64_t off = u64_arg(info, 1, "offset"), len = u64_arg(info, 2, "length");
  guard(info.Env(), [&] { pager::punch_hole(fd, off, len); return 0; });
  return info.Env().Undefined();
}

// readRegion(fd, offset, dst: Uint8Array, dstOffset, length)
Napi::Value ReadRegion(const Napi::CallbackInfo& info) {
  int fd = int_arg(info, 0, "fd");
  uint64_t off = u64_arg(info, 1, "offset"), dstOff = u64_arg(info, 3, "dstOffset"), len = u64_arg(info, 4, "length");
  uint8_t* dst = bytes_arg(info, 2, dstOff, len);
  guard(info.Env(), [&] { pager::read_region(fd, off, dst, len); return 0; });
  return info.Env().Undefined();
}

Napi::Value Streampair(const Napi::CallbackInfo& info) {
  auto p = guard(info.Env(), [] { return pager::stream_pair(); });
  auto a = Napi::Array::New(info.Env(), 2);
  a.Set(0u, p.first);
  a.Set(1u, p.second);
  return a;
}

// attachRegion(memfd, base, size, devfd, ctl): the process side of the hand-over.
Napi::Value AttachRegion(const Napi::CallbackInfo& info) {
  int memfd = int_arg(info, 0, "memfd"), devfd = int_arg(info, 3, "devfd"), ctl = int_arg(info, 4, "ctl");
  uint64_t base = u64_arg(info, 1, "base"), size = u64_arg(info, 2, "size");
  guard(info.Env(), [&] { pager::attach_region(memfd, base, size, devfd, ctl); return 0; });
  return info.Env().Undefined();
}

// regionBuffer(base, size): an ArrayBuffer over the mapped region (it lives as long as the
// process: the mapping is never unmapped, so no finalizer frees anything).
Napi::Value RegionBuffer(const Napi::CallbackInfo& info) {
  uint64_t base = u64_arg(info, 0, "base"), size = u64_arg(info, 1, "size");
  if (base == 0 || size == 0) throw Napi::RangeError::New(info.Env(), "pager.regionBuffer: base and size must be non-zero");
  napi_value ab;
  napi_status st = napi_create_external_arraybuffer(info.Env(), reinterpret_cast<void*>(base), size, nullptr, nullptr, &ab);
  if (st != napi_ok) throw Napi::Error::New(info.Env(), "pager.regionBuffer: napi_create_external_arraybuffer failed");
  return Napi::Value(info.Env(), ab);
}

Napi::Value CallSync(const Napi::CallbackInfo& info) {
  int fd = int_arg(info, 0, "fd");
  if (!info[1].IsString()) throw Napi::TypeError::New(info.Env(), "pager.callSync(fd, request, timeoutMs): request must be a string");
  std::string req = info[1].As<Napi::String>();
  int timeout = int_arg(info, 2, "timeoutMs");
  return Napi::String::New(info.Env(), guard(info.Env(), [&] { return pager::call_sync(fd, req, timeout); }));
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  int fd = int_arg(info, 0, "fd");
  if (fd >= 0) ::close(fd);
  return info.Env().Undefined();
}

}  // namespace

void define_pager(Napi::Env env, Napi::Object exports) {
  Napi::Object p = Napi::Object::New(env);
  p.Set("openDevice", Napi::Function::New(env, OpenDevice, "openDevice"));
  p.Set("newUffd", Napi::Function::New(env, NewUffd, "newUffd"));
  p.Set("memfd", Napi::Function::New(env, Memfd, "memfd"));
  p.Set("socketpair", Napi::Function::New(env, Socketpair, "socketpair"));
  p.Set("recv", Napi::Function::New(env, Recv, "recv"));
  p.Set("send", Napi::Function::New(env, Send, "send"));
  p.Set("api", Napi::Function::New(env, Api, "api"));
  p.Set("epollCreate", Napi::Function::New(env, EpollCreate, "epollCreate"));
  p.Set("epollAdd", Napi::Function::New(env, EpollAdd, "epollAdd"));
  p.Set("epollDel", Napi::Function::New(env, EpollDel, "epollDel"));
  p.Set("waitFaults", Napi::Function::New(env, WaitFaults, "waitFaults"));
  p.Set("copy", Napi::Function::New(env, Copy, "copy"));
  p.Set("zeropage", Napi::Function::New(env, Zeropage, "zeropage"));
  p.Set("writeProtect", Napi::Function::New(env, WriteProtect, "writeProtect"));
  p.Set("wake", Napi::Function::New(env, Wake, "wake"));
  p.Set("punchHole", Napi::Function::New(env, PunchHole, "punchHole"));
  p.Set("readRegion", Napi::Function::New(env, ReadRegion, "readRegion"));
  p.Set("close", Napi::Function::New(env, CloseFd, "close"));
  p.Set("streampair", Napi::Function::New(env, Streampair, "streampair"));
  p.Set("attachRegion", Napi::Function::New(env, AttachRegion, "attachRegion"));
  p.Set("regionBuffer", Napi::Function::New(env, RegionBuffer, "regionBuffer"));
  p.Set("callSync", Napi::Function::New(env, CallSync, "callSync"));
  exports.Set("pager", p);
}

}  // namespace legoos

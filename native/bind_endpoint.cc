#include "bind_endpoint.h"

#include <chrono>
#include <cstdlib>
#include <cstring>

namespace legoos {

namespace {
constexpr int kTimerPeriodMs = 100;

EndpointInfo info_from_js(Napi::Env env, Napi::Value v) {
  if (!v.IsObject()) throw Napi::TypeError::New(env, "connect(remote): remote must be an EndpointInfo object");
  Napi::Object o = v.As<Napi::Object>();
  EndpointInfo i;
  auto str = [&](const char* k) {
    Napi::Value x = o.Get(k);
    return x.IsString() ? x.As<Napi::String>().Utf8Value() : std::string();
  };
  auto num = [&](const char* k) {
    Napi::Value x = o.Get(k);
    return x.IsNumber() ? x.As<Napi::Number>().Int64Value() : 0;
  };
  i.provider = str("provider");
  i.host = str("host");
  i.port = static_cast<int>(num("port"));
  i.token = str("token");
  i.lid = static_cast<uint32_t>(num("lid"));
  i.qpn = static_cast<uint32_t>(num("qpn"));
  i.psn = static_cast<uint32_t>(num("psn"));
  i.mtu = static_cast<uint32_t>(num("mtu"));
  i.gid = str("gid");
  return i;
}

Napi::Object info_to_js(Napi::Env env, const EndpointInfo& i) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("provider", i.provider);
  if (i.provider == "tcp") {
    o.Set("host", i.host);
    o.Set("port", Napi::Number::New(env, static_cast<double>(i.port)));
    o.Set("token", i.token);
  } else {
    o.Set("lid", Napi::Number::New(env, static_cast<double>(i.lid)));
    o.Set("qpn", Napi::Number::New(env, static_cast<double>(i.qpn)));
    o.Set("psn", Napi::Number::New(env, static_cast<double>(i.psn)));
    o.Set("gid", i.gid);
    o.Set("mtu", Napi::Number::New(env, static_cast<double>(i.mtu)));
  }
  return o;
}

// Waits for one completion on the calling thread, with no thread hop. Spinning first
// (LEGOOS_FABRIC_SPIN_US, default 0) pays off only with a core to spare; on a busy host the
// spinner steals the CPU the peer needs, so by default it blocks in the fd at once.
// progress() enforces the op timeout.
Completion wait_one(Endpoint& ep, uint64_t wr_id, int spin_us, std::unordered_map<uint64_t, Completion>* others = nullptr) {
  using Clock = std::chrono::steady_clock;
  Completion c;
  auto spin_until = Clock::now() + std::chrono::microseconds(spin_us);
  bool spinning = spin_us > 0;
  for (unsigned i = 1;; i++) {
    // Blocking first when not spinning: on tcp this is the recv itself, no wasted poll.
    if (!spinning) ep.wait(50);
    if (ep.progress(&c, 1) == 1) {
      if (c.wr_id == wr_id) return c;
      if (others != nullptr) others->emplace(c.wr_id, c);
      continue;
    }
    if (spinning && (i & 15) == 0 && Clock::now() > spin_until) spinning = false;
  }
}
}  // namespace

// Brings a connection up off the loop thread (tcp connect + hello may take a round trip or a
// timeout); the promise settles back on the loop.
class ConnectWorker : public Napi::AsyncWorker {
 public:
  ConnectWorker(EndpointWrap* w, Napi::Object self, EndpointInfo remote)
      : Napi::AsyncWorker(self.Env(), "legoos:fabric:connect"), self_(Napi::Persistent(self)), wrap_(w), ep_(w->ep_),
        remote_(std::move(remote)),
        deferred_(Napi::Promise::Deferred::New(self.Env())) {}
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    try {
      ep_->connect(remote_);
    } catch (const Error& e) {
      err_ = std::make_unique<Error>(e);
    } catch (const std::exception& e) {
      err_ = std::make_unique<Error>("EIO", e.what(), 5);
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    wrap_->connecting_ = false;
    if (wrap_->close_after_connect_) {
      wrap_->close_after_connect_ = false;
      wrap_->closed_ = false;
      wrap_->close_native(true);
      deferred_.Reject(to_js(env, Error::closed("endpoint")).Value());
      return;
    }
    if (err_) deferred_.Reject(to_js(env, *err_).Value());
    else deferred_.Resolve(env.Undefined());
  }

 private:
  Napi::ObjectReference self_;  // keeps the wrap alive while the connect runs
  EndpointWrap* wrap_;
  std::shared_ptr<Endpoint> ep_;
  EndpointInfo remote_;
  Napi::Promise::Deferred deferred_;
  std::unique_ptr<Error> err_;
};

Napi::Function EndpointWrap::Define(Napi::Env env) {
  return DefineClass(env, "Endpoint",
                     {
                         InstanceAccessor("localInfo", &EndpointWrap::GetLocalInfo, nullptr),
                         InstanceAccessor("outstanding", &EndpointWrap::GetOutstanding, nullptr),
                         InstanceAccessor("closed", &EndpointWrap::GetClosed, nullptr),
                         InstanceMethod("connect", &EndpointWrap::Connect),
                         InstanceMethod("connectSync", &EndpointWrap::ConnectSync),
                         InstanceMethod("read", &EndpointWrap::Read),
                         InstanceMethod("write", &EndpointWrap::Write),
                         InstanceMethod("compareAndSwap", &EndpointWrap::CompareAndSwap),
                         InstanceMethod("fetchAndAdd", &EndpointWrap::FetchAndAdd),
                         InstanceMethod("readSync", &EndpointWrap::ReadSync),
                         InstanceMethod("writeSync", &EndpointWrap::WriteSync),
                         InstanceMethod("postReadSync", &EndpointWrap::PostReadSync),
                         InstanceMethod("postWriteSync", &EndpointWrap::PostWriteSync),
                         InstanceMethod("waitSync", &EndpointWrap::WaitSync),
                         InstanceMethod("compareAndSwapSync", &EndpointWrap::CompareAndSwapSync),
                         InstanceMethod("fetchAndAddSync", &EndpointWrap::FetchAndAddSync),
                         InstanceMethod("close", &EndpointWrap::Close),
                     });
}

// new Endpoint(fabric)
EndpointWrap::EndpointWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EndpointWrap>(info) {
  Napi::Env env = info.Env();
  FabricWrap* f = FabricWrap::from(env, info[0]);
  fabric_ = f->fabric();
  try {
    ep_ = fabric_->create_endpoint();
  } catch (const Error& e) {
    throw to_js(env, e);
  }
  FabricAddon* a = addon_of(env);
  loop_ = a->loop;
  registry_ = a->registry;
  registry_->endpoints.insert(this);
  async_ctx_ = std::make_unique<Napi::AsyncContext>(env, "legoos:fabric:endpoint");
  if (const char* s = std::getenv("LEGOOS_FABRIC_SPIN_US")) spin_us_ = std::atoi(s);
  // A verbs completion reaches an fd only through the kernel's completion event (under rxe a
  // softirq, an eventfd wake-up and an epoll round): polling the CQ right after the post takes
  // it as soon as it lands, as the sync path and perftest do. The requester side of the
  // transfer is the NIC (or the kernel's rxe), not a process that spinning would starve, so
  // verbs spins by default; tcp does not (its peer is usually a process on the same cores).
  async_spin_us_ = fabric_->provider() == "verbs" ? 2000 : 0;
  if (const char* s = std::getenv("LEGOOS_FABRIC_ASYNC_SPIN_US")) async_spin_us_ = std::atoi(s);
  info.This().As<Napi::Object>().TypeTag(&kEndpointTag);
}

EndpointWrap::~EndpointWrap() {
  registry_->endpoints.erase(this);
  close_native(false);
}

void EndpointWrap::check_open(Napi::Env env) {
  if (closed_) throw to_js(env, Error::closed("endpoint"));
  if (connecting_) throw to_js(env, Error("EBUSY", "endpoint is connecting", 16));
}

Napi::Value EndpointWrap::GetLocalInfo(const Napi::CallbackInfo& info) {
  if (closed_) throw to_js(info.Env(), Error::closed("endpoint"));
  return info_to_js(info.Env(), ep_->local_info());
}

Napi::Value EndpointWrap::GetOutstanding(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(pending_.size()));
}

Napi::Value EndpointWrap::GetClosed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), closed_); }

Napi::Value EndpointWrap::Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_ || connecting_) {
    auto d = Napi::Promise::Deferred::New(env);
    d.Reject(to_js(env, closed_ ? Error::closed("endpoint") : Error("EBUSY", "endpoint is connecting", 16)).Value());
    return d.Promise();
  }
  EndpointInfo remote = info_from_js(env, info[0]);
  auto* w = new ConnectWorker(this, info.This().As<Napi::Object>(), remote);
  connecting_ = true;
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Value EndpointWrap::ConnectSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  check_open(env);
  EndpointInfo remote = info_from_js(env, info[0]);
  try {
    ep_->connect(remote);
  } catch (const Error& e) {
    throw to_js(env, e);
  }
  return env.Undefined();
}

// (mr, localOffset, remoteAddr: bigint, rkey, length) or, for atomics,
// (mr, localOffset, remoteAddr, rkey, compareOrAdd: bigint, swap?: bigint).
WorkRequest EndpointWrap::parse_wr(const Napi::CallbackInfo& info, Opcode op, Napi::Object* mr_obj) {
  Napi::Env env = info.Env();
  MemoryRegionWrap* mrw = MemoryRegionWrap::from(env, info[0]);
  *mr_obj = info[0].As<Napi::Object>();
  MemoryRegion* mr = mrw->mr();
  if (mr->closed()) throw to_js(env, Error::closed("local memory region"));
  bool lossless = true;
  WorkRequest wr{};
  wr.op = op;
  wr.mr = mr;
  double off = info[1].As<Napi::Number>().DoubleValue();
  wr.remote_addr = info[2].As<Napi::BigInt>().Uint64Value(&lossless);
  wr.rkey = info[3].As<Napi::Number>().Uint32Value();
  double len;
  if (op == Opcode::kRead || op == Opcode::kWrite) {
    len = info[4].As<Napi::Number>().DoubleValue();
  } else {
    len = 8;
    wr.compare_add = info[4].As<Napi::BigInt>().Uint64Value(&lossless);
    if (op == Opcode::kCompSwap) wr.swap = info[5].As<Napi::BigInt>().Uint64Value(&lossless);
  }
  if (!(off >= 0) || !(len >= 0) || off + len > static_cast<double>(mr->length()))
    throw to_js(env, Error("ERANGE", "local range [" + std::to_string(static_cast<int64_t>(off)) + ", +" +
                                         std::to_string(static_cast<int64_t>(len)) + ") is outside the local memory region (" +
                                         std::to_string(mr->length()) + " bytes)", 34));
  wr.local_offset = static_cast<size_t>(off);
  wr.length = static_cast<uint32_t>(len);
  return wr;
}

Napi::Value EndpointWrap::post_async(const Napi::CallbackInfo& info, Opcode op) {
  Napi::Env env = info.Env();
  auto d = Napi::Promise::Deferred::New(env);
  try {
    if (closed_) throw Error::closed("endpoint");
    if (connecting_) throw Error("EBUSY", "endpoint is connecting", 16);
    Napi::Object mr_obj;
    WorkRequest wr = parse_wr(info, op, &mr_obj);
    wr.wr_id = next_wr_id_++;
    ep_->post(wr);
    const uint8_t* res = op == Opcode::kCompSwap || op == Opcode::kFetchAdd ? wr.mr->addr() + wr.local_offset : nullptr;
    pending_.emplace(wr.wr_id, PendingJs{d, Napi::Persistent(mr_obj), res});
    watch();
    if (async_spin_us_ > 0) start_spin();
  } catch (const Error& e) {
    d.Reject(to_js(env, e).Value());
  } catch (const Napi::Error& e) {
    d.Reject(e.Value());
  }
  return d.Promise();
}

Napi::Value EndpointWrap::run_sync(const Napi::CallbackInfo& info, Opcode op) {
  Napi::Env env = info.Env();
  check_open(env);
  if (!pending_.empty())
    throw to_js(env, Error("EBUSY", "async operations are in flight on this endpoint; do not mix sync and async", 16));
  if (!sync_inflight_.empty())
    throw to_js(env, Error("EBUSY", "posted sync operations are not waited for yet on this endpoint (waitSync)", 16));
  Napi::Object mr_obj;
  WorkRequest wr = parse_wr(info, op, &mr_obj);
  wr.wr_id = next_wr_id_++;
  Completion c;
  try {
    ep_->post(wr);
    c = wait_one(*ep_, wr.wr_id, spin_us_);
  } catch (const Error& e) {
    throw to_js(env, e);
  }
  if (c.status != kWcSuccess) throw to_js(env, Error::from_wc(c.status, c.vendor_err, c.wr_id));
  if (op == Opcode::kCompSwap || op == Opcode::kFetchAdd) {
    uint64_t v;
    std::memcpy(&v, wr.mr->addr() + wr.local_offset, 8);
    return Napi::BigInt::New(env, v);
  }
  return env.Undefined();
}

Napi::Value EndpointWrap::post_sync(const Napi::CallbackInfo& info, Opcode op) {
  Napi::Env env = info.Env();
  check_open(env);
  if (!pending_.empty())
    throw to_js(env, Error("EBUSY", "async operations are in flight on this endpoint; do not mix sync and async", 16));
  Napi::Object mr_obj;
  WorkRequest wr = parse_wr(info, op, &mr_obj);
  wr.wr_id = next_wr_id_++;
  try {
    ep_->post(wr);
  } catch (const Error& e) {
    throw to_js(env, e);
  }
  sync_inflight_.emplace(wr.wr_id, Napi::Persistent(mr_obj));
  return Napi::Number::New(env, static_cast<double>(wr.wr_id));
}

Napi::Value EndpointWrap::WaitSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "waitSync(id): id must be a number from postReadSync/postWriteSync");
  uint64_t id = static_cast<uint64_t>(info[0].As<Napi::Number>().DoubleValue());
  auto it = sync_inflight_.find(id);
  if (it == sync_inflight_.end()) throw Napi::RangeError::New(env, "waitSync(id): no posted operation with this id");
  Completion c;
  try {
    for (;;) {
      auto d = sync_done_.find(id);
      if (d != sync_done_.end()) {
        c = d->second;
        sync_done_.erase(d);
        break;
      }
      if (closed_) throw Error::closed("endpoint");
      // Completions of the other posted ops that arrive first are kept for their own waitSync.
      c = wait_one(*ep_, id, spin_us_, &sync_done_);
      break;
    }
  } catch (const Error& e) {
    sync_inflight_.erase(id);
    throw to_js(env, e);
  }
  sync_inflight_.erase(id);
  if (c.status != kWcSuccess) throw to_js(env, Error::from_wc(c.status, c.vendor_err, c.wr_id));
  return env.Undefined();
}

// Keeps the fd watched while the connection is healthy; the handle only holds the loop open
// (and the wrap only resists GC) while operations are pending.
void EndpointWrap::watch() {
  if (closed_) return;
  bool busy = !pending_.empty();
  if (!poll_ && ep_->event_fd() >= 0) {
    poll_ = new PollBox{{}, this};
    if (uv_poll_init(loop_, &poll_->handle, ep_->event_fd()) != 0) {
      delete poll_;
      poll_ = nullptr;
    } else {
      poll_->handle.data = poll_;
      uv_unref(reinterpret_cast<uv_handle_t*>(&poll_->handle));
      if (ep_->arm()) drain(Env());
    }
  }
  if (!timer_) {
    timer_ = new TimerBox{{}, this};
    uv_timer_init(loop_, &timer_->handle);
    timer_->handle.data = timer_;
    uv_unref(reinterpret_cast<uv_handle_t*>(&timer_->handle));
  }
  if (poll_) {
    int want = 0;
    if (!ep_->failed()) want = UV_READABLE | (ep_->wants_writable() ? UV_WRITABLE : 0);
    if (want != poll_events_) {
      if (want) {
        uv_poll_start(&poll_->handle, want, [](uv_poll_t* h, int status, int) {
          auto* box = static_cast<PollBox*>(h->data);
          if (box->owner) box->owner->on_ready(status);
        });
      } else {
        uv_poll_stop(&poll_->handle);
      }
      poll_events_ = want;
    }
    if (busy != poll_ref_) {
      if (busy) uv_ref(reinterpret_cast<uv_handle_t*>(&poll_->handle));
      else uv_unref(reinterpret_cast<uv_handle_t*>(&poll_->handle));
      poll_ref_ = busy;
    }
  }
  // The timer enforces op timeouts; it stops itself when it finds the endpoint idle.
  if (busy && !timer_on_) {
    uv_timer_start(&timer_->handle, [](uv_timer_t* h) {
      auto* box = static_cast<TimerBox*>(h->data);
      if (box->owner) box->owner->on_timer();
    }, kTimerPeriodMs, kTimerPeriodMs);
    timer_on_ = true;
  }
  if (busy != self_ref_) {
    if (busy) Ref();
    else Unref();
    self_ref_ = busy;
  }
}

void EndpointWrap::on_ready(int status) {
  Napi::Env env = Env();
  Napi::HandleScope hs(env);
  // Settling promises inside a callback scope makes Node run their reactions right after.
  Napi::CallbackScope cs(env, *async_ctx_);
  if (status < 0) {
    Completion c[64];
    int n;
    while ((n = ep_->fail_all(kWcRetryExcErr, c, 64)) > 0) deliver(env, c, n);
  } else {
    drain(env);
  }
  watch();
}

void EndpointWrap::on_timer() {
  if (pending_.empty()) {
    uv_timer_stop(&timer_->handle);
    timer_on_ = false;
    return;
  }
  Napi::Env env = Env();
  Napi::HandleScope hs(env);
  Napi::CallbackScope cs(env, *async_ctx_);
  drain(env);
  watch();
}

void EndpointWrap::start_spin() {
  spin_until_ = std::chrono::steady_clock::now() + std::chrono::microseconds(async_spin_us_);
  if (closed_ || idle_on_) return;
  if (!idle_) {
    idle_ = new IdleBox{{}, this};
    uv_idle_init(loop_, &idle_->handle);
    idle_->handle.data = idle_;
    // The poll handle holds the loop open while ops are pending; the idle only stops it sleeping.
    uv_unref(reinterpret_cast<uv_handle_t*>(&idle_->handle));
  }
  uv_idle_start(&idle_->handle, [](uv_idle_t* h) {
    auto* box = static_cast<IdleBox*>(h->data);
    if (box->owner) box->owner->on_idle();
  });
  idle_on_ = true;
}

void EndpointWrap::stop_spin() {
  if (idle_ && idle_on_) uv_idle_stop(&idle_->handle);
  idle_on_ = false;
}

// Runs once per loop iteration (the loop polls its fds without blocking meanwhile).
void EndpointWrap::on_idle() {
  if (pending_.empty() || std::chrono::steady_clock::now() > spin_until_) {
    stop_spin();
    return;
  }
  Completion c[64];
  int n = ep_->progress(c, 64);
  if (n == 0) return;
  Napi::Env env = Env();
  Napi::HandleScope hs(env);
  Napi::CallbackScope cs(env, *async_ctx_);
  deliver(env, c, n);
  if (pending_.empty()) stop_spin();
  watch();
}

void EndpointWrap::drain(Napi::Env env) {
  Completion c[64];
  for (;;) {
    int n = ep_->progress(c, 64);
    deliver(env, c, n);
    if (n == 64) continue;
    if (!ep_->arm()) return;
    n = ep_->progress(c, 64);
    deliver(env, c, n);
    if (n == 0) return;
  }
}

void EndpointWrap::deliver(Napi::Env env, const Completion* c, int n) {
  for (int i = 0; i < n; i++) {
    auto it = pending_.find(c[i].wr_id);
    if (it == pending_.end()) continue;
    PendingJs p = std::move(it->second);
    pending_.erase(it);
    if (c[i].status == kWcSuccess) {
      if (p.atomic_result) {
        uint64_t v;
        std::memcpy(&v, p.atomic_result, 8);
        p.deferred.Resolve(Napi::BigInt::New(env, v));
      } else {
        p.deferred.Resolve(env.Undefined());
      }
    } else {
      p.deferred.Reject(to_js(env, Error::from_wc(c[i].status, c[i].vendor_err, c[i].wr_id)).Value());
    }
  }
}

Napi::Value EndpointWrap::Close(const Napi::CallbackInfo& info) {
  close_native(true);
  return info.Env().Undefined();
}

// uv_close stops an active handle before closing it.
template <typename B>
void EndpointWrap::close_box(B*& box) {
  if (!box) return;
  box->owner = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&box->handle), [](uv_handle_t* h) { delete static_cast<B*>(h->data); });
  box = nullptr;
}

void EndpointWrap::close_native(bool reject_pending) {
  if (closed_) return;
  closed_ = true;
  if (connecting_) {
    // The connect thread still uses ep_; ConnectWorker::OnOK finishes the close.
    close_after_connect_ = true;
    return;
  }
  if (reject_pending) {
    Napi::Env env = Env();
    Napi::HandleScope hs(env);
    Completion c[64];
    int n;
    while ((n = ep_->fail_all(kWcWrFlushErr, c, 64)) > 0) deliver(env, c, n);
    for (auto& kv : pending_) kv.second.deferred.Reject(to_js(env, Error::from_wc(kWcWrFlushErr, 0, kv.first)).Value());
  }
  pending_.clear();
  close_box(poll_);
  close_box(idle_);
  idle_on_ = false;
  close_box(timer_);
  ep_->close();
  if (self_ref_ && reject_pending) Unref();
  self_ref_ = false;
}

}  // namespace legoos

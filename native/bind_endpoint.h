// Endpoint binding: async ops resolve promises on the loop thread from a uv_poll on the
// endpoint's fd (no thread hop); *Sync ops post and spin on the calling thread (workers).
#pragma once
#include <chrono>
#include <unordered_map>

#include "addon.h"

namespace legoos {

class EndpointWrap : public Napi::ObjectWrap<EndpointWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit EndpointWrap(const Napi::CallbackInfo& info);
  ~EndpointWrap() override;
  // reject_pending: called from JS (pending promises are rejected with WR_FLUSH);
  // false at environment teardown, where JS can no longer run.
  void close_native(bool reject_pending);
  bool fabric_is(const Fabric* f) const { return fabric_.get() == f; }

 private:
  struct PendingJs {
    Napi::Promise::Deferred deferred;
    Napi::Reference<Napi::Object> mr;  // keeps the local bytes alive until completion
    const uint8_t* atomic_result;      // atomics resolve with the old 8-byte value
  };
  // A libuv handle and the wrap it calls back; the owner is cleared at close, and the box is
  // freed by uv_close's callback (the handle outlives the wrap until the loop lets it go).
  template <typename Handle>
  struct Box {
    Handle handle;
    EndpointWrap* owner;
  };
  using PollBox = Box<uv_poll_t>;
  using TimerBox = Box<uv_timer_t>;
  using IdleBox = Box<uv_idle_t>;
  template <typename B>
  static void close_box(B*& box);
  friend class ConnectWorker;

  Napi::Value GetLocalInfo(const Napi::CallbackInfo& info);
  Napi::Value GetOutstanding(const Napi::CallbackInfo& info);
  Napi::Value GetClosed(const Napi::CallbackInfo& info);
  Napi::Value Connect(const Napi::CallbackInfo& info);
  Napi::Value ConnectSync(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info) { return post_async(info, Opcode::kRead); }
  Napi::Value Write(const Napi::CallbackInfo& info) { return post_async(info, Opcode::kWrite); }
  Napi::Value CompareAndSwap(const Napi::CallbackInfo& info) { return post_async(info, Opcode::kCompSwap); }
  Napi::Value FetchAndAdd(const Napi::CallbackInfo& info) { return post_async(info, Opcode::kFetchAdd); }
  Napi::Value ReadSync(const Napi::CallbackInfo& info) { return run_sync(info, Opcode::kRead); }
  Napi::Value WriteSync(const Napi::CallbackInfo& info) { return run_sync(info, Opcode::kWrite); }
  Napi::Value CompareAndSwapSync(const Napi::CallbackInfo& info) { return run_sync(info, Opcode::kCompSwap); }
  Napi::Value FetchAndAddSync(const Napi::CallbackInfo& info) { return run_sync(info, Opcode::kFetchAdd); }
  // Split sync ops: post now, wait later, so one thread keeps several ops in flight (a write-back
  // to every replica and the next fill travel together). waitSync(id) throws like readSync.
  Napi::Value PostReadSync(const Napi::CallbackInfo& info) { return post_sync(info, Opcode::kRead); }
  Napi::Value PostWriteSync(const Napi::CallbackInfo& info) { return post_sync(info, Opcode::kWrite); }
  Napi::Value WaitSync(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  WorkRequest parse_wr(const Napi::CallbackInfo& info, Opcode op, Napi::Object* mr_obj);
  Napi::Value post_async(const Napi::CallbackInfo& info, Opcode op);
  Napi::Value run_sync(const Napi::CallbackInfo& info, Opcode op);
  Napi::Value post_sync(const Napi::CallbackInfo& info, Opcode op);
  // Split sync ops posted and not yet waited for, with the MR objects they use (kept alive), and
  // completions that arrived while waiting for another one.
  std::unordered_map<uint64_t, Napi::Reference<Napi::Object>> sync_inflight_;
  std::unordered_map<uint64_t, Completion> sync_done_;
  void check_open(Napi::Env env);
  void watch();
  void on_ready(int status);
  void on_timer();
  void on_idle();
  void start_spin();
  void stop_spin();
  void drain(Napi::Env env);
  void deliver(Napi::Env env, const Completion* c, int n);

  std::shared_ptr<Fabric> fabric_;
  std::shared_ptr<Endpoint> ep_;
  std::shared_ptr<Registry> registry_;
  uv_loop_t* loop_;
  std::unique_ptr<Napi::AsyncContext> async_ctx_;
  uint64_t next_wr_id_ = 1;
  std::unordered_map<uint64_t, PendingJs> pending_;
  PollBox* poll_ = nullptr;
  int poll_events_ = 0;
  bool poll_ref_ = false;
  TimerBox* timer_ = nullptr;
  bool timer_on_ = false;
  bool self_ref_ = false;
  bool closed_ = false;
  bool connecting_ = false;
  bool close_after_connect_ = false;
  int spin_us_ = 0;
  // Async ops: poll the CQ from a uv_idle for up to async_spin_us_ after a post before leaving
  // it to the completion fd (see start_spin).
  int async_spin_us_ = 0;
  IdleBox* idle_ = nullptr;
  bool idle_on_ = false;
  std::chrono::steady_clock::time_point spin_until_{};
};

}  // namespace legoos

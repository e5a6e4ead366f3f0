// N-API side: per-environment addon data, the error bridge, and the three ObjectWrap classes.
// The addon is loaded in every worker thread, so nothing here is static and mutable: all
// state hangs off FabricAddon (Napi::Addon instance data) or off the wrapped objects.
#pragma once
#include <napi.h>
#include <uv.h>

#include <memory>
#include <unordered_set>

#include "provider.h"

namespace legoos {

class FabricWrap;
class MemoryRegionWrap;
class EndpointWrap;

// Live wrapped objects of one environment; the env cleanup hook closes them, children first.
// Shared with the wraps so their finalizers stay safe whatever order teardown runs in.
struct Registry {
  std::unordered_set<FabricWrap*> fabrics;
  std::unordered_set<MemoryRegionWrap*> mrs;
  std::unordered_set<EndpointWrap*> endpoints;
  void close_all();
};

class FabricAddon : public Napi::Addon<FabricAddon> {
 public:
  FabricAddon(Napi::Env env, Napi::Object exports);
  ~FabricAddon();

  Napi::FunctionReference fabric_ctor, mr_ctor, ep_ctor;
  Napi::FunctionReference error_ctor;  // FabricError from lib/errors.ts, handed in by setErrorClass
  std::shared_ptr<Registry> registry = std::make_shared<Registry>();
  uv_loop_t* loop = nullptr;

 private:
  Napi::Value SetErrorClass(const Napi::CallbackInfo& info);
  Napi::Value Providers(const Napi::CallbackInfo& info);
  Napi::Value Devices(const Napi::CallbackInfo& info);
  Napi::Env::CleanupHook<std::function<void()>> cleanup_;
};

inline FabricAddon* addon_of(Napi::Env env) { return env.GetInstanceData<FabricAddon>(); }

// legoos::Error -> JS FabricError (or a plain Error with the same fields before init).
Napi::Error to_js(Napi::Env env, const Error& e);

// Type tags let Unwrap() refuse foreign objects instead of crashing.
extern const napi_type_tag kFabricTag;
extern const napi_type_tag kMrTag;
extern const napi_type_tag kEndpointTag;

class FabricWrap : public Napi::ObjectWrap<FabricWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit FabricWrap(const Napi::CallbackInfo& info);
  ~FabricWrap() override;
  std::shared_ptr<Fabric> fabric() const { return fabric_; }
  void close_native();
  static FabricWrap* from(Napi::Env env, Napi::Value v);

 private:
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value GetProvider(const Napi::CallbackInfo& info);
  Napi::Value GetPort(const Napi::CallbackInfo& info);
  Napi::Value GetClosed(const Napi::CallbackInfo& info);
  std::shared_ptr<Fabric> fabric_;
  std::shared_ptr<Registry> registry_;
};

class MemoryRegionWrap : public Napi::ObjectWrap<MemoryRegionWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit MemoryRegionWrap(const Napi::CallbackInfo& info);
  ~MemoryRegionWrap() override;
  MemoryRegion* mr() const { return mr_.get(); }
  void close_native();
  static MemoryRegionWrap* from(Napi::Env env, Napi::Value v);

 private:
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value GetAddr(const Napi::CallbackInfo& info);
  Napi::Value GetLength(const Napi::CallbackInfo& info);
  Napi::Value GetLkey(const Napi::CallbackInfo& info);
  Napi::Value GetRkey(const Napi::CallbackInfo& info);
  std::shared_ptr<MemoryRegion> mr_;
  // Keeps the registered bytes alive for as long as this wrap lives (pending ops hold the wrap).
  Napi::Reference<Napi::Uint8Array> view_;
  std::shared_ptr<Registry> registry_;
};

void define_endpoint(Napi::Env env, FabricAddon* addon, Napi::Object exports);
// exports.pager: the ExCache pager's per-fault system calls (bind_pager.cc).
void define_pager(Napi::Env env, Napi::Object exports);

}  // namespace legoos

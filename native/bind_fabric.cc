#include "addon.h"
#include "bind_endpoint.h"

namespace legoos {

static std::string opt_string(Napi::Object o, const char* key, const std::string& dflt) {
  Napi::Value v = o.Get(key);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : dflt;
}
static int opt_int(Napi::Object o, const char* key, int dflt) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().Int32Value() : dflt;
}

Napi::Function FabricWrap::Define(Napi::Env env) {
  return DefineClass(env, "Fabric",
                     {
                         InstanceMethod("close", &FabricWrap::Close),
                         InstanceAccessor("provider", &FabricWrap::GetProvider, nullptr),
                         InstanceAccessor("port", &FabricWrap::GetPort, nullptr),
                         InstanceAccessor("closed", &FabricWrap::GetClosed, nullptr),
                     });
}

// new Fabric({provider, host?, port?, device?, ibPort?, gidIndex?, timeoutMs?}); TS validated it.
FabricWrap::FabricWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FabricWrap>(info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "Fabric(options): options must be an object");
  Napi::Object o = info[0].As<Napi::Object>();
  FabricOptions opts;
  opts.provider = opt_string(o, "provider", "tcp");
  opts.host = opt_string(o, "host", "127.0.0.1");
  opts.port = opt_int(o, "port", -1);
  opts.device = opt_string(o, "device", "");
  opts.ib_port = opt_int(o, "ibPort", 1);
  opts.gid_index = opt_int(o, "gidIndex", -1);
  opts.timeout_ms = opt_int(o, "timeoutMs", 10000);
  try {
    fabric_ = open_fabric(opts);
  } catch (const Error& e) {
    throw to_js(env, e);
  }
  info.This().As<Napi::Object>().TypeTag(&kFabricTag);
  registry_ = addon_of(env)->registry;
  registry_->fabrics.insert(this);
}

FabricWrap::~FabricWrap() {
  registry_->fabrics.erase(this);
  // Children hold the fabric (shared_ptr); it is really closed when the last one goes.
  fabric_.reset();
}

void FabricWrap::close_native() {
  if (fabric_) fabric_->close();
}

FabricWrap* FabricWrap::from(Napi::Env env, Napi::Value v) {
  if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&kFabricTag))
    throw Napi::TypeError::New(env, "expected a native Fabric");
  return Unwrap(v.As<Napi::Object>());
}

Napi::Value FabricWrap::Close(const Napi::CallbackInfo& info) {
  // Endpoints first: their wraps own uv handles and pending promises.
  auto eps = registry_->endpoints;
  for (auto* e : eps)
    if (e->fabric_is(fabric_.get())) e->close_native(true);
  close_native();
  return info.Env().Undefined();
}

Napi::Value FabricWrap::GetProvider(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), fabric_->provider());
}

Napi::Value FabricWrap::GetPort(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), fabric_->listen_port());
}

Napi::Value FabricWrap::GetClosed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), fabric_->closed());
}

}  // namespace legoos

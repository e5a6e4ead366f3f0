#include "addon.h"

namespace legoos {

Napi::Function MemoryRegionWrap::Define(Napi::Env env) {
  return DefineClass(env, "MemoryRegion",
                     {
                         InstanceMethod("close", &MemoryRegionWrap::Close),
                         InstanceAccessor("addr", &MemoryRegionWrap::GetAddr, nullptr),
                         InstanceAccessor("length", &MemoryRegionWrap::GetLength, nullptr),
                         InstanceAccessor("lkey", &MemoryRegionWrap::GetLkey, nullptr),
                         InstanceAccessor("rkey", &MemoryRegionWrap::GetRkey, nullptr),
                     });
}

// new MemoryRegion(fabric, view: Uint8Array). A view over a SharedArrayBuffer has the same data
// pointer in every thread, which is what lets workers register the same memory.
MemoryRegionWrap::MemoryRegionWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<MemoryRegionWrap>(info) {
  Napi::Env env = info.Env();
  FabricWrap* f = FabricWrap::from(env, info[0]);
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw Napi::TypeError::New(env, "register(view): view must be a Uint8Array");
  Napi::Uint8Array view = info[1].As<Napi::Uint8Array>();
  if (view.ByteLength() == 0) throw Napi::RangeError::New(env, "register(view): view must not be empty");
  try {
    mr_ = f->fabric()->register_mr(view.Data(), view.ByteLength());
  } catch (const Error& e) {
    throw to_js(env, e);
  }
  view_ = Napi::Persistent(view);
  info.This().As<Napi::Object>().TypeTag(&kMrTag);
  registry_ = addon_of(env)->registry;
  registry_->mrs.insert(this);
}

MemoryRegionWrap::~MemoryRegionWrap() {
  registry_->mrs.erase(this);
  close_native();
}

void MemoryRegionWrap::close_native() {
  if (mr_) mr_->close();
}

MemoryRegionWrap* MemoryRegionWrap::from(Napi::Env env, Napi::Value v) {
  if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&kMrTag))
    throw Napi::TypeError::New(env, "expected a native MemoryRegion");
  return Unwrap(v.As<Napi::Object>());
}

Napi::Value MemoryRegionWrap::Close(const Napi::CallbackInfo& info) {
  close_native();
  return info.Env().Undefined();
}

Napi::Value MemoryRegionWrap::GetAddr(const Napi::CallbackInfo& info) {
  return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(reinterpret_cast<uintptr_t>(mr_->addr())));
}
Napi::Value MemoryRegionWrap::GetLength(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(mr_->length()));
}
Napi::Value MemoryRegionWrap::GetLkey(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), mr_->lkey()); }
Napi::Value MemoryRegionWrap::GetRkey(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), mr_->rkey()); }

}  // namespace legoos

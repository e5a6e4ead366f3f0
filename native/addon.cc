#include "addon.h"

#include "bind_endpoint.h"

namespace legoos {

const napi_type_tag kFabricTag = {0x6c65676f6f736661ull, 0x6272696300000001ull};
const napi_type_tag kMrTag = {0x6c65676f6f736661ull, 0x6272696300000002ull};
const napi_type_tag kEndpointTag = {0x6c65676f6f736661ull, 0x6272696300000003ull};

void Registry::close_all() {
  // Copies: closing may unregister.
  auto eps = endpoints;
  for (auto* e : eps) e->close_native(false);
  auto mrs_copy = mrs;
  for (auto* m : mrs_copy) m->close_native();
  auto fabs = fabrics;
  for (auto* f : fabs) f->close_native();
}

FabricAddon::FabricAddon(Napi::Env env, Napi::Object exports) {
  napi_get_uv_event_loop(env, &loop);
  Napi::Function fabric = FabricWrap::Define(env);
  Napi::Function mr = MemoryRegionWrap::Define(env);
  Napi::Function ep = EndpointWrap::Define(env);
  fabric_ctor = Napi::Persistent(fabric);
  mr_ctor = Napi::Persistent(mr);
  ep_ctor = Napi::Persistent(ep);
  exports.Set("Fabric", fabric);
  exports.Set("MemoryRegion", mr);
  exports.Set("Endpoint", ep);
  define_pager(env, exports);
  DefineAddon(exports, {
                           InstanceMethod("setErrorClass", &FabricAddon::SetErrorClass),
                           InstanceMethod("providers", &FabricAddon::Providers),
                           InstanceMethod("devices", &FabricAddon::Devices),
                       });
  // Worker threads come and go: close their fabrics (and stop progress threads) with them.
  auto reg = registry;
  cleanup_ = env.AddCleanupHook(std::function<void()>([reg]() { reg->close_all(); }));
}

FabricAddon::~FabricAddon() { registry->close_all(); }

Napi::Value FabricAddon::SetErrorClass(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) throw Napi::TypeError::New(info.Env(), "setErrorClass(ctor): ctor must be a class");
  error_ctor = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

Napi::Value FabricAddon::Providers(const Napi::CallbackInfo& info) {
  auto list = providers();
  Napi::Array a = Napi::Array::New(info.Env(), list.size());
  for (uint32_t i = 0; i < list.size(); i++) a.Set(i, list[i]);
  return a;
}

Napi::Value FabricAddon::Devices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<DeviceInfo> devs;
  try {
    devs = list_devices();
  } catch (const Error& e) {
    throw to_js(env, e);
  }
  Napi::Array a = Napi::Array::New(env, devs.size());
  for (uint32_t i = 0; i < devs.size(); i++) {
    Napi::Object d = Napi::Object::New(env);
    d.Set("name", devs[i].name);
    d.Set("nodeGuid", devs[i].node_guid);
    Napi::Array ports = Napi::Array::New(env, devs[i].ports.size());
    for (uint32_t j = 0; j < devs[i].ports.size(); j++) {
      const PortInfo& p = devs[i].ports[j];
      Napi::Object po = Napi::Object::New(env);
      po.Set("port", Napi::Number::New(env, static_cast<double>(p.port)));
      po.Set("state", p.state_name);
      po.Set("stateNum", Napi::Number::New(env, static_cast<double>(p.state)));
      po.Set("activeMtu", Napi::Number::New(env, static_cast<double>(p.active_mtu)));
      po.Set("lid", Napi::Number::New(env, static_cast<double>(p.lid)));
      po.Set("linkLayer", p.link_layer == 2 ? "Ethernet" : p.link_layer == 1 ? "InfiniBand" : "unknown");
      Napi::Array gids = Napi::Array::New(env, p.gids.size());
      for (uint32_t k = 0; k < p.gids.size(); k++) {
        Napi::Object g = Napi::Object::New(env);
        g.Set("index", Napi::Number::New(env, static_cast<double>(p.gids[k].index)));
        g.Set("gid", p.gids[k].gid);
        gids.Set(k, g);
      }
      po.Set("gids", gids);
      ports.Set(j, po);
    }
    d.Set("ports", ports);
    a.Set(i, d);
  }
  return a;
}

Napi::Error to_js(Napi::Env env, const Error& e) {
  FabricAddon* a = addon_of(env);
  Napi::Object opts = Napi::Object::New(env);
  opts.Set("errno", Napi::Number::New(env, static_cast<double>(e.err_no)));
  opts.Set("wcStatus", Napi::Number::New(env, static_cast<double>(e.wc_status)));
  opts.Set("vendorErr", Napi::Number::New(env, static_cast<double>(e.vendor_err)));
  opts.Set("wrId", Napi::BigInt::New(env, e.wr_id));
  if (a && !a->error_ctor.IsEmpty()) {
    Napi::Object o = a->error_ctor.New({Napi::String::New(env, e.code), Napi::String::New(env, e.message), opts});
    return Napi::Error(env, o);
  }
  Napi::Error err = Napi::Error::New(env, e.message);
  err.Set("code", e.code);
  err.Set("errno", Napi::Number::New(env, static_cast<double>(e.err_no)));
  err.Set("wcStatus", Napi::Number::New(env, static_cast<double>(e.wc_status)));
  err.Set("vendorErr", Napi::Number::New(env, static_cast<double>(e.vendor_err)));
  err.Set("wrId", Napi::BigInt::New(env, e.wr_id));
  return err;
}

}  // namespace legoos

using legoos::FabricAddon;
NODE_API_ADDON(FabricAddon)

{
  # One addon, two providers. The verbs provider is compiled only when pkg-config finds
  # libibverbs (rdma-core); force it off with `LEGOOS_NO_VERBS=1 npm run build:native`.
  "variables": {
    "have_verbs%": "<!(node -e \"const r=require('child_process').spawnSync('pkg-config',['--exists','libibverbs']);process.stdout.write(process.env.LEGOOS_NO_VERBS==='1'||r.status!==0?'0':'1')\")"
  },
  "targets": [
    {
      "target_name": "legoos_fabric",
      "sources": [
        "native/addon.cc",
        "native/errors.cc",
        "native/fabric.cc",
        "native/tcp_wire.cc",
        "native/tcp_fabric.cc",
        "native/tcp_target.cc",
        "native/tcp_endpoint.cc",
        "native/bind_fabric.cc",
        "native/bind_memory_region.cc",
        "native/bind_endpoint.cc",
        "native/uffd_pager.cc",
        "native/bind_pager.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-fvisibility=hidden", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_cc": ["-std=c++17", "-fvisibility=hidden", "-O2"],
      "cflags_cc!": ["-std=gnu++17", "-std=gnu++20", "-fno-exceptions"],
      "conditions": [
        ["have_verbs==1", {
          "sources": [
            "native/verbs_device.cc",
            "native/verbs_pd.cc",
            "native/verbs_mr.cc",
            "native/verbs_cq.cc",
            "native/verbs_qp.cc",
            "native/verbs_fabric.cc"
          ],
          "defines": ["LEGOOS_HAVE_VERBS=1"],
          "cflags": ["<!@(pkg-config --cflags libibverbs)"],
          "libraries": ["<!@(pkg-config --libs libibverbs)"]
        }]
      ]
    }
  ]
}

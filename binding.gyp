{
  "targets": [
    {
      "target_name": "nsproxy",
      "sources": [
        "native/addon.cc",
        "native/background.cc",
        "native/connection.cc",
        "native/engine.cc",
        "native/errors.cc",
        "native/exec_in_target.cc",
        "native/netns.cc",
        "native/netns_inspect.cc",
        "native/notify.cc",
        "native/ns_helper.cc",
        "native/ns_join.cc",
        "native/pipe_pool.cc",
        "native/probe.cc",
        "native/proxy_header.cc",
        "native/sockets.cc",
        "native/sockmap.cc",
        "native/target_jobs.cc",
        "native/upstream.cc",
        "native/worker.cc",
        "native/worker_sockmap.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "_GNU_SOURCE"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
      "configurations": {
        "Debug": {
          "cflags_cc": ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"],
          "ldflags": ["-fsanitize=address,undefined"]
        }
      }
    }
  ]
}

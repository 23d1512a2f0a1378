# The addon for node-gyp / prebuildify. Same source groups as CMakeLists.txt
# (test/unit/build-sources.test.ts fails when the lists differ): three plain C++
# libraries, static, linked into the one fulcrum.node with the N-API glue.
{
  "target_defaults": {
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
    "cflags_cc": ["-std=c++20", "-fexceptions", "-fPIC", "-Wall", "-Wextra", "-Wshadow", "-Wnon-virtual-dtor", "-fvisibility=hidden"]
  },
  "targets": [
    {
      "target_name": "fulcrum_engine",
      "type": "static_library",
      "sources": [
        "native/engine/address.cc",
        "native/engine/bpf.cc",
        "native/engine/bpf_ring_buffer.cc",
        "native/engine/cidr_set.cc",
        "native/engine/client_limits.cc",
        "native/engine/connection_budget.cc",
        "native/engine/connection_log.cc",
        "native/engine/connection_log_format.cc",
        "native/engine/connection_log_ring.cc",
        "native/engine/connection_stats.cc",
        "native/engine/counters.cc",
        "native/engine/engine.cc",
        "native/engine/event_sink.cc",
        "native/engine/kernel_relay.cc",
        "native/engine/listener.cc",
        "native/engine/load_sampler.cc",
        "native/engine/maglev.cc",
        "native/engine/pg_cancel.cc",
        "native/engine/picker.cc",
        "native/engine/pipe_pool.cc",
        "native/engine/proxy_protocol.cc",
        "native/engine/service.cc",
        "native/engine/sticky_table.cc",
        "native/engine/sync_journal.cc",
        "native/engine/tcp_connection.cc",
        "native/engine/tcp_connection_log.cc",
        "native/engine/tcp_kernel_relay.cc",
        "native/engine/tcp_reset_delivery.cc",
        "native/engine/tcp_keepalive.cc",
        "native/engine/timer_queue.cc",
        "native/engine/udp_flow_table.cc",
        "native/engine/udp_relay.cc",
        "native/engine/udp_kernel_flows.cc",
        "native/engine/udp_kernel_nat.cc",
        "native/engine/udp_kernel_policy.cc",
        "native/engine/udp_socket.cc",
        "native/engine/worker.cc"
      ]
    },
    {
      "target_name": "fulcrum_ha",
      "type": "static_library",
      "sources": [
        "native/ha/garp.cc",
        "native/ha/netlink_address.cc",
        "native/ha/vrrp_socket.cc"
      ]
    },
    {
      "target_name": "fulcrum_bench",
      "type": "static_library",
      "dependencies": ["fulcrum_engine"],
      "sources": [
        "native/bench/client.cc",
        "native/bench/latency_recorder.cc",
        "native/bench/ping_pong.cc",
        "native/bench/protocol.cc",
        "native/bench/server.cc",
        "native/bench/socket_util.cc",
        "native/bench/tcp_connrate.cc",
        "native/bench/tcp_throughput.cc",
        "native/bench/udp_pps.cc"
      ]
    },
    {
      "target_name": "fulcrum",
      "dependencies": ["fulcrum_engine", "fulcrum_ha", "fulcrum_bench"],
      "sources": [
        "native/addon/addon.cc",
        "native/addon/connection_log_glue.cc",
        "native/addon/bench_client_handle.cc",
        "native/addon/bench_server_handle.cc",
        "native/addon/engine_handle.cc",
        "native/addon/errors.cc",
        "native/addon/fd_passing.cc",
        "native/addon/ha_socket.cc",
        "native/addon/sd_notify.cc",
        "native/addon/snapshot_reader.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"]
    }
  ]
}

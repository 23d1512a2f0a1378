// The numbers a snapshot carries and the values each may take: the config
// schema's bounds for the key it comes from (test/unit/snapshot-schema.test.ts
// holds them equal through addon.snapshotSchema). The snapshot reader checks
// with these, and so does any other call that takes such a number
// (Engine.setBackendWeight).
#pragma once

namespace fulcrum::addon {

// zero_is_off: 0 is accepted too and turns the feature off (no limit, no
// ramp), as an absent key does in the config.
struct IntegerField {
  const char* scope;  // where the key is: service, backend, sticky, clientLimits
  const char* key;
  double min;
  double max;
  bool zero_is_off;
};

inline constexpr double kHour = 3600000;
inline constexpr double kDay = 24 * kHour;

// services[]
inline constexpr IntegerField kMaglevTableSize{"service", "maglevTableSize", 251, 4194301, false};  // primes
inline constexpr IntegerField kConnectTimeout{"service", "connectTimeoutMs", 1, kHour, false};
inline constexpr IntegerField kIdleTimeout{"service", "idleTimeoutMs", 1, 7 * kDay, true};  // udp: at least 1
inline constexpr IntegerField kRetries{"service", "retries", 0, 16, false};
inline constexpr IntegerField kQueueSize{"service", "queueSize", 0, 1000000, false};
inline constexpr IntegerField kQueueTimeout{"service", "queueTimeoutMs", 1, kHour, false};
inline constexpr IntegerField kMaxFlows{"service", "maxFlows", 1, 16777216, false};
inline constexpr IntegerField kUdpResponses{"service", "udpResponses", 0, 1000000, false};
// From udp.nat_ports (a "FIRST-LAST" string, checked by the config), so not
// in kIntegerFields: no schema integer bounds them.
inline constexpr IntegerField kNatPortFirst{"service", "natPortFirst", 1, 65535, false};
inline constexpr IntegerField kNatPortCount{"service", "natPortCount", 1, 65535, false};
// services[].tcpKeepalive
inline constexpr IntegerField kKeepaliveIdle{"tcpKeepalive", "idleMs", 1000, 9 * kHour, false};
inline constexpr IntegerField kKeepaliveInterval{"tcpKeepalive", "intervalMs", 1000, 9 * kHour, false};
inline constexpr IntegerField kKeepaliveCount{"tcpKeepalive", "count", 1, 127, false};
// services[].acceptProxy, .sticky, .clientLimits
inline constexpr IntegerField kAcceptProxyTimeout{"acceptProxy", "timeoutMs", 1, 60000, false};
inline constexpr IntegerField kStickySize{"sticky", "size", 1, 16777216, false};
inline constexpr IntegerField kStickyTimeout{"sticky", "timeoutMs", 1, 7 * kDay, false};
inline constexpr IntegerField kLimitConnections{"clientLimits", "maxConnections", 1, 1000000, true};
inline constexpr IntegerField kLimitRate{"clientLimits", "rate", 1, 1000000, true};
inline constexpr IntegerField kLimitBurst{"clientLimits", "burst", 1, 1000000, true};
inline constexpr IntegerField kLimitTableSize{"clientLimits", "tableSize", 16, 16777216, false};
// services[].backends[]
inline constexpr IntegerField kWeight{"backend", "weight", 0, 256, false};
inline constexpr IntegerField kMaxConnections{"backend", "maxConnections", 1, 1000000, true};
inline constexpr IntegerField kSlowStart{"backend", "slowStartMs", 1, kHour, true};

// Every field above, for addon.snapshotSchema.
inline constexpr const IntegerField* kIntegerFields[] = {
    &kMaglevTableSize, &kConnectTimeout, &kIdleTimeout, &kRetries,         &kQueueSize,       &kQueueTimeout,
    &kMaxFlows,        &kUdpResponses,   &kAcceptProxyTimeout, &kStickySize, &kStickyTimeout, &kLimitConnections,
    &kLimitRate,       &kLimitBurst,     &kLimitTableSize, &kWeight,        &kMaxConnections,  &kSlowStart,
    &kKeepaliveIdle,   &kKeepaliveInterval, &kKeepaliveCount,
};

}  // namespace fulcrum::addon

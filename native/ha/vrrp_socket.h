// The VRRP socket: a raw IPv4 socket for IP protocol 112 (RFC 5798), bound to
// one interface. This code only moves packets; parsing, validation and the
// state machine live in TypeScript (src/ha/). Every function returns -errno on
// failure and never throws.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fulcrum::ha {

constexpr int kVrrpProtocol = 112;
// 224.0.0.18, host order.
constexpr uint32_t kVrrpMulticastGroup = 0xE0000012u;

// Opens the socket on `ifname`: SO_BINDTODEVICE (only this interface's
// packets), TTL and multicast TTL 255 (RFC 5798 5.1.1.3), no multicast loop
// (our own adverts are not ours to read), multicast sent out of `ifname`, and
// when `join_group` the membership of 224.0.0.18 there. Returns the
// non-blocking fd, or -errno (-ENODEV: no such interface, -EPERM: not root).
int vrrp_socket_open(const char* ifname, bool join_group);

// Sends `payload` (the VRRP packet, checksum already set) to `destination`
// (IPv4, network order) with source address `source` (network order: the
// checksum's pseudo-header must name the address the packet leaves from).
// Returns the bytes sent or -errno (-EAGAIN: socket buffer full).
long vrrp_socket_send(int fd, uint32_t destination, uint32_t source, const uint8_t* payload, size_t length);

// Reads one datagram including its IPv4 header (raw sockets deliver it, so the
// TTL can be checked) into `buffer`. Returns the datagram's full length (which
// may exceed `capacity`: the copy was truncated), or -errno (-EAGAIN: none).
long vrrp_socket_receive(int fd, uint8_t* buffer, size_t capacity);

}  // namespace fulcrum::ha

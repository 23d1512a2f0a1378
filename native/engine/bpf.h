// The BPF loader: raw bpf(2) calls, no libbpf and no clang at build or run
// time. Programs come as instruction arrays that scripts/generate-bpf.mjs
// compiled once from native/bpf/*.bpf.c; their map references are patched
// with the fds of maps the caller created, by name, before the program goes
// to the verifier. Shared by every BPF user in the engine (the kernel relay,
// kernel_relay.h).
//
// Every call returns an fd or 0 on success and -errno on failure; `error`,
// where asked for, gets a sentence for the operator (with the verifier's
// last lines for a refused program).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace fulcrum::bpf {

// One instruction, laid out as the kernel's struct bpf_insn.
struct Insn {
  uint8_t code;
  uint8_t regs;  // dst_reg in the low nibble, src_reg in the high one
  int16_t off;
  int32_t imm;
};

// The instruction at `insn` (a 64-bit immediate load) takes the fd of `map`.
struct MapReference {
  uint32_t insn;
  const char* map;
};

struct ProgramImage {
  const char* name;
  const Insn* insns;
  size_t insn_count;
  const MapReference* maps;
  size_t map_count;
};

// An owned fd (a map, a program, a link): closed with the object.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset();

 private:
  int fd_ = -1;
};

struct MapSpec {
  const char* name;  // shown by bpftool; at most 15 characters are kept
  uint32_t type;     // BPF_MAP_TYPE_*
  uint32_t key_size;
  uint32_t value_size;
  uint32_t max_entries;
  uint32_t flags = 0;  // BPF_F_NO_PREALLOC, ...
};

int create_map(const MapSpec& spec, std::string* error);

// Loads `image` as a program of `prog_type`, with each map reference
// resolved through `map_fd(name)` (a negative fd is an error).
int load_program(const ProgramImage& image, uint32_t prog_type, uint32_t expected_attach_type,
                 const std::function<int(std::string_view)>& map_fd, std::string* error);

// BPF_PROG_ATTACH of a program to a map (sockmap verdicts) or another target.
int attach_program(int target_fd, int prog_fd, uint32_t attach_type);

int map_update(int map_fd, const void* key, const void* value, uint64_t flags);
int map_lookup(int map_fd, const void* key, void* value);
int map_delete(int map_fd, const void* key);

// "no CAP_BPF/CAP_SYS_ADMIN", "the kernel has no BPF", ... for an errno of
// a failed bpf(2) call.
std::string describe_errno(int error);

// --- Appended for the kernel UDP datapath (udp_kernel_nat.h) ---

// BPF_LINK_CREATE of `prog_fd` on the network interface `ifindex` (tcx:
// attach_type BPF_TCX_INGRESS = 46, kernel >= 6.6). The link fd detaches
// the program when closed. Returns the link fd or -errno.
int link_interface(int prog_fd, uint32_t ifindex, uint32_t attach_type);

// BPF_MAP_GET_NEXT_KEY: the key after `key` (nullptr: the first) in *next.
// Returns 0, or -ENOENT after the last key.
int map_next_key(int map_fd, const void* key, void* next);

// Every key of a map, at most `bound` (a map changing under the walk can
// make BPF_MAP_GET_NEXT_KEY start again from the first key).
template <typename Key>
std::vector<Key> map_keys(int map_fd, size_t bound) {
  std::vector<Key> keys;
  Key key{};
  Key next{};
  bool first = true;
  while (keys.size() < bound && map_next_key(map_fd, first ? nullptr : &key, &next) == 0) {
    keys.push_back(next);
    key = next;
    first = false;
  }
  return keys;
}

// --- Appended for pinned maps (the kernel UDP datapath's flows across an upgrade) ---

// BPF_OBJ_PIN: `fd` (a map) at `path` on a bpffs. Returns 0 or -errno (EEXIST: taken).
int pin_object(int fd, const std::string& path);
// BPF_OBJ_GET: a new fd of the object pinned at `path`, or -errno (ENOENT: none).
int get_pinned(const std::string& path);

struct MapInfo {
  uint32_t type = 0;
  uint32_t key_size = 0;
  uint32_t value_size = 0;
  uint32_t max_entries = 0;
};
// BPF_OBJ_GET_INFO_BY_FD for a map. Returns 0 or -errno.
int map_info(int fd, MapInfo* info);

// The directory where Fulcrum pins (`root`/fulcrum, root normally
// /sys/fs/bpf): mounts a bpffs on `root` when none is there (as systemd does
// at boot; needs CAP_SYS_ADMIN), and creates the directory. Returns 0 or
// -errno, with *error saying what failed.
int ensure_pin_directory(const std::string& root, std::string* directory, std::string* error);

}  // namespace fulcrum::bpf

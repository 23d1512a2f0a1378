#include "bpf.h"

#include <cerrno>
#include <cstring>
#include <vector>

#include <linux/bpf.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace fulcrum::bpf {
namespace {

static_assert(sizeof(Insn) == sizeof(bpf_insn), "Insn must be laid out as struct bpf_insn");

int sys_bpf(int command, bpf_attr* attr) {
  const long result = syscall(__NR_bpf, command, attr, sizeof *attr);
  return result < 0 ? -errno : static_cast<int>(result);
}

uint64_t pointer(const void* p) { return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p)); }

// The verifier's log ends with its verdict; the last lines say why.
std::string log_tail(const std::vector<char>& log) {
  std::string text(log.data(), strnlen(log.data(), log.size()));
  while (!text.empty() && text.back() == '\n') text.pop_back();
  size_t start = text.size();
  for (int lines = 0; lines < 4 && start > 0; lines++) {
    const size_t newline = text.rfind('\n', start - 1);
    start = newline == std::string::npos ? 0 : newline + 1;
    if (newline == std::string::npos) break;
  }
  return text.substr(start);
}

}  // namespace

Fd& Fd::operator=(Fd&& other) noexcept {
  if (this != &other) {
    reset();
    fd_ = other.release();
  }
  return *this;
}

void Fd::reset() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

std::string describe_errno(int error) {
  switch (error) {
    case EPERM:
      return "not permitted (needs CAP_BPF and CAP_NET_ADMIN, or root)";
    case ENOSYS:
      return "the kernel has no bpf(2)";
    case EINVAL:
      return "the kernel does not support this BPF map or program type";
    case ENOMEM:
      return "out of memory for BPF maps (memlock or the kernel)";
    default:
      return strerror(error);
  }
}

int create_map(const MapSpec& spec, std::string* error) {
  bpf_attr attr{};
  attr.map_type = spec.type;
  attr.key_size = spec.key_size;
  attr.value_size = spec.value_size;
  attr.max_entries = spec.max_entries;
  attr.map_flags = spec.flags;
  strncpy(attr.map_name, spec.name, sizeof attr.map_name - 1);
  const int fd = sys_bpf(BPF_MAP_CREATE, &attr);
  if (fd < 0 && error) *error = std::string("creating BPF map ") + spec.name + ": " + describe_errno(-fd);
  return fd;
}

int load_program(const ProgramImage& image, uint32_t prog_type, uint32_t expected_attach_type,
                 const std::function<int(std::string_view)>& map_fd, std::string* error) {
  std::vector<Insn> insns(image.insns, image.insns + image.insn_count);
  for (size_t i = 0; i < image.map_count; i++) {
    const MapReference& reference = image.maps[i];
    const int fd = map_fd(reference.map);
    if (fd < 0 || reference.insn >= insns.size()) {
      if (error) *error = std::string("BPF program ") + image.name + ": no map " + reference.map;
      return -EINVAL;
    }
    Insn& insn = insns[reference.insn];
    insn.regs = static_cast<uint8_t>((insn.regs & 0x0f) | (BPF_PSEUDO_MAP_FD << 4));
    insn.imm = fd;
  }
  std::vector<char> log(64 * 1024);
  bpf_attr attr{};
  attr.prog_type = prog_type;
  attr.expected_attach_type = expected_attach_type;
  attr.insns = pointer(insns.data());
  attr.insn_cnt = static_cast<uint32_t>(insns.size());
  attr.license = pointer("Dual MIT/GPL");
  attr.log_buf = pointer(log.data());
  attr.log_size = static_cast<uint32_t>(log.size());
  attr.log_level = 1;
  strncpy(attr.prog_name, image.name, sizeof attr.prog_name - 1);
  int fd = sys_bpf(BPF_PROG_LOAD, &attr);
  if (fd == -ENOSPC) {
    // The log did not fit: load again without one (the program may be fine).
    attr.log_buf = 0;
    attr.log_size = 0;
    attr.log_level = 0;
    fd = sys_bpf(BPF_PROG_LOAD, &attr);
  }
  if (fd < 0 && error) {
    *error = std::string("loading BPF program ") + image.name + ": " + describe_errno(-fd);
    const std::string verifier = log_tail(log);
    if (!verifier.empty()) *error += " (verifier: " + verifier + ")";
  }
  return fd;
}

int attach_program(int target_fd, int prog_fd, uint32_t attach_type) {
  bpf_attr attr{};
  attr.target_fd = static_cast<uint32_t>(target_fd);
  attr.attach_bpf_fd = static_cast<uint32_t>(prog_fd);
  attr.attach_type = attach_type;
  return sys_bpf(BPF_PROG_ATTACH, &attr);
}

int map_update(int map_fd, const void* key, const void* value, uint64_t flags) {
  bpf_attr attr{};
  attr.map_fd = static_cast<uint32_t>(map_fd);
  attr.key = pointer(key);
  attr.value = pointer(value);
  attr.flags = flags;
  return sys_bpf(BPF_MAP_UPDATE_ELEM, &attr);
}

int map_lookup(int map_fd, const void* key, void* value) {
  bpf_attr attr{};
  attr.map_fd = static_cast<uint32_t>(map_fd);
  attr.key = pointer(key);
  attr.value = pointer(value);
  return sys_bpf(BPF_MAP_LOOKUP_ELEM, &attr);
}

int map_delete(int map_fd, const void* key) {
  bpf_attr attr{};
  attr.map_fd = static_cast<uint32_t>(map_fd);
  attr.key = pointer(key);
  return sys_bpf(BPF_MAP_DELETE_ELEM, &attr);
}

int link_interface(int prog_fd, uint32_t ifindex, uint32_t attach_type) {
  bpf_attr attr{};
  attr.link_create.prog_fd = static_cast<uint32_t>(prog_fd);
  attr.link_create.target_ifindex = ifindex;
  attr.link_create.attach_type = attach_type;
  return sys_bpf(BPF_LINK_CREATE, &attr);
}

int map_next_key(int map_fd, const void* key, void* next) {
  bpf_attr attr{};
  attr.map_fd = static_cast<uint32_t>(map_fd);
  attr.key = pointer(key);
  attr.next_key = pointer(next);
  return sys_bpf(BPF_MAP_GET_NEXT_KEY, &attr);
}

}  // namespace fulcrum::bpf

namespace fulcrum::bpf {

// --- Pinned maps ---

int pin_object(int fd, const std::string& path) {
  bpf_attr attr{};
  attr.pathname = pointer(path.c_str());
  attr.bpf_fd = static_cast<uint32_t>(fd);
  return sys_bpf(BPF_OBJ_PIN, &attr);
}

int get_pinned(const std::string& path) {
  bpf_attr attr{};
  attr.pathname = pointer(path.c_str());
  return sys_bpf(BPF_OBJ_GET, &attr);
}

int map_info(int fd, MapInfo* info) {
  bpf_map_info kernel{};
  bpf_attr attr{};
  attr.info.bpf_fd = static_cast<uint32_t>(fd);
  attr.info.info_len = sizeof kernel;
  attr.info.info = pointer(&kernel);
  const int rc = sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &attr);
  if (rc < 0) return rc;
  info->type = kernel.type;
  info->key_size = kernel.key_size;
  info->value_size = kernel.value_size;
  info->max_entries = kernel.max_entries;
  return 0;
}

int ensure_pin_directory(const std::string& root, std::string* directory, std::string* error) {
  // BPF_FS_MAGIC: a bpffs is mounted on root already (systemd mounts one at boot).
  constexpr long kBpfFsMagic = 0xcafe4a11;
  struct statfs fs{};
  if (statfs(root.c_str(), &fs) != 0) {
    const int e = errno;
    if (error) *error = "no " + root + ": " + strerror(e);
    return -e;
  }
  if (static_cast<long>(fs.f_type) != kBpfFsMagic && mount("bpf", root.c_str(), "bpf", 0, "mode=0700") != 0) {
    const int e = errno;
    if (error) *error = "mounting a bpffs on " + root + ": " + strerror(e);
    return -e;
  }
  *directory = root + "/fulcrum";
  if (mkdir(directory->c_str(), 0700) != 0 && errno != EEXIST) {
    const int e = errno;
    if (error) *error = "creating " + *directory + ": " + strerror(e);
    return -e;
  }
  return 0;
}

}  // namespace fulcrum::bpf

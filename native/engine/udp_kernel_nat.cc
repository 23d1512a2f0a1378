#include "udp_kernel_nat.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "../bpf/udp_nat.insns.h"
#include "flow_hash.h"
#include "picker.h"

namespace fulcrum {
namespace {

// The kernel headers this builds with may predate tcx (6.6).
constexpr uint32_t kTcxIngress = 46;

// The layouts of udp_nat.bpf.c's maps.
struct NatConfig {
  uint32_t listen_ip;
  uint32_t snat_ip;
  uint16_t listen_port;
  uint16_t nat_port_first;
  uint16_t nat_port_count;
  uint16_t pad;
  uint32_t table_entries;
  uint32_t client_ifindex;
  uint32_t backend_ifindex;
};
static_assert(sizeof(NatConfig) == 28);
struct NatBackend {
  uint32_t ip;
  uint16_t port;
  uint8_t state;
  uint8_t pad;
};
enum : uint8_t { kNatNone = 0, kNatUp = 1, kNatDrain = 2, kNatDown = 3 };

uint64_t monotonic_ns() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(now.tv_nsec);
}

// Possible CPUs ("0-N" in sysfs): a per-CPU map's lookup returns one value each.
uint32_t possible_cpus() {
  std::ifstream in("/sys/devices/system/cpu/possible");
  std::string text;
  std::getline(in, text);
  uint32_t count = 0;
  std::stringstream ranges(text);
  std::string range;
  while (std::getline(ranges, range, ',')) {
    const size_t dash = range.find('-');
    const uint32_t first = static_cast<uint32_t>(std::stoul(range.substr(0, dash)));
    const uint32_t last = dash == std::string::npos ? first : static_cast<uint32_t>(std::stoul(range.substr(dash + 1)));
    count += last - first + 1;
  }
  return count ? count : 1;
}

std::string ip_text(uint32_t ip) {
  char text[INET_ADDRSTRLEN] = "";
  inet_ntop(AF_INET, &ip, text, sizeof text);
  return text;
}

// The interface that owns `ip` (network order), or "".
std::string interface_owning(uint32_t ip) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return "";
  std::string name;
  for (ifaddrs* at = list; at; at = at->ifa_next) {
    if (!at->ifa_addr || at->ifa_addr->sa_family != AF_INET) continue;
    if (reinterpret_cast<sockaddr_in*>(at->ifa_addr)->sin_addr.s_addr == ip) {
      name = at->ifa_name;
      break;
    }
  }
  freeifaddrs(list);
  return name;
}

// The address this host sends from towards `backend` (its route), or 0.
uint32_t source_towards(const sockaddr_in& backend) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in local{};
  socklen_t length = sizeof local;
  uint32_t ip = 0;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&backend), sizeof backend) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) == 0) {
    ip = local.sin_addr.s_addr;
  }
  close(fd);
  return ip;
}

bool read_port_range(const char* path, uint32_t* first, uint32_t* last) {
  std::ifstream in(path);
  return static_cast<bool>(in >> *first >> *last);
}

// Keeps the NAT ports out of local sockets' hands: they must lie outside
// the ephemeral range, and are added to ip_local_reserved_ports (so a wider
// range later does not take them). Returns "" or why not.
std::string reserve_nat_ports(uint32_t first, uint32_t count) {
  const uint32_t last = first + count - 1;
  if (last > 65535) return "udp.nat_ports ends past port 65535";
  uint32_t low = 0;
  uint32_t high = 0;
  if (read_port_range("/proc/sys/net/ipv4/ip_local_port_range", &low, &high) && first <= high && low <= last) {
    return "udp.nat_ports " + std::to_string(first) + "-" + std::to_string(last) +
           " overlap the ephemeral ports (net.ipv4.ip_local_port_range " + std::to_string(low) + "-" +
           std::to_string(high) + ")";
  }
  const std::string range = std::to_string(first) + "-" + std::to_string(last);
  std::string reserved;
  {
    std::ifstream in("/proc/sys/net/ipv4/ip_local_reserved_ports");
    std::getline(in, reserved);
  }
  if (("," + reserved + ",").find("," + range + ",") == std::string::npos) {
    std::ofstream out("/proc/sys/net/ipv4/ip_local_reserved_ports");
    out << (reserved.empty() ? range : reserved + "," + range) << '\n';
  }
  return "";
}

// Features the programs do not implement: such a service stays on the relay.
std::string unsupported_feature(const ServiceSpec& spec) {
  if (spec.picker.balance != Balance::kMaglev) return "balance is not maglev (the kernel datapath places flows by Maglev)";
  if (spec.transparent) return "source: client is set (the kernel datapath always NATs the source)";
  if (spec.accept_proxy.enabled) return "accept_proxy is set";
  return "";
}

// Weights and states may differ: update() rewrites the table for them.
bool same_backends(const ServiceSpec& a, const ServiceSpec& b) {
  if (a.backends.size() != b.backends.size()) return false;
  for (size_t i = 0; i < a.backends.size(); i++) {
    if (a.backends[i].slot != b.backends[i].slot ||
        a.backends[i].backup != b.backends[i].backup ||
        memcmp(&a.backends[i].address.storage, &b.backends[i].address.storage, sizeof(sockaddr_in)) != 0) {
      return false;
    }
  }
  return true;
}

// An IPv4 listen address of one host that no interface owns now: the kernel
// path may start later, once one does (a VRRP VIP arriving on a failover).
bool listen_address_unowned(const ServiceSpec& spec) {
  if (spec.listen.family() != AF_INET) return false;
  const auto& listen = *reinterpret_cast<const sockaddr_in*>(&spec.listen.storage);
  return listen.sin_addr.s_addr != INADDR_ANY && interface_owning(listen.sin_addr.s_addr).empty();
}

}  // namespace

std::string UdpKernelNat::pin_path(const std::string& directory, const ServiceSpec& spec) {
  const auto& listen = *reinterpret_cast<const sockaddr_in*>(&spec.listen.storage);
  // Two network namespaces may run the same service on the same address.
  struct stat net{};
  const unsigned long long netns = stat("/proc/self/ns/net", &net) == 0 ? static_cast<unsigned long long>(net.st_ino) : 0;
  // bpffs refuses names with a dot: 10_0_0_1 for 10.0.0.1.
  auto safe = [](const std::string& text) {
    std::string out;
    for (char c : text) out.push_back(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ? c : '_');
    return out;
  };
  return directory + "/udp-" + safe(ip_text(listen.sin_addr.s_addr)) + "-" + std::to_string(ntohs(listen.sin_port)) + "-" +
         safe(spec.name) + "-net" + std::to_string(netns);
}

void UdpKernelNat::unpin() {
  if (pin_dir_.empty()) return;
  for (const char* file : {"/flows", "/reverse"}) unlink((pin_dir_ + file).c_str());
  rmdir(pin_dir_.c_str());
  rmdir(pin_dir_.substr(0, pin_dir_.rfind('/')).c_str());  // the fulcrum directory, once empty
  pin_dir_.clear();
}

std::unique_ptr<UdpKernelNat> UdpKernelNat::start(const ServiceSpec& spec, const BackendTable& table, bool pin,
                                                  std::string* reason) {
  std::unique_ptr<UdpKernelNat> nat(new UdpKernelNat());
  nat->spec_ = spec;
  if (std::string why = unsupported_feature(spec); !why.empty()) {
    *reason = why;
    return nullptr;
  }
  if (spec.listen.family() != AF_INET) {
    *reason = "the listen address is IPv6 (the kernel datapath is IPv4 only)";
    return nullptr;
  }
  const auto& listen = *reinterpret_cast<const sockaddr_in*>(&spec.listen.storage);
  if (listen.sin_addr.s_addr == INADDR_ANY) {
    *reason = "the listen address is a wildcard (the kernel datapath needs the address of one interface)";
    return nullptr;
  }
  nat->client_interface_ = interface_owning(listen.sin_addr.s_addr);
  if (nat->client_interface_.empty()) {
    *reason = "no interface owns the listen address " + ip_text(listen.sin_addr.s_addr) + " (yet)";
    return nullptr;
  }
  for (const BackendSpec& backend : spec.backends) {
    if (backend.address.family() != AF_INET) {
      *reason = "a backend is IPv6 (the kernel datapath is IPv4 only)";
      return nullptr;
    }
    const uint32_t source = source_towards(*reinterpret_cast<const sockaddr_in*>(&backend.address.storage));
    if (source == 0) {
      *reason = "no route to a backend";
      return nullptr;
    }
    if (nat->snat_ip_ != 0 && nat->snat_ip_ != source) {
      *reason = "the backends are reached from more than one local address";
      return nullptr;
    }
    nat->snat_ip_ = source;
  }
  nat->backend_interface_ = interface_owning(nat->snat_ip_);
  if (nat->backend_interface_.empty() || nat->backend_interface_ == "lo" || nat->client_interface_ == "lo") {
    *reason = "the listen address or the backends are on the loopback interface (packets there are not redirected)";
    return nullptr;
  }
  nat->client_ifindex_ = if_nametoindex(nat->client_interface_.c_str());
  nat->backend_ifindex_ = if_nametoindex(nat->backend_interface_.c_str());
  if (std::string why = reserve_nat_ports(spec.udp.nat_port_first, spec.udp.nat_port_count); !why.empty()) {
    *reason = why;
    return nullptr;
  }

  std::string error;
  nat->table_size_ = spec.picker.maglev_table_size;
  struct Made {
    bpf::Fd* fd;
    bpf::MapSpec spec;
  } maps[] = {
      {&nat->config_, {"nat_config", BPF_MAP_TYPE_ARRAY, 4, sizeof(NatConfig), 1}},
      {&nat->backends_, {"nat_backends", BPF_MAP_TYPE_ARRAY, 4, sizeof(NatBackend), kMaxBackends}},
      {&nat->maglev_, {"nat_maglev", BPF_MAP_TYPE_ARRAY, 4, 4, nat->table_size_}},
      {&nat->flows_, {"nat_flows", BPF_MAP_TYPE_LRU_HASH, sizeof(NatFlowKey), sizeof(NatFlow), spec.udp.max_flows}},
      {&nat->reverse_, {"nat_reverse", BPF_MAP_TYPE_HASH, 4, sizeof(NatReverse), spec.udp.nat_port_count}},
      {&nat->stats_, {"nat_stats", BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, kKernelStatCount}},
  };
  // Pinned flow maps of this service (an upgrade, or a restart after a
  // crash): adopted when their shape is what this spec asks for.
  std::string pin_dir;
  if (pin) {
    std::string directory;
    std::string why;
    if (bpf::ensure_pin_directory("/sys/fs/bpf", &directory, &why) == 0) pin_dir = pin_path(directory, spec);
  }
  if (!pin_dir.empty()) {
    bpf::Fd flows(bpf::get_pinned(pin_dir + "/flows"));
    bpf::Fd reverse(bpf::get_pinned(pin_dir + "/reverse"));
    auto fits = [](const bpf::Fd& fd, const bpf::MapSpec& want) {
      bpf::MapInfo info;
      return fd.valid() && bpf::map_info(fd.get(), &info) == 0 && info.type == want.type &&
             info.key_size == want.key_size && info.value_size == want.value_size &&
             info.max_entries == want.max_entries;
    };
    if (fits(flows, maps[3].spec) && fits(reverse, maps[4].spec)) {
      nat->flows_ = std::move(flows);
      nat->reverse_ = std::move(reverse);
      nat->adopted_ = true;
    }
  }
  for (Made& made : maps) {
    if (made.fd->valid()) continue;  // adopted
    const int fd = bpf::create_map(made.spec, &error);
    if (fd < 0) {
      *reason = error;
      return nullptr;
    }
    *made.fd = bpf::Fd(fd);
  }
  if (!nat->policy_.create(spec, reason)) return nullptr;
  auto resolve = [&](std::string_view name) -> int {
    for (const Made& made : maps) {
      if (name == made.spec.name) return made.fd->get();
    }
    return nat->policy_.map_fd(name);
  };
  const int from_client = bpf::load_program(bpf_generated::kUdpNatFromClient, BPF_PROG_TYPE_SCHED_CLS, 0, resolve, &error);
  if (from_client < 0) {
    *reason = error;
    return nullptr;
  }
  nat->from_client_ = bpf::Fd(from_client);
  const int from_backend = bpf::load_program(bpf_generated::kUdpNatFromBackend, BPF_PROG_TYPE_SCHED_CLS, 0, resolve, &error);
  if (from_backend < 0) {
    *reason = error;
    return nullptr;
  }
  nat->from_backend_ = bpf::Fd(from_backend);

  // Tables first, so the programs see backends from their first packet.
  NatConfig config{};
  config.listen_ip = listen.sin_addr.s_addr;
  config.snat_ip = nat->snat_ip_;
  config.listen_port = listen.sin_port;
  config.nat_port_first = static_cast<uint16_t>(spec.udp.nat_port_first);
  config.nat_port_count = static_cast<uint16_t>(spec.udp.nat_port_count);
  config.table_entries = nat->table_size_;
  config.client_ifindex = nat->client_ifindex_;
  config.backend_ifindex = nat->backend_ifindex_;
  const uint32_t zero = 0;
  if (const int rc = bpf::map_update(nat->config_.get(), &zero, &config, BPF_ANY); rc < 0) {
    *reason = "writing the NAT config: " + bpf::describe_errno(-rc);
    return nullptr;
  }
  nat->update(spec, table);
  const std::pair<int, uint32_t> attach[] = {{from_client, nat->client_ifindex_}, {from_backend, nat->backend_ifindex_}};
  for (const auto& [program, ifindex] : attach) {
    const int link = bpf::link_interface(program, ifindex, kTcxIngress);
    if (link < 0) {
      char name[IF_NAMESIZE] = "";
      if_indextoname(ifindex, name);
      *reason = std::string("attaching to tcx ingress of ") + name + ": " +
                (link == -EINVAL ? "the kernel has no tcx (needs Linux 6.6 or later)" : bpf::describe_errno(-link));
      return nullptr;
    }
    nat->links_.emplace_back(link);
  }
  if (!pin_dir.empty() && !nat->adopted_) {
    // Fresh maps replace whatever was pinned there (an incompatible shape).
    for (const char* file : {"/flows", "/reverse"}) unlink((pin_dir + file).c_str());
    mkdir(pin_dir.c_str(), 0700);
    if (bpf::pin_object(nat->flows_.get(), pin_dir + "/flows") == 0 &&
        bpf::pin_object(nat->reverse_.get(), pin_dir + "/reverse") == 0) {
      nat->pin_dir_ = pin_dir;
    } else {
      nat->pin_dir_ = pin_dir;
      nat->unpin();  // half pinned is worse than not pinned
    }
  } else if (nat->adopted_) {
    nat->pin_dir_ = pin_dir;
  }
  return nat;
}

UdpKernelNat::~UdpKernelNat() = default;  // closing the links detaches the programs

bool UdpKernelNat::compatible(const ServiceSpec& spec) const {
  return memcmp(&spec.listen.storage, &spec_.listen.storage, sizeof(sockaddr_in)) == 0 &&
         spec.udp.max_flows == spec_.udp.max_flows && spec.udp.nat_port_first == spec_.udp.nat_port_first &&
         spec.udp.nat_port_count == spec_.udp.nat_port_count && spec.picker.maglev_table_size == table_size_ &&
         unsupported_feature(spec).empty() && same_backends(spec, spec_) && policy_.compatible(spec);
}

void UdpKernelNat::update(const ServiceSpec& spec, const BackendTable& table) {
  // Backends: a slot that left the service becomes NONE (its flows move).
  std::vector<uint32_t> slots;
  std::vector<PickerBackend> primaries;
  std::vector<PickerBackend> backups;
  for (uint32_t i = 0; i < spec.backends.size(); i++) {
    const BackendSpec& backend = spec.backends[i];
    const auto& address = *reinterpret_cast<const sockaddr_in*>(&backend.address.storage);
    const BackendState state = table.state(backend.slot);
    NatBackend row{address.sin_addr.s_addr, address.sin_port, kNatDown, 0};
    if (state == BackendState::kUp) row.state = kNatUp;
    // As on the relay: drain and maint keep their flows, down moves them.
    if (state == BackendState::kDrain || state == BackendState::kMaint) row.state = kNatDrain;
    bpf::map_update(backends_.get(), &backend.slot, &row, BPF_ANY);
    slots.push_back(backend.slot);
    if (state == BackendState::kUp && backend.weight > 0) {
      PickerBackend entry{i, backend.slot, backend.weight, hash_identity(backend.address.storage), 0};
      (backend.backup ? backups : primaries).push_back(entry);
    }
  }
  for (uint32_t slot : slots_) {
    if (std::find(slots.begin(), slots.end(), slot) == slots.end()) {
      const NatBackend none{};
      bpf::map_update(backends_.get(), &slot, &none, BPF_ANY);
    }
  }
  slots_ = slots;
  // The Maglev table over the backends up (backups only while no primary is),
  // by slot; only the entries that changed are written.
  const std::vector<PickerBackend>& group = primaries.empty() ? backups : primaries;
  std::vector<uint32_t> positions = maglev_table(group, table_size_);
  std::vector<uint32_t> next(table_size_, UINT32_MAX);
  for (size_t entry = 0; entry < positions.size() && entry < next.size(); entry++) {
    next[entry] = spec.backends[group[positions[entry]].index].slot;
  }
  if (table_.size() != next.size()) table_.assign(next.size(), UINT32_MAX - 1);
  for (uint32_t entry = 0; entry < next.size(); entry++) {
    if (table_[entry] == next[entry]) continue;
    // UINT32_MAX is no slot: the program finds no backend and passes on.
    bpf::map_update(maglev_.get(), &entry, &next[entry], BPF_ANY);
    table_[entry] = next[entry];
  }
  policy_.update(spec, flows_.get(), reverse_.get());
  spec_ = spec;
}

UdpKernelFlowSettings UdpKernelNat::flow_settings(const UdpKernelOutputs& outputs) const {
  UdpKernelFlowSettings settings;
  settings.service_slot = spec_.slot;
  settings.worker = static_cast<uint8_t>(outputs.producer);
  settings.idle_ns = static_cast<uint64_t>(spec_.idle_timeout_ms) * 1'000'000ULL;
  settings.max_flows = spec_.udp.max_flows;
  settings.nat_port_count = spec_.udp.nat_port_count;
  settings.responses = spec_.udp.responses;
  // As the relay: peers keep an adopted assignment for one idle timeout, so
  // a flow in use is shared again every quarter of it (at least a second).
  if (spec_.sync && outputs.journal) {
    settings.share_every_ns = std::max<uint64_t>(1000, spec_.idle_timeout_ms / 4) * 1'000'000ULL;
  }
  return settings;
}

UdpKernelFlowSinks UdpKernelNat::flow_sinks(const UdpKernelOutputs& outputs) const {
  UdpKernelFlowSinks sinks;
  if (outputs.log != nullptr) {
    ConnectionLog* log = outputs.log;
    const uint32_t producer = outputs.producer;
    sinks.ended = [log, producer](const ConnectionRecord& record) { log->record(producer, record); };
  }
  if (spec_.sync && outputs.journal) {
    SyncJournal* journal = outputs.journal.get();
    const SocketAddress listen = spec_.listen;
    const uint32_t service_slot = spec_.slot;
    sinks.share = [journal, listen, service_slot](const NatFlowKey& key, uint32_t backend_slot, uint64_t) {
      journal->record(SyncKind::kUdpFlow, service_slot, backend_slot, kernel_flow_sync_hash(key, listen), monotonic_ns() / 1'000'000ULL);
    };
  }
  return sinks;
}

void UdpKernelNat::sweep(const UdpKernelOutputs& outputs) {
  flows_seen_.sweep(flows_.get(), reverse_.get(), monotonic_ns(), flow_settings(outputs), flow_sinks(outputs));
}

void UdpKernelNat::finish(Termination why, const UdpKernelOutputs& outputs) {
  flows_seen_.finish(flows_.get(), reverse_.get(), monotonic_ns(), why, flow_settings(outputs), flow_sinks(outputs));
}

void UdpKernelNat::read_status(UdpDatapathStatus* status) const {
  status->kernel = true;
  status->client_interface = client_interface_;
  status->backend_interface = backend_interface_;
  status->flows = flows_seen_.live();
  status->expired = flows_seen_.expired();
  static const uint32_t cpus = possible_cpus();
  std::vector<uint64_t> values(cpus);
  for (uint32_t index = 0; index < kKernelStatCount; index++) {
    if (bpf::map_lookup(stats_.get(), &index, values.data()) != 0) continue;
    uint64_t sum = 0;
    for (uint64_t value : values) sum += value;
    status->stats[index] = sum;
  }
}

UdpKernelDatapath::UdpKernelDatapath(const BackendTable* table, UdpKernelOutputs outputs)
    : table_(table), outputs_(outputs) {
  sweeper_ = std::thread([this] { sweep_loop(); });
}

UdpKernelDatapath::~UdpKernelDatapath() { stop(); }

void UdpKernelDatapath::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
    if (!handed_over_) finish(running_);
    running_.clear();
  }
  wake_.notify_all();
  if (sweeper_.joinable()) sweeper_.join();
}

void UdpKernelDatapath::hand_over() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (handed_over_) return;
  handed_over_ = true;
  for (auto& [spec, nat] : running_) {
    nat->forget_flows();
    UdpDatapathStatus status;
    status.service = spec.name;
    status.configured = spec.udp.datapath;
    status.reason = "handed over to the new process (upgrade)";
    fallback_.push_back(status);
  }
  running_.clear();  // closing the links detaches our programs; the pins stay
  waiting_.clear();
}

int UdpKernelDatapath::check(const std::vector<ServiceSpec>& specs, std::string* failure, std::string* service) {
  // A required kernel datapath that cannot start fails the whole apply; the
  // programs started to find out are closed again (apply starts them anew).
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (handed_over_) return 0;  // nothing starts here any more
  }
  for (const ServiceSpec& spec : specs) {
    if (spec.protocol != Protocol::kUdp || spec.udp.datapath != UdpDatapath::kKernel) continue;
    bool running = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (const auto& [old, nat] : running_) running = running || (old.name == spec.name && nat->compatible(spec));
    }
    if (running) continue;
    std::string reason;
    if (!UdpKernelNat::start(spec, *table_, false, &reason)) {
      *failure = "datapath: kernel for service " + spec.name + ": " + reason;
      *service = spec.name;
      return -EOPNOTSUPP;
    }
  }
  return 0;
}

void UdpKernelDatapath::apply(const std::vector<ServiceSpec>& specs) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::pair<ServiceSpec, std::unique_ptr<UdpKernelNat>>> running;
  std::vector<UdpDatapathStatus> fallback;
  std::vector<ServiceSpec> waiting;
  for (const ServiceSpec& spec : specs) {
    if (spec.protocol != Protocol::kUdp) continue;
    std::unique_ptr<UdpKernelNat> nat;
    for (auto& [old, kept] : running_) {
      if (kept && old.name == spec.name && kept->compatible(spec)) nat = std::move(kept);
    }
    UdpDatapathStatus status;
    status.service = spec.name;
    status.configured = spec.udp.datapath;
    if (spec.udp.datapath == UdpDatapath::kUser) {
      status.reason = "datapath: user";
      fallback.push_back(status);
      continue;
    }
    if (nat) {
      nat->update(spec, *table_);
    } else {
      // Close the old links first: two programs matching one address would race.
      for (auto& [old, stale] : running_) {
        if (old.name != spec.name || !stale) continue;
        stale->finish(Termination::kShutdown, outputs_);
        stale->unpin();
        stale.reset();
      }
      nat = handed_over_ ? nullptr : UdpKernelNat::start(spec, *table_, true, &status.reason);
      if (handed_over_) status.reason = "handed over to the new process (upgrade)";
    }
    if (nat) {
      running.emplace_back(spec, std::move(nat));
    } else {
      if (!handed_over_ && spec.udp.datapath == UdpDatapath::kAuto && listen_address_unowned(spec)) waiting.push_back(spec);
      fallback.push_back(status);
    }
  }
  finish(running_);  // services gone or moved to user: their flows end, their links close here
  running_ = std::move(running);
  fallback_ = std::move(fallback);
  waiting_ = std::move(waiting);
}

void UdpKernelDatapath::start_waiting() {
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if (listen_address_unowned(*it)) {
      ++it;
      continue;
    }
    // Owned now: start, or say the next reason it stays on the relay.
    std::string reason;
    std::unique_ptr<UdpKernelNat> nat = handed_over_ ? nullptr : UdpKernelNat::start(*it, *table_, true, &reason);
    for (auto status = fallback_.begin(); status != fallback_.end(); ++status) {
      if (status->service != it->name) continue;
      if (nat) fallback_.erase(status);
      else status->reason = reason;
      break;
    }
    if (nat) running_.emplace_back(*it, std::move(nat));
    it = waiting_.erase(it);
  }
}

void UdpKernelDatapath::refresh(const std::vector<ServiceSpec>& specs) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (ServiceSpec& waiting : waiting_) {
    for (const ServiceSpec& spec : specs) {
      if (spec.name == waiting.name) waiting = spec;
    }
  }
  for (auto& [old, nat] : running_) {
    for (const ServiceSpec& spec : specs) {
      if (spec.name == old.name && nat->compatible(spec)) {
        nat->update(spec, *table_);
        old = spec;
      }
    }
  }
}

std::vector<UdpDatapathStatus> UdpKernelDatapath::status() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<UdpDatapathStatus> all = fallback_;
  for (const auto& [spec, nat] : running_) {
    UdpDatapathStatus status;
    status.service = spec.name;
    status.configured = spec.udp.datapath;
    nat->read_status(&status);
    all.push_back(status);
  }
  return all;
}

void UdpKernelDatapath::finish(std::vector<std::pair<ServiceSpec, std::unique_ptr<UdpKernelNat>>>& leaving) {
  for (auto& [spec, nat] : leaving) {
    if (!nat) continue;
    nat->finish(Termination::kShutdown, outputs_);
    nat->unpin();
  }
}

void UdpKernelDatapath::sweep_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    wake_.wait_for(lock, std::chrono::seconds(1));
    if (stopping_) break;
    for (auto& [spec, nat] : running_) nat->sweep(outputs_);
    start_waiting();
  }
}

}  // namespace fulcrum

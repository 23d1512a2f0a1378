// Help text of `fulcrum bench` (shown by `fulcrum bench --help`, `fulcrum help bench`).
export const BENCH_USAGE = `Usage: fulcrum bench server [--port P] [--bind ADDR] [--threads N]
       fulcrum bench client HOST:PORT [--workload W] [options]
       fulcrum bench compare --direct HOST:PORT --via NAME=HOST:PORT ... [options]

The bundled iperf-style harness. Load is generated and measured in native
threads; JavaScript only reads counters once per interval.

server: TCP and UDP sink and echo on one port (default 5201, all addresses),
  plus the control channel through which a client learns what was received.
  Protocol errors are printed to stderr; SIGINT/SIGTERM stops it.

client workloads (-w):
  tcp-throughput  -P streams per direction for -t seconds; --direction
                  send|receive|both (default send); bytes per second per
                  interval and in total, per stream and summed; both ends' counts
  tcp-connrate    -c clients in flight: connect, echo a -l byte message, close;
                  connections/s and connect+echo latency p50/p99/p99.9/max
  tcp-latency     ping-pong of -l bytes on -P connections; round-trip p50/p99/p99.9/max
  udp-pps         -l byte datagrams on --flows flows at --rate datagrams/s in total
                  (or max); sent, delivered, lost, reordered
  udp-latency     UDP request/response round trips on --flows flows

Options (client and compare):
  -w, --workload W       tcp-throughput (default), tcp-connrate, tcp-latency, udp-pps,
                         udp-latency; compare takes a comma list or 'all'
  -t, --duration S       Seconds per run (client: 10, compare: 5)
  -i, --interval S       Seconds between interval lines (default 1)
  -P, --parallel N       Streams per direction / ping-pong connections (default 1)
      --direction D      send, receive or both (tcp-throughput; default send)
  -c, --concurrency N    Connections in flight (tcp-connrate; default 16)
  -l, --message-size B   Bytes per message (throughput: per write, default 131072;
                         others 64; UDP 24..8192)
      --flows N          UDP flows, one socket each (default 1)
      --rate N|max       udp-pps datagrams per second over all flows (default max)
      --threads N        Load threads (default: one per stream/flow up to the CPU count)
      --json             Print the report as JSON (fields in README.md) instead of text
      --control HOST:PORT  client: send the control channel (TCP) here, for a target
                         that carries only UDP (default: the target itself)
  -h, --help             Show this help

Options (compare):
      --direct HOST:PORT     The first target: ratios are to it
      --via NAME=HOST:PORT   Another target (repeatable), e.g. a proxy to the same server;
                             NAME=HOST:PORT,control=HOST:PORT for a UDP-only proxy
      --rounds N             Rounds; each runs every target once, order rotated (default 3)
      --svg FILE             Also write an SVG chart of medians and min–max
      --title TEXT           The chart's title

Options (server):
  -p, --port P           Port for TCP and UDP (default 5201; 0: any free port)
  -B, --bind ADDR        Address to listen on (default 0.0.0.0)
      --threads N        Worker threads (default: CPUs, at most 4)
`;

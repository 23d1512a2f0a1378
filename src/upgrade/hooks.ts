// What an upgrade tells the outside world, left to whoever runs Fulcrum.
// Under systemd the lead wires these to sd_notify (src/systemd/notify.ts):
//   onHandedOver(pid) → sdNotify({ MAINPID: pid }) in the old process, once the
//                       new one is ready, so systemd follows the new main PID;
//   the new process sends its own READY=1 as at any start.
// Both run on the JS thread; an exception they throw is logged, never fatal.
export interface UpgradeHooks {
  /** The new Fulcrum (pid) is ready and owns the sockets; this process now drains and exits. */
  onHandedOver?: (pid: number) => void;
}

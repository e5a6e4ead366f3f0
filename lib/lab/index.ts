// The Soft-RoCE VM lab, public face.
export { up, down, status, exec, readState, LAB_SUBNET } from './lab.js';
export type { LabState, LabVm, UpOptions, VmStatus } from './lab.js';
export type { ExecOptions, ExecResult } from './exec.js';
export { buildImage, LabError, GUEST_MODULES } from './image.js';
export type { GuestImage } from './image.js';
export { runPerftest, parsePerftest } from './perftest.js';
export type { PerftestResult, PerftestOptions, PerftestOp } from './perftest.js';
export { runFabricBenchInLab, runPeers, formatLabFabricBench, PEER_PORT } from './fabric-bench.js';
export type { LabFabricBenchOptions, LabFabricBenchResult, FabricBenchRow, PeerRunOptions, ErrorCase, LatencyRow } from './fabric-bench.js';
export { runTestFileInLab, TARGET_CONTROL_PORT } from './remote-tests.js';
export type { RemoteTestOptions, RemoteTestResult } from './remote-tests.js';
export { startLabMonitors, labConfig, LAB_RPC_PORT } from './monitors.js';
export type { LabMonitor } from './monitors.js';

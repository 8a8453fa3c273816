// The stress test's public surface, for the test suite and the benchmark:
//   const report = await runStress({ url, dbUrl, scale: "large" });   // or STRESS_SCALE
//   report.check.violations  // [] when every invariant held
//   formatReport(report)     // calls, jobs, tasks, durations, checks per invariant
// `url` is a served copy of the functions on `dbUrl`. By default the run first pauses every
// claimable job of that database that is not its own (isolate: true), so that its claims without
// job_id see only its jobs: pass isolate: false when other work must keep running there.
export {
  formatReport,
  readFinalState,
  rng,
  runStress,
  STRESS_PRESETS,
  type StressOptions,
  type StressReport,
  type StressSizes,
  stressSizes,
} from "./runner.ts";
export {
  checkHistory,
  type CheckOptions,
  type CheckResult,
  INVARIANTS,
  summarize,
  type Violation,
} from "./checker.ts";
export { type Call, type FinalState, type History, Recorder } from "./history.ts";

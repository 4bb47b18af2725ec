// Change data capture: slot and publication on the source, the pgoutput stream applied to the
// target exactly once, counters and latency. The runtime worker orchestrates these pieces:
//   ensurePublication → createSlotWithSnapshot (clone under snapshotName) → release →
//   startReplication(startLsn = consistentPoint) → … → at cutover stopAt(currentWalLsn) and
//   waitForLsn(it) →
//   stop → dropSlotAndPublication → dropTargetBookkeeping.
// The publication must exist before the slot: decoding looks publications up as of each change.
export {
  createSlotWithSnapshot,
  dropSlotAndPublication,
  sourceCleanupSql,
  currentWalLsn,
  type SlotHandle,
} from "./slot";
export { ensurePublication, type PublicationOptions } from "./publication";
export { storedAppliedLsn, dropTargetBookkeeping } from "./bookkeeping";
export {
  startReplication,
  type ApplyStats,
  type ReplicationStream,
  type ReplicationOptions,
} from "./stream";

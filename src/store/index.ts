export * from './types';
export { openStore, LevelBlockStore, BLOCK, ROOT_ID, type StoreStats, type RecoveryReport } from './block-store';
export { fsck, formatFsckReport, type FsckReport, type FsckProblem } from './fsck';
export { writeSnapshot, restoreSnapshot, finishInterruptedRestore, type SnapshotWriteOptions, type SnapshotRestoreOptions } from './snapshot';
export {
  storeChecksum,
  storeDigest,
  digestChecksum,
  firstDifference,
  describeDifference,
  type ChecksumOptions,
  type ObjectDigest,
  type StoreDigest,
  type StoreDifference,
} from './checksum';

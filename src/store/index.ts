export * from './types';
export {
  openStore,
  LevelBlockStore,
  BLOCK,
  ROOT_ID,
  DEFAULT_DRC_ENTRIES,
  MAX_REQUEST_KEY_BYTES,
  type StoreStats,
  type RecoveryReport,
} from './block-store';
export { encodeOpResult, decodeOpResult } from './codec';
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

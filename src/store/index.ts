export * from './types';
export { openStore, LevelBlockStore, BLOCK, ROOT_ID, type StoreStats, type RecoveryReport } from './block-store';
export { fsck, formatFsckReport, type FsckReport, type FsckProblem } from './fsck';

/**
 * A BlockStore that forwards to whatever store the state machine holds now: a follower that catches
 * up from a snapshot replaces its store, and the NFS program and MOUNT keep one reference.
 */
import type { Attr, BlockStore, FileId, FsStat, OpResult, ReaddirResult, StoreOp, Nfs3Status } from '../store/types';

export class StoreHandle implements BlockStore {
  constructor(private readonly current: () => BlockStore) {}

  get appliedIndex(): number {
    return this.current().appliedIndex;
  }
  get rootFileId(): FileId {
    return this.current().rootFileId;
  }
  apply(index: number, op: StoreOp): Promise<OpResult> {
    return this.current().apply(index, op);
  }
  getattr(file: FileId): Promise<Attr | undefined> {
    return this.current().getattr(file);
  }
  getattrMany(files: readonly FileId[]): Promise<(Attr | undefined)[]> {
    return this.current().getattrMany(files);
  }
  lookup(dir: FileId, name: string): Promise<{ status: Nfs3Status; obj?: Attr; dirAttr?: Attr }> {
    return this.current().lookup(dir, name);
  }
  readdir(dir: FileId, cookie: number, cookieverf: string | undefined, maxEntries: number): Promise<ReaddirResult> {
    return this.current().readdir(dir, cookie, cookieverf, maxEntries);
  }
  read(file: FileId, offset: number, count: number): Promise<{ status: Nfs3Status; attr?: Attr; data?: Uint8Array; eof?: boolean }> {
    return this.current().read(file, offset, count);
  }
  releaseRead(data: Uint8Array): void {
    this.current().releaseRead?.(data);
  }
  readlink(file: FileId): Promise<{ status: Nfs3Status; attr?: Attr; target?: string }> {
    return this.current().readlink(file);
  }
  sync(file?: FileId): Promise<void> {
    return this.current().sync(file);
  }
  fsstat(): Promise<FsStat> {
    return this.current().fsstat();
  }
  close(): Promise<void> {
    return this.current().close();
  }
}

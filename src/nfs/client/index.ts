/**
 * A reusable NFSv3 + MOUNT v3 + portmap v2 client over TCP (RFC 1813, RFC 5531, RFC 1833), built
 * on @jsonjoy.com/json-pack's XDR/RPC/NFSv3/MOUNT codecs and the server's capped record-marking
 * decoder (../record-marking.ts).
 * Many calls in flight per connection (xid matching, per-call timeout), AUTH_SYS or AUTH_NONE.
 *
 *   const mount = await MountClient.connect({ port: mountPort });
 *   const root = await mount.mntOrThrow('/export');
 *   const nfs = await Nfs3Client.connect({ port: nfsPort, cred: authSys({ uid: 1000, gid: 1000 }) });
 *   const fh = expectOk(await nfs.create(root, 'f', CreateMode.GUARDED)).resok!.obj.handle!.data;
 *   await nfs.write(fh, 0, data, StableHow.FILE_SYNC);
 *   const raw = await nfs.callRaw(NfsProc.GETATTR, argBytes, AUTH_NONE); // raw accept/reject status
 */
export * from './constants';
export * from './auth';
export { RecordDecoder, RecordTooLargeError, TooManyFragmentsError } from '../record-marking';
export * from './rpc-connection';
export * from './nfs3-client';
export * from './mount-client';
export * from './portmap-client';

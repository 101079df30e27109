/**
 * What the kernel-client suites share: the QEMU guest harness (/work/shared/kernel-client), a 3-node
 * cluster for the guest to mount (root not squashed: the guest works as root, as on a local disk),
 * the mount command the cluster printed, and run-guest.sh's environment.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TestCluster } from '../support/cluster';
import { testExport } from '../support/daemon';
import { REPO_ROOT } from '../support/util';

export const KC_DIR = process.env.HANFS_KERNEL_CLIENT_DIR ?? path.resolve(REPO_ROOT, '..', 'shared', 'kernel-client');
export const RUN_GUEST = path.join(KC_DIR, 'run-guest.sh');

/** A 3-node cluster with a serving leader; throws when the guest harness is not there. */
export async function startGuestCluster(): Promise<TestCluster> {
  if (!fs.existsSync(RUN_GUEST)) throw new Error(`kernel-client harness not found at ${KC_DIR} (HANFS_KERNEL_CLIENT_DIR)`);
  const c = await TestCluster.start({ logLevel: 'warn', exports: [testExport({ path: '/export', rootSquash: false })] });
  await c.servingLeader(60_000);
  return c;
}

/** The mount command node `id` printed; it names the service address's ports. */
export async function printedMount(c: TestCluster, id: number): Promise<string> {
  const printed = await c.printedMountCommand(id);
  assert.ok(printed, `node ${id} printed no mount command:\n${c.node(id).output.slice(0, 2000)}`);
  assert.match(printed, new RegExp(`port=${c.nfsPort}\\b`));
  assert.match(printed, new RegExp(`mountport=${c.mountPort}\\b`));
  return printed;
}

/** run-guest.sh's environment for a guest that mounts `c` with `mountCmd` */
export function guestEnv(c: TestCluster, runDir: string, mountCmd: string, timeoutSecs: number, extra: Record<string, string>): NodeJS.ProcessEnv {
  return {
    ...process.env,
    NFS_PORT: String(c.nfsPort),
    MOUNT_PORT: String(c.mountPort),
    EXPORT: '/export',
    KC_RUN_DIR: runDir,
    KC_TIMEOUT: String(timeoutSecs),
    KC_SCRATCH_GB: '0',
    HANFS_MOUNT_CMD: mountCmd,
    ...extra,
  };
}

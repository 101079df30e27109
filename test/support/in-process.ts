/** Configuration of a daemon started inside the test process (startServer): data under `dir`, every
 * port picked by the kernel, no logs. */
import { join } from 'node:path';
import { defaultConfig, type HanfsConfig } from '../../src/config';

export function inProcessConfig(dir: string): HanfsConfig {
  const c = defaultConfig();
  c.dataDir = join(dir, 'data');
  c.listen.nfsPort = 0;
  c.listen.mountPort = 0;
  c.admin.port = 0;
  c.log.level = 'silent';
  return c;
}

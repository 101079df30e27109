/**
 * `hanfs cluster ...` and `hanfs verify` refuse a flag they do not take (exit 2, naming it) before
 * asking any node: a mistyped `--snapshot` used to be ignored, and the member added with the default
 * snapshot address.
 */
import { strict as assert } from 'node:assert';
import { CLI, run } from '../support/util';

describe('hanfs cluster: flags', function () {
  this.timeout(30_000);

  it('a flag the command does not take: exit 2, named, before any node is asked', async () => {
    // (nothing listens on port 1: a command that went on would look for a leader for seconds and exit 1)
    const r = await run(process.execPath, [CLI, 'cluster', 'add', '--id', '4', '--peer', '127.0.0.1:7041', '--snaphot', '127.0.0.1:7042', '--admin', '127.0.0.1:1'], {
      timeoutMs: 20_000,
    });
    assert.equal(r.code, 2, `${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /unknown flag "--snaphot" for add/);
    const v = await run(process.execPath, [CLI, 'verify', '--timeout', '60', '--admin', '127.0.0.1:1'], { timeoutMs: 20_000 });
    assert.equal(v.code, 2, `${v.stdout}${v.stderr}`);
    assert.match(v.stderr, /unknown flag "--timeout" for verify/);
    // (a flag of another command too)
    const t = await run(process.execPath, [CLI, 'cluster', 'remove', '--to', '3', '--admin', '127.0.0.1:1'], { timeoutMs: 20_000 });
    assert.equal(t.code, 2, `${t.stdout}${t.stderr}`);
  });

  it('an unknown subcommand: exit 2', async () => {
    const r = await run(process.execPath, [CLI, 'cluster', 'promote', '--admin', '127.0.0.1:1'], { timeoutMs: 20_000 });
    assert.equal(r.code, 2, `${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /init\|join\|status/);
  });
});

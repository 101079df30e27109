import { strict as assert } from 'node:assert';
import { defaultExport } from '../../src/config';
import { ExportTable } from '../../src/nfs/exports';

describe('export table: remembered client verdicts', () => {
  it('stay per export and right when asked again, across many addresses', () => {
    const t = new ExportTable([
      { ...defaultExport('/a', 1), clients: ['10.1.0.0/16'] },
      { ...defaultExport('/b', 2), clients: ['10.2.0.0/16', '::ffff:10.1.5.0/120'] },
    ]);
    const a = t.byPath('/a')!;
    const b = t.byPath('/b')!;
    for (let round = 0; round < 3; round++) {
      assert.equal(t.clientAllowed(a, '10.1.5.9'), true);
      assert.equal(t.clientAllowed(b, '10.1.5.9'), true, 'through the IPv4-mapped network');
      assert.equal(t.clientAllowed(b, '10.1.6.9'), false);
      assert.equal(t.clientAllowed(a, '10.1.6.9'), true, 'a verdict of another export is not reused');
      assert.equal(t.clientAllowed(a, '10.2.0.1'), false);
      assert.equal(t.clientAllowed(b, '10.2.0.1'), true);
      assert.equal(t.clientAllowed(a, 'not-an-ip'), false);
    }
    // more addresses than are remembered: still right, including those seen before
    for (let i = 0; i < 10_000; i++) {
      const addr = `10.${1 + (i % 3)}.${(i >> 8) & 255}.${i & 255}`;
      assert.equal(t.clientAllowed(a, addr), i % 3 === 0, addr);
    }
    assert.equal(t.clientAllowed(a, '10.1.5.9'), true);
    assert.equal(t.clientAllowed(b, '10.1.6.9'), false);
    // an export object this table does not hold is refused whatever the address
    assert.equal(t.clientAllowed({ ...a }, '10.1.5.9'), false);
  });
});

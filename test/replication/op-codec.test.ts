import { strict as assert } from 'node:assert';
import {
  decodeEntry,
  encodeEntry,
  OpCodecError,
  type ClusterConfigRecord,
  type LogCommand,
} from '../../src/replication/op-codec';
import { FileType, type Cred, type SetAttrs, type StoreOp, type Time } from '../../src/store/types';
import { rng } from '../support/util';

const T: Time = { sec: 1_700_000_000, nsec: 999_999_999 };
const ROOT: Cred = { uid: 0, gid: 0, gids: [] };
const ALICE: Cred = { uid: 1000, gid: 1000, gids: [4, 24, 27, 0xffff_ffff] };
const MAX64 = Number.MAX_SAFE_INTEGER;
const FULL_ATTRS: SetAttrs = { mode: 0o7777, uid: 0xffff_ffff, gid: 7, size: MAX64, atime: { sec: 1, nsec: 2 }, mtime: { sec: 0xffff_ffff, nsec: 0 } };

const attrVariants: SetAttrs[] = [
  {},
  FULL_ATTRS,
  { atime: 'server', mtime: 'server' },
  { mode: 0o644 },
  { uid: 1 },
  { gid: 2 },
  { size: 0 },
  { atime: { sec: 5, nsec: 6 } },
  { mtime: 'server', size: 4096 },
];

function bytes(...xs: number[]): Uint8Array {
  return new Uint8Array(xs);
}

/** Every op kind, every optional field present and absent. */
function fixtureOps(): StoreOp[] {
  const ops: StoreOp[] = [];
  for (const cred of [ROOT, ALICE, { uid: 1, gid: 2, gids: Array.from({ length: 64 }, (_, i) => i * 1000) }]) {
    const b = { time: T, cred };
    for (const attrs of attrVariants) {
      ops.push({ kind: 'setattr', ...b, file: 2, attrs });
      ops.push({ kind: 'setattr', ...b, file: MAX64, attrs, guardCtime: { sec: 3, nsec: 4 } });
      ops.push({ kind: 'mkdir', ...b, dir: 1, name: 'dir', attrs });
      ops.push({ kind: 'symlink', ...b, dir: 1, name: 'ln', attrs, target: '../a/b' });
      for (const mode of ['unchecked', 'guarded', 'exclusive'] as const) ops.push({ kind: 'create', ...b, dir: 1, name: 'f', mode, attrs });
      ops.push({ kind: 'create', ...b, dir: 1, name: 'x', mode: 'exclusive', attrs, verifier: '0123456789abcdef' });
      for (const type of [FileType.CHR, FileType.BLK, FileType.SOCK, FileType.FIFO] as const) {
        ops.push({ kind: 'mknod', ...b, dir: 9, name: 'dev', type, attrs });
        ops.push({ kind: 'mknod', ...b, dir: 9, name: 'dev', type, attrs, rdev: [8, 0xffff_ffff] });
      }
    }
    ops.push({ kind: 'remove', ...b, dir: 1, name: 'gone' });
    ops.push({ kind: 'rmdir', ...b, dir: 1, name: '' });
    ops.push({ kind: 'rename', ...b, fromDir: 1, fromName: 'ä', toDir: MAX64, toName: '😀'.repeat(63) });
    ops.push({ kind: 'link', ...b, file: 77, dir: 1, name: 'n'.repeat(255) });
    ops.push({ kind: 'symlink', ...b, dir: 1, name: '\uFEFFbom', attrs: {}, target: 't'.repeat(4096) });
    for (const stable of [0, 1, 2] as const) {
      ops.push({ kind: 'write', ...b, file: 5, offset: MAX64, data: new Uint8Array(0), stable });
      ops.push({ kind: 'write', ...b, file: 5, offset: 4096, data: bytes(1, 2, 3, 0, 255), stable });
    }
  }
  return ops;
}

const CONFIG: ClusterConfigRecord = {
  rootMode: 0o755,
  rootUid: 0,
  rootGid: 0,
  maxFileSize: 2 ** 43,
  capacityBytes: Infinity,
  maxFiles: Infinity,
  maxLinks: 65000,
  exports: [{ id: 1, path: '/export' }, { id: 2, path: '/srv/ünicode' }],
};

function fixtureEntries(): LogCommand[] {
  const entries: LogCommand[] = fixtureOps().map((op) => ({ kind: 'op', op }));
  entries.push({ kind: 'op', op: fixtureOps()[0], requestKey: bytes(10, 0, 0, 1, 0, 0, 3, 0xe8) });
  entries.push({ kind: 'op', op: fixtureOps()[0], requestKey: new Uint8Array(0) });
  entries.push({ kind: 'op', op: fixtureOps()[0], requestKey: new Uint8Array(255).fill(7) });
  entries.push({ kind: 'config', config: CONFIG });
  entries.push({ kind: 'config', config: { ...CONFIG, capacityBytes: 0, maxFiles: MAX64, exports: [] } });
  entries.push({
    kind: 'members',
    members: [
      { id: 1, peer: '10.0.0.1:7001', snapshot: '10.0.0.1:7002', admin: '127.0.0.1:9464' },
      { id: 65535, peer: '[::1]:7001', snapshot: '[::1]:7002', admin: '' },
    ],
  });
  entries.push({ kind: 'members', members: [] });
  entries.push({ kind: 'verify' });
  return entries;
}

function expectCodecError(f: () => unknown, what: string): void {
  assert.throws(f, (e: unknown) => e instanceof OpCodecError, what);
}

// ---- seeded random ops ----

function randomOp(r: () => number): StoreOp {
  const int = (max: number) => Math.floor(r() * (max + 1));
  const u32 = () => (r() < 0.2 ? [0, 1, 0xffff_ffff][int(2)] : int(0xffff_ffff));
  const u64 = () => (r() < 0.2 ? [0, 1, MAX64, 2 ** 32][int(3)] : int(MAX64));
  const alphabet = ['a', 'Z', '.', '/', '\0', 'é', '€', '😀', '\uFEFF', ' '];
  const str = (maxBytes: number) => {
    let s = '';
    const n = int(40);
    for (let i = 0; i < n; i++) {
      const c = alphabet[int(alphabet.length - 1)];
      if (Buffer.byteLength(s + c) > maxBytes) break;
      s += c;
    }
    return s;
  };
  const time = (): Time => ({ sec: u32(), nsec: u32() });
  const setTime = () => (r() < 0.5 ? undefined : r() < 0.5 ? 'server' : time());
  const attrs = (): SetAttrs => {
    const a: SetAttrs = {};
    if (r() < 0.5) a.mode = u32();
    if (r() < 0.5) a.uid = u32();
    if (r() < 0.5) a.gid = u32();
    if (r() < 0.5) a.size = u64();
    const at = setTime();
    const mt = setTime();
    if (at !== undefined) a.atime = at;
    if (mt !== undefined) a.mtime = mt;
    return a;
  };
  const b = { time: time(), cred: { uid: u32(), gid: u32(), gids: Array.from({ length: int(64) }, u32) } };
  const name = () => str(255);
  switch (int(9)) {
    case 0: {
      const op: StoreOp = { kind: 'setattr', ...b, file: u64(), attrs: attrs() };
      if (r() < 0.5) op.guardCtime = time();
      return op;
    }
    case 1: {
      const mode = (['unchecked', 'guarded', 'exclusive'] as const)[int(2)];
      const op: StoreOp = { kind: 'create', ...b, dir: u64(), name: name(), mode, attrs: attrs() };
      if (mode === 'exclusive' && r() < 0.7) op.verifier = Buffer.from(Array.from({ length: 8 }, () => int(255))).toString('hex');
      return op;
    }
    case 2:
      return { kind: 'mkdir', ...b, dir: u64(), name: name(), attrs: attrs() };
    case 3:
      return { kind: 'symlink', ...b, dir: u64(), name: name(), attrs: attrs(), target: str(4096) };
    case 4: {
      const type = ([FileType.CHR, FileType.BLK, FileType.SOCK, FileType.FIFO] as const)[int(3)];
      const op: StoreOp = { kind: 'mknod', ...b, dir: u64(), name: name(), type, attrs: attrs() };
      if (r() < 0.5) op.rdev = [u32(), u32()];
      return op;
    }
    case 5:
      return { kind: 'remove', ...b, dir: u64(), name: name() };
    case 6:
      return { kind: 'rmdir', ...b, dir: u64(), name: name() };
    case 7:
      return { kind: 'rename', ...b, fromDir: u64(), fromName: name(), toDir: u64(), toName: name() };
    case 8:
      return { kind: 'link', ...b, file: u64(), dir: u64(), name: name() };
    default:
      return { kind: 'write', ...b, file: u64(), offset: u64(), data: Uint8Array.from({ length: int(300) }, () => int(255)), stable: int(2) as 0 | 1 | 2 };
  }
}

describe('replication/op-codec', () => {
  it('round-trips every op kind with every optional field present and absent, and config records', () => {
    const entries = fixtureEntries();
    assert.ok(entries.length > 300);
    for (const e of entries) {
      const enc = encodeEntry(e);
      assert.equal(enc[0], 1, 'format byte');
      assert.deepStrictEqual(decodeEntry(enc), e);
    }
  });

  it('round-trips seeded random ops (with and without request keys)', () => {
    const r = rng(0xc0dec);
    for (let i = 0; i < 3000; i++) {
      const op = randomOp(r);
      const e: LogCommand = r() < 0.5 ? { kind: 'op', op } : { kind: 'op', op, requestKey: Uint8Array.from({ length: Math.floor(r() * 40) }, (_, j) => j) };
      assert.deepStrictEqual(decodeEntry(encodeEntry(e)), e, `op #${i}`);
    }
  });

  it('returns WRITE data as a view of the input, not a copy', () => {
    const data = Uint8Array.from({ length: 100 }, (_, i) => i);
    const enc = encodeEntry({ kind: 'op', op: { kind: 'write', time: T, cred: ALICE, file: 3, offset: 0, data, stable: 2 } });
    const dec = decodeEntry(enc);
    assert.ok(dec.kind === 'op' && dec.op.kind === 'write');
    const got = dec.op.data;
    assert.equal(got.buffer, enc.buffer);
    assert.equal(got.byteOffset, enc.length - 100);
    enc[enc.length - 1] = 0xaa;
    assert.equal(got[99], 0xaa, 'a change of the input shows through the decoded data');
    // the encoding does not share memory with the caller's data
    assert.notEqual(enc.buffer, data.buffer);
    assert.equal(data[99], 99);
  });

  it('decodes from a view that starts inside a larger buffer', () => {
    const enc = encodeEntry({ kind: 'op', op: fixtureOps()[1] });
    const big = new Uint8Array(enc.length + 20);
    big.set(enc, 7);
    assert.deepStrictEqual(decodeEntry(big.subarray(7, 7 + enc.length)), { kind: 'op', op: fixtureOps()[1] });
  });

  it('encodes a 4 KiB write in at most 4 KiB + 64 bytes (overhead: 41 + 4 per gid + 1 + request key bytes)', () => {
    const data = new Uint8Array(4096).fill(1);
    const cred = { uid: 1000, gid: 1000, gids: [1000, 4, 24, 27] };
    const op: StoreOp = { kind: 'write', time: T, cred, file: MAX64, offset: MAX64 - 4096, data, stable: 2 };
    const plain = encodeEntry({ kind: 'op', op });
    assert.ok(plain.length <= 4096 + 64, `${plain.length} bytes`);
    assert.equal(plain.length, 4096 + 41 + 4 * 4);
    const keyed = encodeEntry({ kind: 'op', op, requestKey: new Uint8Array(16) });
    assert.equal(keyed.length, plain.length + 1 + 16);
  });

  it('throws OpCodecError for every truncation of a valid encoding', () => {
    for (const e of fixtureEntries()) {
      const enc = encodeEntry(e);
      for (let n = 0; n < enc.length; n++) expectCodecError(() => decodeEntry(enc.subarray(0, n)), `${enc.length} bytes cut to ${n}`);
    }
  });

  it('rejects trailing bytes', () => {
    for (const e of fixtureEntries().slice(0, 50)) {
      const enc = encodeEntry(e);
      const longer = new Uint8Array(enc.length + 1);
      longer.set(enc);
      expectCodecError(() => decodeEntry(longer), 'one trailing byte');
    }
  });

  it('random byte flips give OpCodecError or an entry that re-encodes to exactly the flipped bytes', () => {
    const r = rng(7);
    const entries = fixtureEntries();
    let decoded = 0;
    let rejected = 0;
    for (let i = 0; i < 20000; i++) {
      const enc = Uint8Array.from(encodeEntry(entries[Math.floor(r() * entries.length)]));
      const flips = 1 + Math.floor(r() * 3);
      for (let f = 0; f < flips; f++) enc[Math.floor(r() * enc.length)] ^= 1 + Math.floor(r() * 255);
      let dec: LogCommand;
      try {
        dec = decodeEntry(enc);
      } catch (err) {
        assert.ok(err instanceof OpCodecError, `unexpected ${String(err)}`);
        rejected++;
        continue;
      }
      decoded++;
      assert.deepStrictEqual(encodeEntry(dec), Uint8Array.from(enc), 'a decoded entry is one the encoder produces');
    }
    assert.ok(decoded > 100 && rejected > 100, `decoded ${decoded}, rejected ${rejected}`);
  });

  describe('hostile input', () => {
    const write: StoreOp = { kind: 'write', time: T, cred: ROOT, file: 3, offset: 0, data: bytes(1, 2, 3, 4), stable: 0 };
    const writeEnc = () => Uint8Array.from(encodeEntry({ kind: 'op', op: write }));
    const dataLenAt = (enc: Uint8Array) => enc.length - 4 - 4;

    it('rejects an unknown format version and an unknown kind', () => {
      const enc = writeEnc();
      for (const v of [0, 2, 255]) expectCodecError(() => decodeEntry(Uint8Array.from([v, ...enc.subarray(1)])), `format ${v}`);
      for (const k of [11, 12, 255]) expectCodecError(() => decodeEntry(Uint8Array.from([1, k, ...enc.subarray(2)])), `kind ${k}`);
      expectCodecError(() => decodeEntry(new Uint8Array(0)), 'empty');
      expectCodecError(() => decodeEntry(Uint8Array.from([1, 6, 2, ...enc.subarray(3)])), 'unknown op flag');
    });

    it('rejects lengths past the end, a 4 GiB length included, without allocating by them', () => {
      const enc = writeEnc();
      const view = new DataView(enc.buffer);
      for (const len of [5, 0x1000, 0xffff_ffff]) {
        view.setUint32(dataLenAt(enc), len);
        expectCodecError(() => decodeEntry(enc), `data length ${len}`);
      }
      // a string length past the end: name of a REMOVE says 200 bytes, 2 follow
      const rm = Uint8Array.from(encodeEntry({ kind: 'op', op: { kind: 'remove', time: T, cred: ROOT, dir: 1, name: 'ab' } }));
      rm[rm.length - 3] = 200;
      expectCodecError(() => decodeEntry(rm), 'name length past the end');
      // a 16-bit path length of 0xffff (above 4096 and past the end)
      const sl = Uint8Array.from(encodeEntry({ kind: 'op', op: { kind: 'symlink', time: T, cred: ROOT, dir: 1, name: 'l', attrs: {}, target: 'xy' } }));
      sl[sl.length - 4] = 0xff;
      sl[sl.length - 3] = 0xff;
      expectCodecError(() => decodeEntry(sl), 'path length 0xffff');
    });

    it('rejects a path longer than 4096 bytes even when the bytes are there', () => {
      const enc = encodeEntry({ kind: 'op', op: { kind: 'symlink', time: T, cred: ROOT, dir: 1, name: 'l', attrs: {}, target: 't'.repeat(4096) } });
      const longer = new Uint8Array(enc.length + 1);
      longer.set(enc);
      longer[longer.length - 1] = 0x74;
      new DataView(longer.buffer).setUint16(enc.length - 4096 - 2, 4097);
      expectCodecError(() => decodeEntry(longer), 'target of 4097 bytes');
    });

    it('rejects invalid UTF-8 (bad bytes, overlong forms, encoded surrogates)', () => {
      for (const bad of [[0xff, 0x61], [0xc0, 0xaf], [0xed, 0xa0], [0x61, 0xc3]]) {
        const rm = Uint8Array.from(encodeEntry({ kind: 'op', op: { kind: 'remove', time: T, cred: ROOT, dir: 1, name: 'ab' } }));
        rm.set(bad, rm.length - 2);
        expectCodecError(() => decodeEntry(rm), `bytes ${bad}`);
      }
      const three = Uint8Array.from(encodeEntry({ kind: 'op', op: { kind: 'remove', time: T, cred: ROOT, dir: 1, name: 'abc' } }));
      three.set([0xed, 0xa0, 0x80], three.length - 3);
      expectCodecError(() => decodeEntry(three), 'UTF-8 encoded lone surrogate');
    });

    it('rejects more than 64 gids', () => {
      const enc = encodeEntry({ kind: 'op', op: { ...write, cred: { uid: 0, gid: 0, gids: Array(64).fill(9) } } });
      const gidsAt = 3 + 8 + 8; // format, kind, flags, time, uid, gid
      assert.equal(enc[gidsAt], 64);
      const more = new Uint8Array(enc.length + 4);
      more.set(enc.subarray(0, gidsAt + 1 + 256));
      more.set(enc.subarray(gidsAt + 1 + 256), gidsAt + 1 + 260);
      more[gidsAt] = 65;
      expectCodecError(() => decodeEntry(more), '65 gids');
    });

    it('rejects integers above 2^53 - 1, unknown enum values and flags', () => {
      const enc = writeEnc();
      const fileAt = dataLenAt(enc) - 1 - 8 - 8;
      enc[fileAt + 1] = 0x20; // hi word 0x00200000: 2^53
      expectCodecError(() => decodeEntry(enc), 'file id 2^53');
      const st = writeEnc();
      st[dataLenAt(st) - 1] = 3;
      expectCodecError(() => decodeEntry(st), 'stable 3');
      const sa = Uint8Array.from(encodeEntry({ kind: 'op', op: { kind: 'setattr', time: T, cred: ROOT, file: 1, attrs: {} } }));
      sa[sa.length - 2] = 0x30; // atime setting 3
      expectCodecError(() => decodeEntry(sa), 'atime setting 3');
      sa[sa.length - 2] = 0;
      sa[sa.length - 1] = 2; // guard flag 2
      expectCodecError(() => decodeEntry(sa), 'guard flag 2');
      const cr = Uint8Array.from(encodeEntry({ kind: 'op', op: { kind: 'create', time: T, cred: ROOT, dir: 1, name: 'f', mode: 'guarded', attrs: {} } }));
      cr[cr.length - 3] = 3;
      expectCodecError(() => decodeEntry(cr), 'create mode 3');
      cr[cr.length - 3] = 1;
      const withVerf = Uint8Array.from([...cr.subarray(0, cr.length - 1), 1, 1, 2, 3, 4, 5, 6, 7, 8]);
      expectCodecError(() => decodeEntry(withVerf), 'verifier on a GUARDED create');
      const mk = Uint8Array.from(encodeEntry({ kind: 'op', op: { kind: 'mknod', time: T, cred: ROOT, dir: 1, name: 'd', type: FileType.FIFO, attrs: {} } }));
      mk[mk.length - 3] = FileType.REG;
      expectCodecError(() => decodeEntry(mk), 'mknod of a regular file');
    });
  });

  describe('encoder validation', () => {
    const b = { time: T, cred: ROOT };
    const enc = (op: StoreOp) => () => encodeEntry({ kind: 'op', op });
    it('rejects values it cannot represent exactly', () => {
      expectCodecError(enc({ kind: 'remove', ...b, dir: 1, name: 'n'.repeat(256) }), 'name of 256 bytes');
      expectCodecError(enc({ kind: 'remove', ...b, dir: 1, name: 'é'.repeat(128) }), 'name of 256 UTF-8 bytes');
      expectCodecError(enc({ kind: 'symlink', ...b, dir: 1, name: 'l', attrs: {}, target: 't'.repeat(4097) }), 'target of 4097 bytes');
      expectCodecError(enc({ kind: 'remove', ...b, dir: 1, name: 'a\uD800' }), 'lone surrogate');
      expectCodecError(enc({ kind: 'remove', ...b, dir: MAX64 + 1, name: 'a' }), '2^53');
      expectCodecError(enc({ kind: 'remove', ...b, dir: -1, name: 'a' }), 'negative');
      expectCodecError(enc({ kind: 'remove', ...b, dir: 1.5, name: 'a' }), 'fraction');
      expectCodecError(enc({ kind: 'remove', ...b, dir: NaN, name: 'a' }), 'NaN');
      expectCodecError(enc({ kind: 'remove', time: { sec: 2 ** 32, nsec: 0 }, cred: ROOT, dir: 1, name: 'a' }), 'time beyond u32');
      expectCodecError(enc({ kind: 'remove', time: T, cred: { uid: 0, gid: 0, gids: Array(65).fill(1) }, dir: 1, name: 'a' }), '65 gids');
      expectCodecError(enc({ kind: 'create', ...b, dir: 1, name: 'f', mode: 'exclusive', attrs: {}, verifier: '0123456789ABCDEF' }), 'upper-case verifier');
      expectCodecError(enc({ kind: 'create', ...b, dir: 1, name: 'f', mode: 'guarded', attrs: {}, verifier: '0123456789abcdef' }), 'verifier, not EXCLUSIVE');
      expectCodecError(enc({ kind: 'mknod', ...b, dir: 1, name: 'f', type: FileType.REG as FileType.CHR, attrs: {} }), 'mknod REG');
      expectCodecError(enc({ kind: 'write', ...b, file: 1, offset: 0, data: new Uint8Array(1), stable: 3 as 0 }), 'stable 3');
      expectCodecError(enc({ kind: 'bogus' } as unknown as StoreOp), 'unknown kind');
      expectCodecError(() => encodeEntry({ kind: 'op', op: { kind: 'remove', ...b, dir: 1, name: 'a' }, requestKey: new Uint8Array(256) }), 'request key of 256 bytes');
      expectCodecError(() => encodeEntry({ kind: 'config', config: { ...CONFIG, capacityBytes: -Infinity } }), 'capacity -Infinity');
      expectCodecError(() => encodeEntry({ kind: 'config', config: { ...CONFIG, maxLinks: Infinity } }), 'maxLinks Infinity');
    });
  });
});

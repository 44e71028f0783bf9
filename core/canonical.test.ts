import { describe, expect, it } from 'vitest';
import { CanonicalJsonError, canonicalJson, formatNumber } from './canonical';

describe('canonicalJson', () => {
  it('sorts keys at every level and keeps array order', () => {
    const text = canonicalJson({ b: 1, a: { z: [3, { y: 1, x: 2 }], c: null } });
    expect(text).toBe('{\n  "a": {\n    "c": null,\n    "z": [\n      3,\n      {\n        "x": 2,\n        "y": 1\n      }\n    ]\n  },\n  "b": 1\n}\n');
  });

  it('is byte-identical for the same value built in any key order', () => {
    const one = { nodes: [{ id: 'a', params: { lr: 1e-4, steps: 10 } }], version: 1 };
    const two = { version: 1, nodes: [{ params: { steps: 10, lr: 0.0001 }, id: 'a' }] };
    expect(canonicalJson(one)).toBe(canonicalJson(two));
  });

  it('writes empty containers compactly, omits undefined fields, ends with one newline', () => {
    expect(canonicalJson({ a: [], b: {}, c: undefined })).toBe('{\n  "a": [],\n  "b": {}\n}\n');
    expect(canonicalJson([])).toBe('[]\n');
  });

  it('sorts by code unit, not locale', () => {
    expect(Object.keys(JSON.parse(canonicalJson({ b: 1, B: 2, a: 3, _: 4, 'é': 5 })))).toEqual(['B', '_', 'a', 'b', 'é']);
  });

  it('escapes strings as JSON does', () => {
    expect(canonicalJson({ s: 'line\n"quoted"\u0001' })).toBe('{\n  "s": "line\\n\\"quoted\\"\\u0001"\n}\n');
  });

  it('rejects values JSON cannot hold, naming the path', () => {
    expect(() => canonicalJson({ a: [1, NaN] })).toThrow(CanonicalJsonError);
    expect(() => canonicalJson({ a: [1, NaN] })).toThrow('$.a[1]: NaN cannot be written as JSON');
    expect(() => canonicalJson({ 'odd key': { x: Infinity } })).toThrow('$["odd key"].x: Infinity cannot be written as JSON');
    expect(() => canonicalJson({ f: () => 1 })).toThrow('$.f: a function cannot be written as JSON');
    expect(() => canonicalJson({ d: new Date(0) })).toThrow('$.d: a Date object cannot be written as JSON');
    expect(() => canonicalJson([undefined])).toThrow('$[0]: undefined');
  });
});

describe('formatNumber', () => {
  it.each([
    [0.1, '0.1'], [1e-4, '0.0001'], [7e-5, '0.00007'], [1e-8, '1e-8'], [1e21, '1e+21'], [123456789, '123456789'],
    [0.1 + 0.2, '0.30000000000000004'], [-0, '0'], [-1.5, '-1.5'], [2 ** 53, '9007199254740992'], [5e-324, '5e-324'],
  ])('%s -> %s', (n, text) => {
    expect(formatNumber(n)).toBe(text);
  });

  it('round-trips every number exactly', () => {
    for (const n of [Math.PI, 1 / 3, 1e-7, 123.456e300, -2.5e-310, 0.95, 7e-5]) expect(Number(formatNumber(n))).toBe(n);
  });

  it('rejects NaN and infinities', () => {
    expect(() => formatNumber(NaN, 'x.lr')).toThrow('x.lr: NaN cannot be written as JSON');
    expect(() => formatNumber(-Infinity)).toThrow('-Infinity');
  });
});

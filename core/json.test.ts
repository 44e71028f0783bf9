import { describe, expect, it } from 'vitest';
import { lineColumn, parseJson } from './json';

describe('parseJson', () => {
  it('reads what JSON.parse reads', () => {
    const texts = ['{"a":[1,-2.5e3,true,false,null,"x\\u00e9\\n"],"b":{}}', '[]', '  0 ', '"\\ud83d\\ude00"', '{"__proto__":{"x":1}}'];
    for (const text of texts) {
      const result = parseJson(text);
      expect(result.ok).toBe(true);
      if (result.ok) expect(result.value).toEqual(JSON.parse(text));
    }
  });

  it('keeps a "__proto__" key as data', () => {
    const result = parseJson('{"__proto__": {"polluted": true}}');
    expect(result.ok && Object.keys(result.value as object)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('accepts a UTF-8 byte-order mark', () => {
    expect(parseJson('\ufeff{"a":1}')).toEqual({ ok: true, value: { a: 1 } });
  });

  it.each([
    ['{"a": 1,\n  "b": }', 2, 8, /expected a value/],
    ['{"version": 1,\n "nodes": [1, 2,', 2, 17, /cut off/],
    ['not json', 1, 1, /unexpected character "n"/],
    ['{"a": 1} x', 1, 10, /after the end of the document/],
    ['{"a": 1, "a": 2}', 1, 10, /duplicate key "a"/],
    ['{a: 1}', 1, 2, /quoted property name/],
    ['[1,]', 1, 4, /expected a value/],
    ['{"s": "abc', 1, 7, /unterminated string/],
    ['[01]', 1, 2, /invalid number "01"/],
    ['[1.]', 1, 2, /invalid number "1."/],
    ['[NaN]', 1, 2, /unexpected character "N"/],
    ['["a\tb"]', 1, 4, /control character/],
    ['["\\x"]', 1, 3, /invalid escape/],
    ['[1e999]', 1, 2, /too large/],
    ['', 1, 1, /cut off/],
  ])('%j fails at %i:%i', (text, line, column, message) => {
    const result = parseJson(text);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect([result.line, result.column]).toEqual([line, column]);
      expect(result.message).toMatch(message);
    }
  });

  it('stops at absurd nesting instead of overflowing the stack', () => {
    const result = parseJson('['.repeat(100_000));
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.message).toMatch(/nesting deeper than/);
  });
});

describe('lineColumn', () => {
  it('counts 1-based lines and columns', () => {
    expect(lineColumn('ab\ncd\n', 0)).toEqual({ line: 1, column: 1 });
    expect(lineColumn('ab\ncd\n', 4)).toEqual({ line: 2, column: 2 });
    expect(lineColumn('ab\ncd\n', 6)).toEqual({ line: 3, column: 1 });
  });
});

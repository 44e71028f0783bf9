// Strict JSON reader that says where a file is broken (line and column), the same way on
// every JavaScript engine, and rejects repeated keys (JSON.parse silently keeps the last
// one, which would hide a half-edited node).
//
// Owned by core/: no Node, DOM or Electron imports here.

export type JsonParseResult =
  | { ok: true; value: unknown }
  | { ok: false; line: number; column: number; message: string };

const MAX_DEPTH = 256;

class JsonSyntaxError extends Error {
  constructor(readonly offset: number, message: string) { super(message); }
}

export function parseJson(text: string): JsonParseResult {
  const start = text.charCodeAt(0) === 0xfeff ? 1 : 0; // a UTF-8 BOM is not content
  const reader = new Reader(text, start);
  try {
    reader.skipSpace();
    const value = reader.value(0);
    reader.skipSpace();
    if (reader.pos < text.length) reader.fail(`unexpected ${reader.describeHere()} after the end of the document`);
    return { ok: true, value };
  } catch (e) {
    if (!(e instanceof JsonSyntaxError)) throw e;
    const { line, column } = lineColumn(text, e.offset);
    return { ok: false, line, column, message: e.message };
  }
}

/** 1-based line and column of a character offset (columns count UTF-16 code units). */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) { line++; lineStart = i + 1; }
  }
  return { line, column: offset - lineStart + 1 };
}

class Reader {
  constructor(readonly text: string, public pos: number) {}

  fail(message: string, at = this.pos): never {
    throw new JsonSyntaxError(at, message);
  }

  describeHere(): string {
    if (this.pos >= this.text.length) return 'end of file';
    return `character ${JSON.stringify(this.text[this.pos])}`;
  }

  skipSpace(): void {
    while (this.pos < this.text.length) {
      const c = this.text.charCodeAt(this.pos);
      if (c !== 32 && c !== 9 && c !== 10 && c !== 13) break;
      this.pos++;
    }
  }

  value(depth: number): unknown {
    if (depth > MAX_DEPTH) this.fail(`nesting deeper than ${MAX_DEPTH} levels`);
    const c = this.text[this.pos];
    if (c === '{') return this.object(depth);
    if (c === '[') return this.array(depth);
    if (c === '"') return this.string();
    if (c === '-' || (c >= '0' && c <= '9')) return this.number();
    for (const [word, value] of [['true', true], ['false', false], ['null', null]] as const) {
      if (this.text.startsWith(word, this.pos)) { this.pos += word.length; return value; }
    }
    if (this.pos >= this.text.length) this.fail('unexpected end of file: the document is cut off');
    return this.fail(`unexpected ${this.describeHere()}: expected a value`);
  }

  object(depth: number): Record<string, unknown> {
    this.pos++; // {
    const result: Record<string, unknown> = {};
    this.skipSpace();
    if (this.text[this.pos] === '}') { this.pos++; return result; }
    for (;;) {
      this.skipSpace();
      if (this.text[this.pos] !== '"') this.fail(`expected a quoted property name, found ${this.describeHere()}`);
      const keyAt = this.pos;
      const key = this.string();
      if (Object.prototype.hasOwnProperty.call(result, key)) this.fail(`duplicate key ${JSON.stringify(key)}`, keyAt);
      this.skipSpace();
      if (this.text[this.pos] !== ':') this.fail(`expected ':' after property name, found ${this.describeHere()}`);
      this.pos++;
      this.skipSpace();
      // defineProperty, not assignment: a "__proto__" key is data, not the prototype.
      Object.defineProperty(result, key, { value: this.value(depth + 1), enumerable: true, writable: true, configurable: true });
      this.skipSpace();
      const sep = this.text[this.pos];
      if (sep === ',') { this.pos++; continue; }
      if (sep === '}') { this.pos++; return result; }
      this.fail(`expected ',' or '}' in object, found ${this.describeHere()}`);
    }
  }

  array(depth: number): unknown[] {
    this.pos++; // [
    const result: unknown[] = [];
    this.skipSpace();
    if (this.text[this.pos] === ']') { this.pos++; return result; }
    for (;;) {
      this.skipSpace();
      result.push(this.value(depth + 1));
      this.skipSpace();
      const sep = this.text[this.pos];
      if (sep === ',') { this.pos++; continue; }
      if (sep === ']') { this.pos++; return result; }
      this.fail(`expected ',' or ']' in array, found ${this.describeHere()}`);
    }
  }

  string(): string {
    const open = this.pos;
    this.pos++; // "
    let out = '';
    let chunkStart = this.pos;
    while (this.pos < this.text.length) {
      const c = this.text.charCodeAt(this.pos);
      if (c === 34) { // "
        out += this.text.slice(chunkStart, this.pos);
        this.pos++;
        return out;
      }
      if (c < 0x20) this.fail('control character in string (write it as an escape such as \\n)');
      if (c !== 92) { this.pos++; continue; } // not a backslash
      out += this.text.slice(chunkStart, this.pos);
      const e = this.text[this.pos + 1];
      const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
      if (e !== undefined && e in simple) { out += simple[e]; this.pos += 2; }
      else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(this.text.slice(this.pos + 2, this.pos + 6))) {
        out += String.fromCharCode(parseInt(this.text.slice(this.pos + 2, this.pos + 6), 16));
        this.pos += 6;
      } else this.fail(`invalid escape ${JSON.stringify('\\' + (e ?? ''))} in string`);
      chunkStart = this.pos;
    }
    return this.fail('unterminated string: the file ends inside it', open);
  }

  number(): number {
    const match = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(this.text.slice(this.pos, this.pos + 400));
    if (!match) this.fail(`invalid number starting ${this.describeHere()}`);
    const value = Number(match[0]);
    const next = this.text[this.pos + match[0].length];
    if (next !== undefined && /[0-9.eE+\-a-zA-Z]/.test(next)) this.fail(`invalid number ${JSON.stringify(match[0] + next)}`);
    if (!Number.isFinite(value)) this.fail(`number ${match[0]} is too large`);
    this.pos += match[0].length;
    return value;
  }
}

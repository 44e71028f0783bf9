// Canonical JSON: one text per value, so two exports of one graph are byte-identical and
// diffs of pipeline files show only real changes.
//
// Rules: keys sorted by code unit at every level; numbers in their shortest round-trip form
// (ECMAScript Number#toString, which JSON.stringify uses), -0 written as 0; NaN and Infinity
// rejected with their path (JSON cannot hold them); undefined object fields omitted (as
// JSON.stringify does); 2-space indent, empty containers as {} and [], trailing newline.
//
// Owned by core/: no Node, DOM or Electron imports here.

export class CanonicalJsonError extends Error {
  constructor(readonly path: string, message: string) {
    super(`${path}: ${message}`);
    this.name = 'CanonicalJsonError';
  }
}

/** Shortest text that parses back to exactly `n` (Number#toString); -0 becomes 0 (JSON.stringify does that). */
export function formatNumber(n: number, path = '$'): string {
  if (!Number.isFinite(n)) throw new CanonicalJsonError(path, `${n} cannot be written as JSON`);
  return JSON.stringify(n);
}

export function canonicalJson(value: unknown): string {
  return write(value, '$', '') + '\n';
}

function write(value: unknown, path: string, indent: string): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'number':
      return formatNumber(value, path);
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'object':
      break;
    default:
      throw new CanonicalJsonError(path, `a ${typeof value} cannot be written as JSON`);
  }
  const inner = indent + '  ';
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    const items = value.map((item, i) => {
      if (item === undefined) throw new CanonicalJsonError(`${path}[${i}]`, 'undefined cannot be written as JSON');
      return inner + write(item, `${path}[${i}]`, inner);
    });
    return `[\n${items.join(',\n')}\n${indent}]`;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    throw new CanonicalJsonError(path, `a ${proto?.constructor?.name ?? 'non-plain'} object cannot be written as JSON`);
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record).filter((k) => record[k] !== undefined).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (keys.length === 0) return '{}';
  const fields = keys.map((k) => `${inner}${JSON.stringify(k)}: ${write(record[k], childKeyPath(path, k), inner)}`);
  return `{\n${fields.join(',\n')}\n${indent}}`;
}

function childKeyPath(base: string, key: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `${base}.${key}` : `${base}[${JSON.stringify(key)}]`;
}

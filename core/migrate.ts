// Migrations of older pipeline files, applied on import before validation.
//
// Design choices:
// - A registry of single steps vN -> vN+1; a file is walked up one step at a time, so each
//   migration only ever knows two neighbouring formats.
// - Migrations are lenient: they rewrite what they recognise and pass everything else
//   through untouched, so the validator (which knows only the current version) reports
//   leftovers with their exact path instead of a migration silently dropping them.
// - The input is never modified.
//
// Version 0: the draft format used before `version` existed (core/fixtures/v0-seed-draft.json):
//   {
//     "schema_version": 0,
//     "name": "...", "author": "...", "description": "...",   (optional; v1 keeps them in `info`)
//     "seed": 1234, "backend": "auto",                        (backend optional, default "auto")
//     "nodes": [{ "id", "kind", "label"?, "params" }],         (params as in v1, except:)
//         layer ranges are strings, "4-6" or "5" (Freeze also "all");  v1: [4, 6], [5, 5]
//         Train says "learning_rate";                                  v1: "lr"
//     "edges": [["from", "to"], ...],                           v1: links [{ "from", "to" }]
//     "positions": { "node id": [x, y] }                         (optional) v1: layout.nodes
//   }
//
// Owned by core/: no Node, DOM or Electron imports here.
import { PIPELINE_VERSION } from './schema';

type Doc = Record<string, unknown>;

export interface Migration {
  from: number;
  /** One line for the import log: what changed. */
  describe: string;
  apply(doc: Doc): Doc;
}

function isRecord(value: unknown): value is Doc {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** "4-6" -> [4, 6], "5" -> [5, 5]; anything else is returned unchanged for the validator. */
export function parseLayerRangeText(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(value);
  if (!m) return value;
  const first = Number(m[1]);
  return [first, m[2] === undefined ? first : Number(m[2])];
}

const v0ToV1: Migration = {
  from: 0,
  describe: 'version 0 -> 1: info block, links as objects, layer ranges as [first, last], learning_rate -> lr, positions -> layout',
  apply(doc) {
    const { schema_version: _version, name, author, description, edges, positions, ...rest } = doc;
    const out: Doc = {
      version: 1,
      info: {
        name: typeof name === 'string' && name.trim() !== '' ? name : 'Untitled pipeline',
        author: typeof author === 'string' ? author : '',
        description: typeof description === 'string' ? description : '',
      },
      ...rest,
    };
    if (!('backend' in out)) out.backend = 'auto';
    if (Array.isArray(rest.nodes)) {
      out.nodes = rest.nodes.map((node) => {
        if (!isRecord(node) || !isRecord(node.params)) return node;
        const params: Doc = { ...node.params };
        if (typeof params.layers === 'string' && params.layers !== 'all') params.layers = parseLayerRangeText(params.layers);
        if (node.kind === 'train' && 'learning_rate' in params && !('lr' in params)) {
          const { learning_rate, ...others } = params;
          return { ...node, params: { ...others, lr: learning_rate } };
        }
        return { ...node, params };
      });
    }
    if (edges !== undefined) {
      out.links = Array.isArray(edges)
        ? edges.map((e) => (Array.isArray(e) && e.length === 2 ? { from: e[0], to: e[1] } : e))
        : edges;
    }
    if (isRecord(positions)) {
      const nodes: Doc = {};
      for (const [id, pos] of Object.entries(positions)) {
        nodes[id] = Array.isArray(pos) && pos.length === 2 ? { x: pos[0], y: pos[1] } : pos;
      }
      out.layout = { nodes };
    } else if (positions !== undefined) {
      out.layout = positions;
    }
    return out;
  },
};

/** Every migration, keyed by the version it upgrades from. */
export const MIGRATIONS: ReadonlyMap<number, Migration> = new Map([[v0ToV1.from, v0ToV1]]);

/** The version a document declares: `version`, or v0's `schema_version`; null when neither is a number. */
export function declaredVersion(doc: unknown): number | null {
  if (!isRecord(doc)) return null;
  if (typeof doc.version === 'number') return doc.version;
  if (!('version' in doc) && typeof doc.schema_version === 'number') return doc.schema_version;
  return null;
}

export interface MigrationResult {
  value: unknown;
  /** Version the document declared before migration (null: none readable). */
  from: number | null;
  /** describe() of every migration applied, in order. */
  applied: string[];
}

/** Upgrades `value` to the current version where a path exists; otherwise returns it unchanged. */
export function migratePipeline(value: unknown): MigrationResult {
  const from = declaredVersion(value);
  const applied: string[] = [];
  if (from === null || from >= PIPELINE_VERSION) return { value, from, applied };
  let doc = value as Doc;
  for (let v = from; v < PIPELINE_VERSION; v++) {
    const step = MIGRATIONS.get(v);
    if (!step) return { value, from, applied: [] }; // no path: the validator names the version
    doc = step.apply(doc);
    applied.push(step.describe);
  }
  return { value: doc, from, applied };
}

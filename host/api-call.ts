// Checks and dispatches one StudioApi call arriving over a transport (Electron IPC or the
// `serve` WebSocket). Both transports run the same checks, so the page gets the same error
// for the same bad call whichever way it is connected.
//
// Design choices:
// - Pure: no Electron, no sockets. main.ts and server.ts call it; vitest tests it directly.
// - Allow-list of methods (STUDIO_METHODS, plus FILE_METHODS where native dialogs exist) and a
//   per-method argument shape, so a method never sees an argument of the wrong kind.
// - Arguments must be plain JSON values of bounded size and depth: IPC's structured clone
//   could otherwise carry Maps, Dates or huge graphs into the service.
import { FILE_METHODS, STUDIO_METHODS, type FileMethod, type StudioApi, type StudioMethod } from '../core/api';
import { MAX_PIPELINE_BYTES } from '../core/parse';

export type CallableMethod = StudioMethod | FileMethod;
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface ApiCall { method: CallableMethod; args: JsonValue[] }

/** A failure the caller should see as is (message and a stable code). */
export class ApiCallError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = 'ApiCallError';
  }
}

export const CALL_LIMITS = {
  /** Serialized size of all arguments together: one pipeline at its largest (core/parse.ts). */
  maxChars: MAX_PIPELINE_BYTES,
  maxDepth: 64,
  /** Values (objects, arrays and scalars) across all arguments. */
  maxValues: 500_000,
} as const;

type ArgKind = 'string' | 'object' | 'any';
/** Required arguments, then optional ones. */
const ARG_SHAPES: Record<CallableMethod, { required: ArgKind[]; optional?: ArgKind[] }> = {
  listTemplates: { required: [] },
  getTemplate: { required: ['string'] },
  validate: { required: ['any'] },
  preflight: { required: ['object'] },
  startRun: { required: ['object'], optional: ['object'] },
  pauseRun: { required: ['string'] },
  resumeRun: { required: ['string'] },
  cancelRun: { required: ['string'] },
  listRuns: { required: [] },
  getRun: { required: ['string'] },
  attachRun: { required: ['string'] },
  detachRun: { required: ['string'] },
  forkRun: { required: ['object'] },
  systemInfo: { required: [] },
  analyzeAttention: { required: ['object'] },
  openPipelineFile: { required: [] },
  savePipelineFile: { required: ['string', 'string'] },
};

export const SERVER_METHODS: readonly CallableMethod[] = STUDIO_METHODS;
export const IPC_METHODS: readonly CallableMethod[] = [...STUDIO_METHODS, ...FILE_METHODS];

/** Validates `payload` ({ method, args }) against `allowed`; throws ApiCallError with one line. */
export function checkApiCall(payload: unknown, allowed: readonly CallableMethod[]): ApiCall {
  if (!isPlainObject(payload)) throw new ApiCallError('bad_request', 'request must be an object { method, args }');
  const { method, args } = payload as { method?: unknown; args?: unknown };
  if (typeof method !== 'string') throw new ApiCallError('bad_request', 'request.method must be a string');
  if (!(allowed as readonly string[]).includes(method)) {
    throw new ApiCallError('unknown_method', `unknown method "${method.slice(0, 80)}"`);
  }
  const name = method as CallableMethod;
  if (args === undefined) return checkArity(name, []);
  if (!Array.isArray(args)) throw new ApiCallError('bad_request', `${name}: request.args must be an array`);
  const budget = { values: 0, chars: 0 };
  args.forEach((arg, i) => checkJson(arg, `${name}: args[${i}]`, 0, budget));
  return checkArity(name, args as JsonValue[]);
}

function checkArity(method: CallableMethod, args: JsonValue[]): ApiCall {
  const shape = ARG_SHAPES[method];
  const max = shape.required.length + (shape.optional?.length ?? 0);
  if (args.length < shape.required.length || args.length > max) {
    const expected = max === shape.required.length ? `${max}` : `${shape.required.length}-${max}`;
    throw new ApiCallError('bad_request', `${method}: expected ${expected} argument(s), got ${args.length}`);
  }
  const kinds = [...shape.required, ...(shape.optional ?? [])];
  args.forEach((arg, i) => {
    const kind = kinds[i];
    if (kind === 'string' && (typeof arg !== 'string' || arg.length === 0 || arg.length > 4096)) {
      throw new ApiCallError('bad_request', `${method}: args[${i}] must be a non-empty string`);
    }
    if (kind === 'object' && !isPlainObject(arg)) {
      throw new ApiCallError('bad_request', `${method}: args[${i}] must be an object`);
    }
  });
  return { method, args };
}

function checkJson(value: unknown, path: string, depth: number, budget: { values: number; chars: number }): void {
  if (depth > CALL_LIMITS.maxDepth) throw new ApiCallError('too_large', `${path}: nested deeper than ${CALL_LIMITS.maxDepth} levels`);
  if (++budget.values > CALL_LIMITS.maxValues) throw new ApiCallError('too_large', `arguments hold more than ${CALL_LIMITS.maxValues} values`);
  if (value === null || typeof value === 'boolean') { budget.chars += 5; return; }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new ApiCallError('bad_request', `${path}: numbers must be finite`);
    budget.chars += 24;
  } else if (typeof value === 'string') {
    budget.chars += value.length + 2;
  } else if (Array.isArray(value)) {
    value.forEach((item, i) => checkJson(item, `${path}[${i}]`, depth + 1, budget));
  } else if (isPlainObject(value)) {
    for (const [key, item] of Object.entries(value)) {
      budget.chars += key.length + 3;
      checkJson(item, `${path}.${key}`, depth + 1, budget);
    }
  } else {
    const kind = value === undefined ? 'undefined' : typeof value === 'object' ? (value as object).constructor?.name ?? 'object' : typeof value;
    throw new ApiCallError('bad_request', `${path}: not a JSON value (${kind})`);
  }
  if (budget.chars > CALL_LIMITS.maxChars) throw new ApiCallError('too_large', `arguments exceed ${CALL_LIMITS.maxChars} characters`);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Calls the checked method on `api`; a method the implementation lacks is a clear error. */
export async function dispatchApiCall(api: StudioApi, call: ApiCall): Promise<unknown> {
  const fn = (api as unknown as Record<string, unknown>)[call.method];
  if (typeof fn !== 'function') throw new ApiCallError('not_available', `${call.method} is not available in this mode`);
  return (fn as (...args: unknown[]) => Promise<unknown>).apply(api, call.args);
}

/** What crosses the wire for a failed call: the message (first line) and a code. */
export function wireError(error: unknown): { message: string; code?: string } {
  const message = error instanceof Error ? error.message : String(error);
  const firstLine = message.split('\n')[0] || 'unknown error';
  const code = (error as { code?: unknown })?.code;
  return typeof code === 'string' ? { message: firstLine, code } : { message: firstLine };
}

/** Result of an IPC invoke: errors travel as data so the page gets the plain message back. */
export type InvokeOutcome = { ok: true; result: unknown } | { ok: false; error: { message: string; code?: string } };

/** Checks, dispatches and wraps one call; never throws. */
export async function handleApiCall(api: StudioApi, payload: unknown, allowed: readonly CallableMethod[]): Promise<InvokeOutcome> {
  try {
    const call = checkApiCall(payload, allowed);
    return { ok: true, result: await dispatchApiCall(api, call) };
  } catch (error) {
    return { ok: false, error: wireError(error) };
  }
}

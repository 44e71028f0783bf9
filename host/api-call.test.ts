import { describe, expect, it } from 'vitest';
import type { StudioApi } from '../core/api';
import { ApiCallError, CALL_LIMITS, IPC_METHODS, SERVER_METHODS, checkApiCall, handleApiCall } from './api-call';

function rejects(payload: unknown, allowed = IPC_METHODS): ApiCallError {
  try {
    checkApiCall(payload, allowed);
  } catch (error) {
    expect(error).toBeInstanceOf(ApiCallError);
    expect((error as Error).message).not.toContain('\n');
    return error as ApiCallError;
  }
  throw new Error(`accepted ${JSON.stringify(payload)}`);
}

describe('checkApiCall', () => {
  it('accepts well-formed calls and keeps their arguments', () => {
    expect(checkApiCall({ method: 'listTemplates', args: [] }, IPC_METHODS)).toEqual({ method: 'listTemplates', args: [] });
    expect(checkApiCall({ method: 'listTemplates' }, IPC_METHODS)).toEqual({ method: 'listTemplates', args: [] });
    expect(checkApiCall({ method: 'getTemplate', args: ['quick-demo'] }, IPC_METHODS).args).toEqual(['quick-demo']);
    expect(checkApiCall({ method: 'validate', args: [42] }, IPC_METHODS).args).toEqual([42]);
    const pipeline = { version: 1, nodes: [{ id: 'm', params: { layers: [1, 2], ok: true, x: null } }] };
    expect(checkApiCall({ method: 'startRun', args: [pipeline, { backend: 'cpu' }] }, IPC_METHODS).args[0]).toEqual(pipeline);
    expect(checkApiCall({ method: 'savePipelineFile', args: ['{}', 'p.json'] }, IPC_METHODS).method).toBe('savePipelineFile');
  });

  it('refuses payloads that are not { method, args }', () => {
    expect(rejects(null).code).toBe('bad_request');
    expect(rejects('listTemplates').code).toBe('bad_request');
    expect(rejects([]).code).toBe('bad_request');
    expect(rejects({ method: 7, args: [] }).message).toBe('request.method must be a string');
    expect(rejects({ method: 'getTemplate', args: 'x' }).message).toBe('getTemplate: request.args must be an array');
  });

  it('refuses methods outside the allow-list, including Object prototype names', () => {
    expect(rejects({ method: 'deleteEverything', args: [] }).code).toBe('unknown_method');
    expect(rejects({ method: 'constructor', args: [] }).code).toBe('unknown_method');
    expect(rejects({ method: '__proto__', args: [] }).code).toBe('unknown_method');
    expect(rejects({ method: 'onRunEvent', args: [] }).code).toBe('unknown_method');
    // file dialogs exist over IPC only
    expect(rejects({ method: 'openPipelineFile', args: [] }, SERVER_METHODS).code).toBe('unknown_method');
  });

  it('checks argument count and kinds per method', () => {
    expect(rejects({ method: 'getTemplate', args: [] }).message).toBe('getTemplate: expected 1 argument(s), got 0');
    expect(rejects({ method: 'getTemplate', args: [3] }).message).toBe('getTemplate: args[0] must be a non-empty string');
    expect(rejects({ method: 'getRun', args: [''] }).message).toBe('getRun: args[0] must be a non-empty string');
    expect(rejects({ method: 'listRuns', args: [1] }).message).toBe('listRuns: expected 0 argument(s), got 1');
    expect(rejects({ method: 'startRun', args: [{}, {}, {}] }).message).toBe('startRun: expected 1-2 argument(s), got 3');
    expect(rejects({ method: 'preflight', args: [[1]] }).message).toBe('preflight: args[0] must be an object');
  });

  it('refuses values that are not plain JSON', () => {
    expect(rejects({ method: 'validate', args: [new Map()] }).message).toBe('validate: args[0]: not a JSON value (Map)');
    expect(rejects({ method: 'validate', args: [{ a: [1, new Date(0)] }] }).message).toBe('validate: args[0].a[1]: not a JSON value (Date)');
    expect(rejects({ method: 'validate', args: [{ a: undefined }] }).message).toBe('validate: args[0].a: not a JSON value (undefined)');
    expect(rejects({ method: 'validate', args: [{ n: Number.NaN }] }).message).toBe('validate: args[0].n: numbers must be finite');
    expect(rejects({ method: 'validate', args: [new Uint8Array(4)] }).message).toContain('Uint8Array');
  });

  it('bounds depth, value count and size', () => {
    let deep: unknown = 1;
    for (let i = 0; i < CALL_LIMITS.maxDepth + 2; i++) deep = [deep];
    expect(rejects({ method: 'validate', args: [deep] }).code).toBe('too_large');
    expect(rejects({ method: 'validate', args: [new Array(CALL_LIMITS.maxValues + 1).fill(0)] }).code).toBe('too_large');
    expect(rejects({ method: 'savePipelineFile', args: ['x'.repeat(CALL_LIMITS.maxChars + 1), 'a.json'] }).code).toBe('too_large');
  });
});

describe('handleApiCall', () => {
  const api = {
    async listTemplates() { return [{ id: 'a', name: 'A', description: '' }]; },
    async getTemplate(id: string) { throw Object.assign(new Error(`template "${id}" not found\nsecond line`), { code: 'not_found' }); },
  } as unknown as StudioApi;

  it('wraps results and errors as data, first line of the message only', async () => {
    expect(await handleApiCall(api, { method: 'listTemplates', args: [] }, SERVER_METHODS))
      .toEqual({ ok: true, result: [{ id: 'a', name: 'A', description: '' }] });
    expect(await handleApiCall(api, { method: 'getTemplate', args: ['x'] }, SERVER_METHODS))
      .toEqual({ ok: false, error: { message: 'template "x" not found', code: 'not_found' } });
    expect(await handleApiCall(api, { method: 'nope', args: [] }, SERVER_METHODS))
      .toEqual({ ok: false, error: { message: 'unknown method "nope"', code: 'unknown_method' } });
  });

  it('reports a method the implementation lacks as not available', async () => {
    expect(await handleApiCall(api, { method: 'openPipelineFile', args: [] }, IPC_METHODS))
      .toEqual({ ok: false, error: { message: 'openPipelineFile is not available in this mode', code: 'not_available' } });
  });
});

import { describe, expect, it } from 'vitest';
import { createGraphStore } from '../stores/graph-store';
import { chordOf, commandForKey, COMMANDS, getCommand, runCommand, type CommandContext } from './commands';

function context() {
  const graph = createGraphStore();
  const calls: string[] = [];
  const ctx: CommandContext = {
    graph,
    exportPipeline: () => { calls.push('export'); },
    importPipeline: () => { calls.push('import'); },
    openNodeSearch: () => { calls.push('search'); },
    openTemplates: () => { calls.push('templates'); },
  };
  return { graph, ctx, calls };
}

const key = (k: string, mods: Partial<{ ctrl: boolean; shift: boolean; meta: boolean; alt: boolean }> = {}) =>
  ({ key: k, ctrlKey: !!mods.ctrl, metaKey: !!mods.meta, shiftKey: !!mods.shift, altKey: !!mods.alt });

describe('command registry', () => {
  it('has unique names and unique key chords', () => {
    const names = COMMANDS.map((c) => c.name);
    expect(new Set(names).size).toBe(names.length);
    const chords = COMMANDS.flatMap((c) => c.keys);
    expect(new Set(chords).size).toBe(chords.length);
    expect(() => getCommand('nope')).toThrow('unknown command: nope');
  });

  it('maps the documented shortcuts', () => {
    expect(commandForKey(key('z', { ctrl: true }))?.name).toBe('undo');
    expect(commandForKey(key('Z', { ctrl: true, shift: true }))?.name).toBe('redo');
    expect(commandForKey(key('c', { meta: true }))?.name).toBe('copy');
    expect(commandForKey(key('v', { ctrl: true }))?.name).toBe('paste');
    expect(commandForKey(key('Delete'))?.name).toBe('delete');
    expect(commandForKey(key('l', { ctrl: true }))?.name).toBe('layout');
    expect(commandForKey(key('s', { ctrl: true }))?.name).toBe('export');
    expect(commandForKey(key('z'))).toBeUndefined();
    expect(chordOf(key('z', { ctrl: true, shift: true }))).toBe('Mod+Shift+Z');
  });

  it('runs undo, redo, delete, copy and paste through the registry', async () => {
    const { graph, ctx } = context();
    expect(await runCommand('undo', ctx)).toBe(false); // nothing to undo: disabled
    graph.getState().addNode('model', { x: 0, y: 0 });
    graph.getState().addNode('freeze', { x: 200, y: 0 });
    graph.getState().connect('model-1', 'freeze-1');
    graph.getState().select(['freeze-1']);
    expect(await runCommand('delete', ctx)).toBe(true);
    expect(graph.getState().pipeline.nodes.map((n) => n.id)).toEqual(['model-1']);
    expect(await runCommand('undo', ctx)).toBe(true);
    expect(graph.getState().pipeline.nodes.map((n) => n.id)).toEqual(['model-1', 'freeze-1']);
    expect(graph.getState().pipeline.links).toEqual([{ from: 'model-1', to: 'freeze-1' }]);
    expect(await runCommand('redo', ctx)).toBe(true);
    expect(graph.getState().pipeline.nodes).toHaveLength(1);
    graph.getState().select(['model-1']);
    expect(await runCommand('paste', ctx)).toBe(false); // empty clipboard
    await runCommand('copy', ctx);
    await runCommand('paste', ctx);
    expect(graph.getState().pipeline.nodes.map((n) => n.id)).toEqual(['model-1', 'model-2']);
  });

  it('hands export and import to the context and disables export on an empty canvas', async () => {
    const { graph, ctx, calls } = context();
    expect(await runCommand('export', ctx)).toBe(false);
    graph.getState().addNode('model', { x: 0, y: 0 });
    expect(await runCommand('export', ctx)).toBe(true);
    await runCommand('import', ctx);
    await runCommand('layout', ctx);
    expect(calls).toEqual(['export', 'import']);
    expect(graph.getState().pipeline.layout!.nodes['model-1']).toEqual({ x: 0, y: 0 });
  });
});

// Editor commands as data: one registry of { name, label, keys, perform, enabled, undoable }.
// Menus, toolbar buttons and the keyboard all run commands by name, and tests execute them
// the same way, so what a test checks is what a click or a key does.
import type { GraphStore } from '../stores/graph-store';

/** What a command may touch. The app supplies the file and UI services; tests supply their own. */
export interface CommandContext {
  graph: GraphStore;
  /** Writes the pipeline out (download, or a native save dialog in Electron). */
  exportPipeline(): void | Promise<void>;
  /** Reads a pipeline in (file picker, or a native open dialog in Electron). */
  importPipeline(): void | Promise<void>;
  /** Opens the add-node search at the canvas centre. */
  openNodeSearch(): void;
  /** Shows the template gallery. */
  openTemplates(): void;
}

export interface Command {
  name: string;
  label: string;
  /** Key chords: `Mod` is Ctrl (Cmd on macOS); e.g. 'Mod+Shift+Z', 'Delete'. */
  keys: string[];
  perform(ctx: CommandContext): void | Promise<void>;
  enabled(ctx: CommandContext): boolean;
  /** True when the command changes the pipeline and lands on the undo stack. */
  undoable: boolean;
}

const always = () => true;
const hasSelection = (ctx: CommandContext) => ctx.graph.getState().selection.length > 0;
const hasAnySelection = (ctx: CommandContext) => hasSelection(ctx) || ctx.graph.getState().selectedLinks.length > 0;

export const COMMANDS: readonly Command[] = [
  { name: 'undo', label: 'Undo', keys: ['Mod+Z'], undoable: false,
    perform: (ctx) => ctx.graph.getState().undo(), enabled: (ctx) => ctx.graph.getState().past.length > 0 },
  { name: 'redo', label: 'Redo', keys: ['Mod+Shift+Z', 'Mod+Y'], undoable: false,
    perform: (ctx) => ctx.graph.getState().redo(), enabled: (ctx) => ctx.graph.getState().future.length > 0 },
  { name: 'copy', label: 'Copy', keys: ['Mod+C'], undoable: false,
    perform: (ctx) => ctx.graph.getState().copy(), enabled: hasSelection },
  { name: 'cut', label: 'Cut', keys: ['Mod+X'], undoable: true,
    perform: (ctx) => { const g = ctx.graph.getState(); g.copy(); g.removeNodes(g.selection); }, enabled: hasSelection },
  { name: 'paste', label: 'Paste', keys: ['Mod+V'], undoable: true,
    perform: (ctx) => ctx.graph.getState().paste(), enabled: (ctx) => !!ctx.graph.getState().clipboard?.nodes.length },
  { name: 'delete', label: 'Delete', keys: ['Delete', 'Backspace'], undoable: true,
    perform: (ctx) => ctx.graph.getState().deleteSelection(), enabled: hasAnySelection },
  { name: 'select-all', label: 'Select all', keys: ['Mod+A'], undoable: false,
    perform: (ctx) => { const g = ctx.graph.getState(); g.select(g.pipeline.nodes.map((n) => n.id)); },
    enabled: (ctx) => ctx.graph.getState().pipeline.nodes.length > 0 },
  { name: 'layout', label: 'Auto-layout', keys: ['Mod+L'], undoable: true,
    perform: (ctx) => ctx.graph.getState().autoLayout(), enabled: (ctx) => ctx.graph.getState().pipeline.nodes.length > 0 },
  { name: 'export', label: 'Export JSON', keys: ['Mod+S'], undoable: false,
    perform: (ctx) => ctx.exportPipeline(), enabled: (ctx) => ctx.graph.getState().pipeline.nodes.length > 0 },
  { name: 'import', label: 'Import JSON', keys: ['Mod+O'], undoable: true,
    perform: (ctx) => ctx.importPipeline(), enabled: always },
  { name: 'add-node', label: 'Add node', keys: [], undoable: true,
    perform: (ctx) => ctx.openNodeSearch(), enabled: always },
  { name: 'templates', label: 'Templates', keys: [], undoable: false,
    perform: (ctx) => ctx.openTemplates(), enabled: always },
];

const byName = new Map(COMMANDS.map((c) => [c.name, c]));

export function getCommand(name: string): Command {
  const command = byName.get(name);
  if (!command) throw new Error(`unknown command: ${name}`);
  return command;
}

/** Runs a command if it is enabled; returns whether it ran. */
export async function runCommand(name: string, ctx: CommandContext): Promise<boolean> {
  const command = getCommand(name);
  if (!command.enabled(ctx)) return false;
  await command.perform(ctx);
  return true;
}

export interface KeyLike { key: string; ctrlKey: boolean; metaKey: boolean; shiftKey: boolean; altKey: boolean }

/** The chord of a key event, in the registry's notation ('Mod+Shift+Z'). */
export function chordOf(event: KeyLike): string {
  const parts: string[] = [];
  if (event.ctrlKey || event.metaKey) parts.push('Mod');
  if (event.altKey) parts.push('Alt');
  if (event.shiftKey) parts.push('Shift');
  const key = event.key.length === 1 ? event.key.toUpperCase() : event.key;
  parts.push(key);
  return parts.join('+');
}

/** The command bound to a key event, if any. */
export function commandForKey(event: KeyLike): Command | undefined {
  const chord = chordOf(event);
  return COMMANDS.find((c) => c.keys.includes(chord));
}

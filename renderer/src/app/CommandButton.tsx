// A toolbar button for a registry command, rendered by name: label, shortcut and enabled
// state all come from the registry.
import { useStore } from 'zustand';
import { getCommand, runCommand } from '../commands/commands';
import { useCommandContext } from './command-context';
import { useStudio } from './studio-context';

export function CommandButton({ name }: { name: string }) {
  const ctx = useCommandContext();
  const { graph } = useStudio();
  useStore(graph); // re-render when the graph changes, so `enabled` stays current
  const command = getCommand(name);
  const shortcut = command.keys[0]?.replace('Mod', 'Ctrl');
  return (
    <button
      className="cmd"
      aria-label={command.label}
      title={shortcut ? `${command.label} (${shortcut})` : command.label}
      disabled={!command.enabled(ctx)}
      onClick={() => void runCommand(name, ctx)}
    >
      {command.label}
    </button>
  );
}

// The CommandContext the app hands to commands: file import/export through the Electron
// dialogs when the preload offers them, else a browser download / file picker.
import { createContext, useContext } from 'react';
import type { CommandContext } from '../commands/commands';
import type { Studio } from './studio-context';
import { exportPipelineText, importPipelineText, suggestedFileName } from '../pipeline-file';

export const CommandContextReact = createContext<CommandContext | null>(null);

export function useCommandContext(): CommandContext {
  const ctx = useContext(CommandContextReact);
  if (!ctx) throw new Error('useCommandContext outside its provider');
  return ctx;
}

export function buildCommandContext(studio: Studio, ui: { openNodeSearch(): void }): CommandContext {
  const { connection, graph, session } = studio;
  const notify = session.getState().notify;

  const loadText = (text: string, name: string) => {
    try {
      const { pipeline, problems, migrations } = importPipelineText(text, name);
      graph.getState().load(pipeline, { pristine: true });
      session.getState().setShowTemplates(false);
      const migrated = migrations.length ? ` (migrated: ${migrations.join('; ')})` : '';
      notify(problems.length ? `Imported ${name}${migrated} with ${problems.length} problem(s): see the problems panel` : `Imported ${name}${migrated}`, problems.length ? 'error' : 'info');
    } catch (e) {
      notify((e as Error).message, 'error');
    }
  };

  return {
    graph,
    async exportPipeline() {
      const pipeline = graph.getState().pipeline;
      let text: string;
      try { text = exportPipelineText(pipeline); } catch (e) { notify(`cannot export: ${(e as Error).message}`, 'error'); return; }
      const name = suggestedFileName(pipeline);
      if (connection.api.savePipelineFile) {
        const path = await connection.api.savePipelineFile(text, name);
        if (path) notify(`Saved ${path}`);
        return;
      }
      const url = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
      const link = document.createElement('a');
      link.href = url;
      link.download = name;
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
      notify(`Exported ${name}`);
    },
    async importPipeline() {
      if (connection.api.openPipelineFile) {
        const file = await connection.api.openPipelineFile();
        if (file) loadText(file.text, file.name);
        return;
      }
      const input = document.createElement('input');
      input.type = 'file';
      input.accept = '.json,application/json';
      input.setAttribute('aria-label', 'pipeline file');
      input.style.display = 'none';
      input.onchange = async () => {
        const file = input.files?.[0];
        input.remove();
        if (file) loadText(await file.text(), file.name);
      };
      document.body.appendChild(input);
      input.click();
    },
    openNodeSearch: ui.openNodeSearch,
    openTemplates: () => session.getState().setShowTemplates(true),
  };
}

// App frame: header (name, connection, backend), view tabs (Editor, Monitor, Runs), status bar.
// Keyboard shortcuts go through the command registry.
import { useEffect, useMemo, useState } from 'react';
import type { SystemInfo } from '../../../core/api';
import type { ConnectionState } from '../api/connection';
import { commandForKey, runCommand } from '../commands/commands';
import { selectNotice, selectView, type View } from '../stores/session-store';
import { useSession, useStudio } from './studio-context';
import { buildCommandContext, CommandContextReact } from './command-context';
import { EditorView } from '../editor/EditorView';
import { RunFollower, RunMonitor } from '../monitor/RunMonitor';
import { RunsView } from '../runs/RunsView';

const VIEWS: { id: View; label: string }[] = [
  { id: 'editor', label: 'Editor' },
  { id: 'monitor', label: 'Monitor' },
  { id: 'runs', label: 'Runs' },
];

export function App() {
  const studio = useStudio();
  const view = useSession(selectView);
  const notice = useSession(selectNotice);
  const [searchRequest, setSearchRequest] = useState(0);
  const ctx = useMemo(() => buildCommandContext(studio, { openNodeSearch: () => setSearchRequest((n) => n + 1) }), [studio]);

  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if (studio.session.getState().view !== 'editor') return;
      const target = event.target as HTMLElement;
      const typing = target.closest('input, textarea, select, [contenteditable="true"]');
      const command = commandForKey(event);
      if (!command) return;
      // In a text field, leave editing keys to the field; Ctrl+S still exports.
      if (typing && command.name !== 'export') return;
      event.preventDefault();
      void runCommand(command.name, ctx);
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [studio, ctx]);

  // Electron's File menu sends commands to the page.
  useEffect(() => studio.connection.api.onMenuCommand?.((c) => {
    void runCommand(c === 'open-pipeline' ? 'import' : 'export', ctx);
  }), [studio, ctx]);

  return (
    <CommandContextReact.Provider value={ctx}>
      <div className="app">
        <RunFollower />
        <Header />
        <nav className="tabs" role="tablist" aria-label="views">
          {VIEWS.map((v) => (
            <button key={v.id} role="tab" aria-selected={view === v.id} className={view === v.id ? 'active' : ''}
              onClick={() => studio.session.getState().setView(v.id)}>{v.label}</button>
          ))}
        </nav>
        <main className="view">
          {view === 'editor' && <EditorView searchRequest={searchRequest} />}
          {view === 'monitor' && <RunMonitor />}
          {view === 'runs' && <RunsView />}
        </main>
        <footer className={`statusbar${notice?.tone === 'error' ? ' error' : ''}`} role="status" aria-label="status">
          {notice?.text ?? 'Ready'}
        </footer>
      </div>
    </CommandContextReact.Provider>
  );
}

function Header() {
  const { connection } = useStudio();
  const [state, setState] = useState<ConnectionState>(connection.getState());
  const [info, setInfo] = useState<SystemInfo | null>(null);
  useEffect(() => {
    const off = connection.onStateChange(setState);
    setState(connection.getState()); // it may have opened between render and subscribe
    return off;
  }, [connection]);
  useEffect(() => {
    if (state !== 'open') return;
    connection.api.systemInfo().then(setInfo, () => setInfo(null));
  }, [connection, state]);
  const backend = info
    ? info.backends.cuda.available ? `CUDA · ${info.backends.cuda.device ?? 'GPU'}` : `CPU · ${info.backends.cpu.threads} threads · ${info.backends.cpu.simd}`
    : '';
  return (
    <header className="header">
      <div className="brand"><span className="logo" aria-hidden>▦</span> Sparse Studio {info && <span className="version">v{info.version}</span>}</div>
      <div className="grow" />
      {backend && <span className="backend" aria-label="backend">{backend}</span>}
      <span className={`conn conn-${state}`} aria-label="connection" title={`transport: ${connection.kind}`}>
        <i /> {state === 'open' ? (connection.kind === 'ipc' ? 'connected' : 'connected') : state}
      </span>
    </header>
  );
}

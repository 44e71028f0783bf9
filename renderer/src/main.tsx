// Renderer entry: pick the transport, build the stores, restore the autosaved draft, mount.
import { createRoot } from 'react-dom/client';
import '@xyflow/react/dist/style.css';
import './styles.css';
import type { StudioApi } from '../../core/api';
import { connectStudio } from './api/pick';
import { createStudio, StudioProvider } from './app/studio-context';
import { App } from './app/App';
import { formatHash, parseHash } from './stores/session-store';
import { readDraft, startAutosave } from './autosave';

const root = createRoot(document.getElementById('root')!);
try {
  const connection = connectStudio(window as unknown as { studio?: StudioApi; location: Location });
  const studio = createStudio(connection, window.localStorage, window.location.hash);
  studio.session.subscribe((s) => {
    const hash = formatHash(s.view, s.activeRunId);
    if (window.location.hash !== hash) window.history.replaceState(null, '', hash);
  });
  // An address typed or pasted by hand (#/monitor/RUN_ID) moves the page there.
  window.addEventListener('hashchange', () => {
    const { view, activeRunId } = parseHash(window.location.hash);
    studio.session.setState(activeRunId ? { view, activeRunId } : { view });
  });
  const draft = readDraft(window.localStorage);
  if (draft) {
    studio.graph.getState().load(draft.pipeline, { resetHistory: true });
    studio.session.getState().notify(`Restored the autosaved draft from ${new Date(draft.savedAt).toLocaleString()}`);
  }
  const stopAutosave = startAutosave(studio.graph, window.localStorage);
  window.addEventListener('beforeunload', stopAutosave);
  root.render(<StudioProvider studio={studio}><App /></StudioProvider>);
} catch (error) {
  root.render(<div className="fatal" role="alert">Sparse Studio cannot start: {(error as Error).message}</div>);
}

// Template gallery: the first screen on an empty canvas. Templates come from the service
// (listTemplates/getTemplate), so the CLI and the studio offer the same files.
import { useEffect, useState } from 'react';
import type { TemplateSummary } from '../../../core/api';
import { useStudio } from '../app/studio-context';

export function TemplateGallery({ onClose }: { onClose?: () => void }) {
  const { connection, graph, session } = useStudio();
  const [templates, setTemplates] = useState<TemplateSummary[] | null>(null);
  const [error, setError] = useState('');
  useEffect(() => {
    connection.api.listTemplates().then(setTemplates, (e: Error) => setError(`could not list templates: ${e.message}`));
  }, [connection]);

  const open = async (t: TemplateSummary) => {
    try {
      const pipeline = await connection.api.getTemplate(t.id);
      graph.getState().load(pipeline);
      session.getState().notify(`Opened template “${t.name}”`);
      onClose?.();
    } catch (e) {
      session.getState().notify(`could not open template ${t.id}: ${(e as Error).message}`, 'error');
    }
  };

  return (
    <section className="gallery" aria-label="templates">
      <div className="gallery-head">
        <h2>Start from a template</h2>
        <p className="muted">Each template is a complete pipeline you can run as is, or change. Or drag nodes from the palette to start from scratch.</p>
        {onClose
          ? <button className="ghost" onClick={onClose} aria-label="close templates">Close</button>
          : <button onClick={() => session.getState().startFromScratch()} aria-label="start from scratch">Start from scratch</button>}
      </div>
      {error && <p className="field-error" role="alert">{error}</p>}
      {!templates && !error && <p className="muted">Loading templates…</p>}
      <div className="cards">
        {templates?.map((t) => (
          <button key={t.id} className="card" onClick={() => void open(t)} aria-label={t.name}>
            <span className="card-title">{t.name}</span>
            <span className="card-body">{t.description}</span>
            <code className="card-id">{t.id}</code>
          </button>
        ))}
      </div>
    </section>
  );
}

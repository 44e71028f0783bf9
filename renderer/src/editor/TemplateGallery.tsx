// Template gallery: the first screen on an empty canvas. Templates come from the service
// (listTemplates/getTemplate), so the CLI and the studio offer the same files.
import { useEffect, useRef, useState } from 'react';
import type { TemplateSummary } from '../../../core/api';
import { useStudio } from '../app/studio-context';
import { selectIsEditedDraft } from '../stores/graph-store';

export function TemplateGallery({ onClose }: { onClose?: () => void }) {
  const { connection, graph, session } = useStudio();
  const [templates, setTemplates] = useState<TemplateSummary[] | null>(null);
  const [error, setError] = useState('');
  useEffect(() => {
    connection.api.listTemplates().then(setTemplates, (e: Error) => setError(`could not list templates: ${e.message}`));
  }, [connection]);

  // Escape closes the gallery (when there is a pipeline to go back to), or the question first.
  const [asking, setAsking] = useState<TemplateSummary | null>(null);
  const keep = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key !== 'Escape') return;
      if (asking) setAsking(null); else onClose?.();
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [asking, onClose]);
  useEffect(() => { if (asking) keep.current?.focus(); }, [asking]);

  /** Opening a template over an edited draft asks first. */
  const pick = (t: TemplateSummary) => {
    if (selectIsEditedDraft(graph.getState())) setAsking(t); else void open(t);
  };

  const open = async (t: TemplateSummary) => {
    setAsking(null);
    try {
      const pipeline = await connection.api.getTemplate(t.id);
      graph.getState().load(pipeline, { pristine: true });
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
      {asking && (
        <div className="confirm" role="alertdialog" aria-modal="true" aria-label="replace the current pipeline" aria-describedby="confirm-text">
          <p id="confirm-text">Open “{asking.name}” in place of “{graph.getState().pipeline.info.name || 'the current pipeline'}”? Your edits are not saved in a file; Undo brings them back.</p>
          <div className="confirm-actions">
            <button ref={keep} onClick={() => setAsking(null)}>Keep editing</button>
            <button className="primary" onClick={() => void open(asking)}>Open template</button>
          </div>
        </div>
      )}
      {!templates && !error && <p className="muted">Loading templates…</p>}
      <div className="cards">
        {templates?.map((t) => (
          <button key={t.id} className="card" onClick={() => pick(t)} aria-label={t.name}>
            <span className="card-title">{t.name}</span>
            <span className="card-body">{t.description}</span>
            <code className="card-id">{t.id}</code>
          </button>
        ))}
      </div>
    </section>
  );
}

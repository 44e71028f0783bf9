// "Attach run folder…": follow a run folder another process writes (an exported PyTorch
// project's train.py, a mounted or synced cluster folder). The page names it by path (the
// service resolves a relative path against its working folder and, under `serve`, reads only
// its own folders); the run joins the list and opens in the monitor.
import { useState, type FormEvent } from 'react';
import { useStudio } from '../app/studio-context';

export function AttachRunForm() {
  const { connection, runs, session } = useStudio();
  const [open, setOpen] = useState(false);
  const [path, setPath] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const dir = path.trim();
    if (!dir) { setError('name a run folder'); return; }
    setBusy(true);
    setError('');
    try {
      const { runId } = await connection.api.attachRun(dir);
      await runs.getState().refresh();
      setOpen(false);
      setPath('');
      session.getState().notify(`Attached ${dir} as ${runId}`);
      session.getState().followRun(runId);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };

  if (!open) return <button onClick={() => setOpen(true)} aria-label="attach run folder">Attach run folder…</button>;
  return (
    <form className="attach-run" role="search" aria-label="attach a run folder" onSubmit={(e) => void submit(e)}>
      <input type="text" aria-label="run folder path" placeholder="path of a run folder (runs/…, an export's out folder)" value={path} autoFocus
        onChange={(e) => setPath(e.target.value)} spellCheck={false} size={48} />
      <button type="submit" disabled={busy} aria-label="attach">{busy ? 'Attaching…' : 'Attach'}</button>
      <button type="button" onClick={() => { setOpen(false); setError(''); }} aria-label="cancel attach">Cancel</button>
      {error && <span className="field-error" role="alert">{error}</span>}
    </form>
  );
}

/** Stops following an attached run (its folder stays as it is). */
export function DetachRunButton({ runId }: { runId: string }) {
  const { connection, runs, session } = useStudio();
  const detach = async () => {
    try {
      await connection.api.detachRun(runId);
      await runs.getState().refresh();
    } catch (err) {
      session.getState().notify(`could not detach ${runId}: ${(err as Error).message}`, 'error');
    }
  };
  return <button onClick={() => void detach()} aria-label={`detach ${runId}`}>Detach</button>;
}

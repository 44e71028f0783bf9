// Double-click on the canvas: type to filter node kinds, Enter adds the first match.
import { useMemo, useState, type CSSProperties } from 'react';
import { NODE_KINDS, type NodeKind } from '../../../core/schema';
import { NODE_SPECS } from '../../../core/nodes';

export function NodeSearch({ style, onPick, onClose }: { style: CSSProperties; onPick(kind: NodeKind): void; onClose(): void }) {
  const [query, setQuery] = useState('');
  const matches = useMemo(() => {
    const q = query.trim().toLowerCase();
    if (!q) return [...NODE_KINDS];
    // Names first; descriptions only when no name matches ("sparse" finds replace).
    const byName = NODE_KINDS.filter((k) => k.includes(q) || NODE_SPECS[k].label.toLowerCase().includes(q));
    return byName.length ? byName : NODE_KINDS.filter((k) => NODE_SPECS[k].description.toLowerCase().includes(q));
  }, [query]);
  return (
    <div className="node-search" style={style} role="dialog" aria-label="add node" onDoubleClick={(e) => e.stopPropagation()}>
      <input
        autoFocus
        aria-label="search node kinds"
        placeholder="Add node…"
        value={query}
        onChange={(e) => setQuery(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === 'Escape') onClose();
          if (e.key === 'Enter' && matches.length) onPick(matches[0]);
          e.stopPropagation();
        }}
        onBlur={() => setTimeout(onClose, 150)}
      />
      <ul role="listbox" aria-label="node kinds">
        {matches.map((kind) => (
          <li key={kind} role="option" aria-selected={false} aria-label={kind} onMouseDown={(e) => { e.preventDefault(); onPick(kind); }}>
            <span className={`dot kind-${kind}`} /> <b>{kind}</b> <span className="muted">{NODE_SPECS[kind].description}</span>
          </li>
        ))}
        {!matches.length && <li className="muted">no node kind matches “{query}”</li>}
      </ul>
    </div>
  );
}

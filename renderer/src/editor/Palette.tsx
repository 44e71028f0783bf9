// Node kinds from the registry: drag one onto the canvas, or click to add it beside the selection.
import { NODE_KINDS } from '../../../core/schema';
import { NODE_SPECS } from '../../../core/nodes';
import { useStudio } from '../app/studio-context';
import { NODE_DRAG_TYPE } from './Canvas';

export function Palette() {
  const { graph } = useStudio();
  const addBeside = (kind: (typeof NODE_KINDS)[number]) => {
    const { pipeline, selection } = graph.getState();
    const anchor = selection.length ? pipeline.layout?.nodes[selection[selection.length - 1]] : undefined;
    const count = pipeline.nodes.length;
    graph.getState().addNode(kind, anchor ? { x: anchor.x + 250, y: anchor.y } : { x: (count % 5) * 250, y: Math.floor(count / 5) * 130 });
  };
  return (
    <nav className="palette" aria-label="node palette">
      <h2 className="panel-title">Nodes</h2>
      {NODE_KINDS.map((kind) => (
        <button
          key={kind}
          className={`palette-item kind-${kind}`}
          draggable
          aria-label={kind}
          title={`${NODE_SPECS[kind].description} Drag onto the canvas, or click to add.`}
          onDragStart={(e) => { e.dataTransfer.setData(NODE_DRAG_TYPE, kind); e.dataTransfer.effectAllowed = 'copy'; }}
          onClick={() => addBeside(kind)}
        >
          <span className={`dot kind-${kind}`} />
          <span className="palette-name">{kind}</span>
          <span className="palette-label">{NODE_SPECS[kind].label}</span>
        </button>
      ))}
      <p className="hint">Drag a node onto the canvas, or double-click the canvas to search.</p>
    </nav>
  );
}

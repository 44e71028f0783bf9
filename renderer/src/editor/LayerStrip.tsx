// The model's layers after the selected node (or after the whole pipeline): which are dense
// or block-sparse, and which are frozen or trainable (core/order.ts modelStateAfter, which
// applies each node as core/model-state.ts says: the same code the runner uses).
import { useMemo } from 'react';
import { executionOrder, modelStateAfter } from '../../../core/order';
import type { LayerState } from '../../../core/model-state';
import { selectPipeline, selectSelection } from '../stores/graph-store';
import { useGraph } from '../app/studio-context';

export function LayerStrip() {
  const pipeline = useGraph(selectPipeline);
  const selection = useGraph(selectSelection);
  const view = useMemo(() => {
    try {
      const order = executionOrder(pipeline);
      const at = selection.length === 1 ? selection[0] : order[order.length - 1];
      if (!at) return { error: 'Add a model node to see its layers.' };
      const layers = modelStateAfter(pipeline, at);
      return { at, layers, whole: selection.length !== 1 };
    } catch (error) {
      return { error: (error as Error).message };
    }
  }, [pipeline, selection]);

  if ('error' in view) return <section className="layer-strip" aria-label="layer strip"><p className="hint">{view.error}</p></section>;
  return (
    <section className="layer-strip" aria-label="layer strip">
      <div className="strip-title">
        <span>Model state after <b>{view.at}</b>{view.whole ? ' (end)' : ''}</span>
        <span className="legend">
          <span><i className="sw dense" />dense</span><span><i className="sw sparse" />block-sparse</span>
          <span><i className="sw trainable" />trainable</span><span><i className="sw frozen" />frozen</span>
        </span>
      </div>
      <ol className="layers">
        {view.layers!.map((layer, i) => <LayerCell key={i} index={i + 1} layer={layer} />)}
      </ol>
    </section>
  );
}

function LayerCell({ index, layer }: { index: number; layer: LayerState }) {
  const trainable = layer.trainable.length > 0;
  const label = `layer ${index}: ${layer.attention === 'sparse' ? 'block-sparse' : 'dense'}, ${trainable ? `trainable ${layer.trainable.join(' ')}` : 'frozen'}`;
  return (
    <li className={`layer ${layer.attention} ${trainable ? 'trainable' : 'frozen'}`} aria-label={label} title={label + (layer.replacedBy ? ` (by ${layer.replacedBy})` : '')}>
      <span className="layer-n">{index}</span>
      <span className="layer-attn">{layer.attention === 'sparse' ? 'sparse' : 'dense'}</span>
      <span className="layer-train">{trainable ? layer.trainable.join(' ') : 'frozen'}</span>
    </li>
  );
}

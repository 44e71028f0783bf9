// A frame behind each stage's nodes: the stage's number and name, and after a run of this
// pipeline the last verdict of its gate. Drawn in the viewport, under the edges and nodes.
import { ViewportPortal } from '@xyflow/react';
import { selectPipeline } from '../stores/graph-store';
import { useGraph, useMonitor } from '../app/studio-context';
import { FRAME_HEAD, stageFrames } from './stage-layout';

export function StageFrames() {
  const pipeline = useGraph(selectPipeline);
  const runPipeline = useMonitor((s) => s.pipeline);
  const runStages = useMonitor((s) => s.data.stages);
  useMonitor((s) => s.version);
  const frames = stageFrames(pipeline);
  return (
    <ViewportPortal>
      {frames.map((f) => {
        // Only a run of the same graph speaks for this stage: same Train and Gate node ids.
        const sameGraph = !!runPipeline?.nodes.some((n) => n.id === f.train) && (!f.gate || runPipeline.nodes.some((n) => n.id === f.gate));
        const span = sameGraph ? [...runStages].reverse().find((s) => s.stage === f.index && s.node === f.train) : undefined;
        const verdict = span?.verdicts[span.verdicts.length - 1];
        return (
          <div key={f.index} className="stage-frame" role="group" aria-label={`stage ${f.index + 1} ${f.name}`}
            style={{ transform: `translate(${f.x}px, ${f.y}px)`, width: f.width, height: f.height }}>
            <div className="stage-frame-head" style={{ height: FRAME_HEAD }}>
              <span className="stage-frame-n">Stage {f.index + 1}</span>
              <span className="stage-frame-name">{f.name}</span>
              {verdict && (
                <span className={`stage-frame-verdict ${verdict.passed ? 'pass' : 'fail'}`} aria-label={`gate verdict ${verdict.node}`}>
                  {verdict.passed ? '✓ gate passed' : `✗ gate failed → ${verdict.action}`}
                </span>
              )}
              {!verdict && span && span.status !== 'running' && <span className={`stage-frame-verdict ${span.status}`}>{span.status}</span>}
            </div>
          </div>
        );
      })}
    </ViewportPortal>
  );
}

// Right panel: the selected node's form (one widget per field spec, defaults from the
// registry, errors under fields), or the pipeline's own settings when nothing is selected.
import { useState, useEffect } from 'react';
import type { FieldSpec } from '../../../core/nodes';
import { INDEXER_WARMUP_FIELD, MASK_FIELDS, NODE_SPECS } from '../../../core/nodes';
import type { ValidationProblem } from '../../../core/api';
import type { PipelineNode } from '../../../core/schema';
import { selectPipeline, selectRevision, selectSelection } from '../stores/graph-store';
import { selectPreflight } from '../stores/session-store';
import { formatBytes } from './graph-view';
import { useGraph, useSession, useStudio } from '../app/studio-context';
import { Field, FieldRow, NumberInput } from './fields';
import { MaskHeatmap } from './MaskHeatmap';
import { AttentionAnalysis, MaskBoundLine } from './AttentionAnalysis';
import { useValidation } from './use-validation';
import { effectiveSeed, seedUses } from '../../../core/seeds';

/** Problems whose path is `prefix` or lies under it. */
export function problemsAt(problems: ValidationProblem[], prefix: string): string[] {
  return problems.filter((p) => p.path === prefix || p.path.startsWith(prefix + '.') || p.path.startsWith(prefix + '[')).map((p) => p.message);
}

export function Inspector() {
  const pipeline = useGraph(selectPipeline);
  const selection = useGraph(selectSelection);
  const problems = useValidation();
  if (selection.length > 1) {
    return <aside className="inspector" aria-label="inspector"><h2 className="panel-title">{selection.length} nodes selected</h2><p className="hint">Copy, delete or move them together.</p></aside>;
  }
  const index = pipeline.nodes.findIndex((n) => n.id === selection[0]);
  if (index < 0) return <aside className="inspector" aria-label="inspector"><PipelineSettings problems={problems} /></aside>;
  return <aside className="inspector" aria-label="inspector"><NodeForm key={pipeline.nodes[index].id} node={pipeline.nodes[index]} index={index} problems={problems} /></aside>;
}

function NodeForm({ node, index, problems }: { node: PipelineNode; index: number; problems: ValidationProblem[] }) {
  const { graph } = useStudio();
  const spec = NODE_SPECS[node.kind];
  const base = `nodes[${index}]`;
  const mine = problems.filter((p) => p.node === node.id || p.path.startsWith(base + '.') || p.path.startsWith(base + '['));
  const paramsPrefix = `${base}.params`;
  const other = mine.filter((p) => !p.path.startsWith(paramsPrefix + '.'));
  const fields = spec.fields as Record<string, FieldSpec>;
  const params = node.params as unknown as Record<string, unknown>;
  const pipelineSeed = useGraph((s) => selectPipeline(s).seed);
  return (
    <div className="node-form" aria-label={`${node.kind} settings`}>
      <div className="form-head">
        <span className={`dot kind-${node.kind}`} />
        <h2 className="panel-title">{spec.label}</h2>
        <code className="kind-tag">{node.kind}</code>
      </div>
      <p className="hint">{spec.description}</p>
      <IdField id={node.id} />
      <div className="field">
        <div className="field-label"><span>Label</span><code className="field-name">label</code></div>
        <input type="text" aria-label="label" value={node.label ?? ''} placeholder="(optional)" onChange={(e) => graph.getState().setLabel(node.id, e.target.value)} />
      </div>
      {other.map((p, i) => <div key={i} className="field-error" role="alert">{p.message}</div>)}
      <PreflightDetails nodeId={node.id} />
      {Object.entries(fields).map(([name, fieldSpec]) => {
        if (fieldSpec.type === 'mask') {
          const mask = params.mask as Record<string, unknown>;
          return (
            <fieldset key={name} className="mask-fields" aria-label="mask">
              <legend>Mask</legend>
              {Object.entries(MASK_FIELDS as Record<string, FieldSpec>).map(([m, mSpec]) => (
                <div key={m}>
                  <Field name={m} spec={mSpec} value={mask?.[m]}
                    errors={problemsAt(problems, `${paramsPrefix}.mask.${m}`)}
                    onChange={(v, path = []) => graph.getState().setParam(node.id, ['mask', m, ...path], v)} />
                  {m === 'random_seed' && <SeedNote own={mask?.[m]} pipelineSeed={pipelineSeed} />}
                </div>
              ))}
              {(mask?.selector === 'indexer' || (mask?.indexer_warmup_steps ?? null) !== null) && (
                <FieldRow name="indexer_warmup_steps" spec={INDEXER_WARMUP_FIELD}
                  errors={problemsAt(problems, `${paramsPrefix}.mask.indexer_warmup_steps`)}>
                  {/* Empty text clears the field (null): the warm-up KL throughout. */}
                  <NumberInput label="indexer_warmup_steps" value={mask?.indexer_warmup_steps ?? null} spec={INDEXER_WARMUP_FIELD}
                    onChange={(v) => graph.getState().setParam(node.id, ['mask', 'indexer_warmup_steps'], v === '' ? null : v)} />
                </FieldRow>
              )}
            </fieldset>
          );
        }
        return (
          <div key={name}>
            <Field name={name} spec={fieldSpec} value={params[name]}
              errors={problemsAt(problems, `${paramsPrefix}.${name}`)}
              onChange={(v, path = []) => graph.getState().setParam(node.id, [name, ...path], v)} />
            {node.kind === 'dataset' && name === 'seed' && <SeedNote own={params[name]} pipelineSeed={pipelineSeed} />}
          </div>
        );
      })}
      {node.kind === 'replace' && Array.isArray(node.params.layers) && (
        <MaskHeatmap mask={{ ...node.params.mask, random_seed: effectiveSeed(Number(node.params.mask.random_seed) || 0, pipelineSeed) }} layer={Number(node.params.layers[0]) || 1} />
      )}
      {node.kind === 'replace' && <MaskBoundLine node={node} />}
      {(node.kind === 'model' || node.kind === 'replace') && <AttentionAnalysis node={node} />}
    </div>
  );
}

function IdField({ id }: { id: string }) {
  const { graph } = useStudio();
  const [text, setText] = useState(id);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => { setText(id); setError(null); }, [id]);
  const commit = () => setError(graph.getState().renameNode(id, text.trim()));
  return (
    <div className={`field${error ? ' has-error' : ''}`}>
      <div className="field-label"><span>Node id</span><code className="field-name">id</code></div>
      <input type="text" aria-label="id" value={text} spellCheck={false}
        onChange={(e) => setText(e.target.value)} onBlur={commit} onKeyDown={(e) => { if (e.key === 'Enter') commit(); }} />
      {error && <div className="field-error" role="alert">{error}</div>}
    </div>
  );
}

const SEED_SPEC: FieldSpec = { type: 'integer', label: 'Seed', min: 0, max: 4294967295, step: 1, help: 'Seed of initialisation, data order and random mask blocks; a node seed other than 0 overrides it for that node.' };

/** Under a node's own seed: whether it follows the pipeline seed or overrides it. */
function SeedNote({ own, pipelineSeed }: { own: unknown; pipelineSeed: number }) {
  const value = Number(own);
  return (
    <p className="hint seed-note" aria-label="seed note">
      {value === 0 ? `0 follows the pipeline seed (now ${pipelineSeed}).` : `Overrides the pipeline seed (${pipelineSeed}) for this node.`}
    </p>
  );
}

/** What the pipeline seed controls, node by node, and where a node seed overrides it. */
function SeedUses() {
  const pipeline = useGraph(selectPipeline);
  const uses = seedUses(pipeline);
  if (uses.length === 0) return <p className="hint">Nothing in this pipeline is random.</p>;
  return (
    <ul className="seed-uses" aria-label="what the seeds control">
      {uses.map((u) => (
        <li key={u.nodeId + u.what}>
          <code>{u.nodeId}</code> {u.what}: {u.follows ? <>pipeline seed <b>{u.effective}</b></> : <>own seed <b>{u.effective}</b> (overrides)</>}
        </li>
      ))}
    </ul>
  );
}
const BACKEND_SPEC: FieldSpec = { type: 'enum', label: 'Backend', options: ['auto', 'cpu', 'cuda'], help: "Preferred backend; the CLI's --backend overrides it." };

function PipelineSettings({ problems }: { problems: ValidationProblem[] }) {
  const { graph } = useStudio();
  const pipeline = useGraph(selectPipeline);
  const top = problems.filter((p) => !p.path.startsWith('nodes') && !p.path.startsWith('links'));
  return (
    <div className="node-form" aria-label="pipeline settings">
      <h2 className="panel-title">Pipeline</h2>
      <p className="hint">Select a node to edit it. These settings belong to the whole pipeline.</p>
      {(['name', 'author', 'description'] as const).map((k) => (
        <div className="field" key={k}>
          <div className="field-label"><span>{k[0].toUpperCase() + k.slice(1)}</span><code className="field-name">info.{k}</code></div>
          {k === 'description'
            ? <textarea aria-label={`info.${k}`} value={pipeline.info[k]} rows={4} onChange={(e) => graph.getState().setInfo({ [k]: e.target.value })} />
            : <input type="text" aria-label={`info.${k}`} value={pipeline.info[k]} onChange={(e) => graph.getState().setInfo({ [k]: e.target.value })} />}
        </div>
      ))}
      <FieldRow name="seed" spec={SEED_SPEC} errors={problemsAt(problems, 'seed')}>
        <NumberInput label="seed" value={pipeline.seed} spec={SEED_SPEC} onChange={(v) => setTop(graph, 'seed', v)} />
      </FieldRow>
      <SeedUses />
      <Field name="backend" spec={BACKEND_SPEC} value={pipeline.backend} errors={problemsAt(problems, 'backend')} onChange={(v) => setTop(graph, 'backend', v)} />
      {top.filter((p) => p.path !== 'seed' && p.path !== 'backend').map((p, i) => <div key={i} className="field-error" role="alert">{p.path}: {p.message}</div>)}
    </div>
  );
}

function setTop(graph: ReturnType<typeof useStudio>['graph'], key: 'seed' | 'backend', value: unknown) {
  graph.getState().setTop(key, value);
}

/** What the last preflight said about this node, in full (the node itself shows one line). */
function PreflightDetails({ nodeId }: { nodeId: string }) {
  const report = useSession(selectPreflight);
  const fresh = useSession((s) => s.preflightRevision) === useGraph(selectRevision);
  if (!report) return null;
  const note = report.notes[nodeId];
  const bytes = report.memoryBytes[nodeId];
  const problems = report.problems.filter((p) => p.node === nodeId);
  if (!note && bytes === undefined && problems.length === 0) return null;
  return (
    <section className="preflight-details" aria-label="preflight of this node">
      <div className="field-label"><span>Preflight{fresh ? '' : ' (before your last edit)'}</span></div>
      {note && <p className="hint">{note}</p>}
      {bytes !== undefined && <p className="hint">Estimated peak memory {formatBytes(bytes)}</p>}
      {problems.map((p, i) => <div key={i} className="field-error" role="alert">{p.message}</div>)}
    </section>
  );
}

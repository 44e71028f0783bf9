// Inspector widgets, one per FieldType of core/nodes.ts. Each input's accessible name is the
// field's name as written in the schema ("lr", "block_size", "curriculum[0].seq_len").
// Numbers that do not parse are stored as typed text, so the validator (not the widget)
// reports them, at the same path the CLI would.
import { useEffect, useState, type ReactNode } from 'react';
import type { FieldSpec } from '../../../core/nodes';
import { GATE_METRICS } from '../../../core/schema';

export interface FieldProps<T = unknown> {
  name: string;
  spec: FieldSpec;
  value: T;
  errors: string[];
  onChange(value: unknown, path?: (string | number)[]): void;
}

export function FieldRow({ name, spec, errors, children }: { name: string; spec: FieldSpec; errors: string[]; children: ReactNode }) {
  return (
    <div className={`field${errors.length ? ' has-error' : ''}`} title={spec.help}>
      <div className="field-label">
        <span>{spec.label}</span>
        <code className="field-name">{name}</code>
      </div>
      <div className="field-input">{children}{spec.unit && <span className="unit">{spec.unit}</span>}</div>
      {errors.map((e, i) => <div key={i} className="field-error" role="alert" aria-label={`${name} error`}>{e}</div>)}
    </div>
  );
}

/** A number input that keeps what the person typed while it does not parse. */
export function NumberInput({ label, value, spec, onChange }: { label: string; value: unknown; spec?: FieldSpec; onChange(v: unknown): void }) {
  const [text, setText] = useState(String(value ?? ''));
  useEffect(() => {
    // Follow outside changes (undo, template load) but not our own keystrokes.
    if (parseNumber(text) !== value) setText(String(value ?? ''));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [value]);
  return (
    <input
      type="number"
      aria-label={label}
      value={text}
      min={spec?.min}
      max={spec?.max === Infinity ? undefined : spec?.max}
      step={spec?.step ?? 'any'}
      placeholder={spec?.optional ? 'default' : undefined}
      onChange={(e) => {
        setText(e.target.value);
        const parsed = parseNumber(e.target.value);
        // An optional field left empty is left out of the file (its default applies).
        onChange(parsed ?? (spec?.optional && e.target.value.trim() === '' ? undefined : e.target.value));
      }}
    />
  );
}

function parseNumber(text: string): number | undefined {
  if (text.trim() === '') return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}

export function Field({ name, spec, value, errors, onChange }: FieldProps) {
  switch (spec.type) {
    case 'number':
    case 'integer':
      if (spec.options) {
        return (
          <FieldRow name={name} spec={spec} errors={errors}>
            <select aria-label={name} value={String(value)} onChange={(e) => onChange(Number(e.target.value))}>
              {spec.options.map((o) => <option key={o} value={o}>{o}</option>)}
            </select>
          </FieldRow>
        );
      }
      return <FieldRow name={name} spec={spec} errors={errors}><NumberInput label={name} value={value} spec={spec} onChange={onChange} /></FieldRow>;
    case 'boolean':
      return (
        <FieldRow name={name} spec={spec} errors={errors}>
          <input type="checkbox" aria-label={name} checked={value === true} onChange={(e) => onChange(e.target.checked)} />
        </FieldRow>
      );
    case 'enum':
      return (
        <FieldRow name={name} spec={spec} errors={errors}>
          <select aria-label={name} value={String(value ?? (spec.optional ? spec.options?.[0] : value))} onChange={(e) => onChange(e.target.value)}>
            {(spec.options ?? []).map((o) => <option key={o} value={o}>{o}</option>)}
          </select>
        </FieldRow>
      );
    case 'layers':
      return <FieldRow name={name} spec={spec} errors={errors}><LayerRange name={name} value={value} onChange={onChange} /></FieldRow>;
    case 'layers_or_all': {
      const all = value === 'all';
      return (
        <FieldRow name={name} spec={spec} errors={errors}>
          <label className="inline"><input type="checkbox" aria-label={`${name} all`} checked={all} onChange={(e) => onChange(e.target.checked ? 'all' : [1, 1])} /> all</label>
          {!all && <LayerRange name={name} value={value} onChange={onChange} />}
        </FieldRow>
      );
    }
    case 'kinds': {
      const chosen = Array.isArray(value) ? (value as string[]) : [];
      const options = spec.options ?? [];
      return (
        <FieldRow name={name} spec={spec} errors={errors}>
          <div className="chips" role="group" aria-label={name}>
            {options.map((o) => (
              <label key={o} className={`chip${chosen.includes(o) ? ' on' : ''}`}>
                <input type="checkbox" aria-label={`${name} ${o}`} checked={chosen.includes(o)}
                  onChange={(e) => onChange(e.target.checked ? options.filter((k) => k === o || chosen.includes(k)) : chosen.filter((k) => k !== o))} />
                {o}
              </label>
            ))}
          </div>
        </FieldRow>
      );
    }
    case 'curriculum':
      return <FieldRow name={name} spec={spec} errors={errors}><Curriculum name={name} value={value} onChange={onChange} /></FieldRow>;
    case 'checks':
      return <FieldRow name={name} spec={spec} errors={errors}><Checks name={name} value={value} onChange={onChange} /></FieldRow>;
    default:
      return (
        <FieldRow name={name} spec={spec} errors={errors}>
          <input type="text" aria-label={name} value={String(value ?? '')} spellCheck={false} onChange={(e) => onChange(e.target.value)} />
        </FieldRow>
      );
  }
}

function LayerRange({ name, value, onChange }: { name: string; value: unknown; onChange(v: unknown, path?: (string | number)[]): void }) {
  const range = Array.isArray(value) ? value : [1, 1];
  return (
    <span className="range">
      <NumberInput label={`${name} first`} value={range[0]} onChange={(v) => onChange(v, [0])} />
      <span className="muted">to</span>
      <NumberInput label={`${name} last`} value={range[1]} onChange={(v) => onChange(v, [1])} />
    </span>
  );
}

function Curriculum({ name, value, onChange }: { name: string; value: unknown; onChange(v: unknown, path?: (string | number)[]): void }) {
  const rows = Array.isArray(value) ? (value as { from_step: unknown; seq_len: unknown }[]) : [];
  return (
    <div className="table-field">
      <div className="table-head"><span>from step</span><span>seq_len</span><span /></div>
      {rows.map((row, i) => (
        <div key={i} className="table-row">
          <NumberInput label={`${name}[${i}].from_step`} value={row.from_step} onChange={(v) => onChange(v, [i, 'from_step'])} />
          <NumberInput label={`${name}[${i}].seq_len`} value={row.seq_len} onChange={(v) => onChange(v, [i, 'seq_len'])} />
          <button className="icon" aria-label={`remove ${name}[${i}]`} onClick={() => onChange(rows.filter((_, j) => j !== i))}>×</button>
        </div>
      ))}
      <button className="small" aria-label={`add ${name} entry`} onClick={() => {
        const last = rows[rows.length - 1];
        onChange([...rows, { from_step: Number(last?.from_step ?? -100) + 100, seq_len: Number(last?.seq_len ?? 64) * 2 }]);
      }}>+ length step</button>
    </div>
  );
}

function Checks({ name, value, onChange }: { name: string; value: unknown; onChange(v: unknown, path?: (string | number)[]): void }) {
  const rows = Array.isArray(value) ? (value as { metric: string; op: string; threshold: unknown }[]) : [];
  return (
    <div className="table-field">
      {rows.map((row, i) => (
        <div key={i} className="table-row checks-row">
          <select aria-label={`${name}[${i}].metric`} value={row.metric} onChange={(e) => onChange(e.target.value, [i, 'metric'])}>
            {GATE_METRICS.map((m) => <option key={m} value={m}>{m}</option>)}
          </select>
          <select aria-label={`${name}[${i}].op`} value={row.op} onChange={(e) => onChange(e.target.value, [i, 'op'])}>
            {['<', '<=', '>', '>='].map((o) => <option key={o} value={o}>{o}</option>)}
          </select>
          <NumberInput label={`${name}[${i}].threshold`} value={row.threshold} onChange={(v) => onChange(v, [i, 'threshold'])} />
          <button className="icon" aria-label={`remove ${name}[${i}]`} onClick={() => onChange(rows.filter((_, j) => j !== i))}>×</button>
        </div>
      ))}
      <button className="small" aria-label={`add ${name} entry`} onClick={() => onChange([...rows, { metric: 'ppl_ratio', op: '>=', threshold: 0.95 }])}>+ check</button>
    </div>
  );
}

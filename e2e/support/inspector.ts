// Fills the studio's inspector the way a person does, field by field, driven by the node
// registry's field specs (so a new field type fails here loudly instead of being skipped).
import { expect, type Locator, type Page } from '@playwright/test';
import { MASK_FIELDS, NODE_SPECS, type FieldSpec } from '../../core/nodes';
import type { PipelineNode } from '../../core/schema';

export function inspector(page: Page): Locator {
  return page.getByRole('complementary', { name: 'inspector' });
}

const field = (root: Locator, name: string) => root.getByLabel(name, { exact: true });

async function fillNumber(root: Locator, name: string, value: unknown) {
  const input = field(root, name);
  await input.fill(String(value));
  await expect(input).toHaveValue(String(value));
}

async function fillRange(root: Locator, name: string, [first, last]: [number, number]) {
  await fillNumber(root, `${name} first`, first);
  await fillNumber(root, `${name} last`, last);
}

/** Sets one field to `value` through its widget. */
export async function setField(root: Locator, name: string, spec: FieldSpec, value: unknown): Promise<void> {
  switch (spec.type) {
    case 'number':
    case 'integer':
      if (spec.options) await field(root, name).selectOption(String(value));
      else await fillNumber(root, name, value);
      return;
    case 'boolean':
      await field(root, name).setChecked(value === true);
      return;
    case 'enum':
      await field(root, name).selectOption(String(value));
      return;
    case 'layers_or_all':
      await field(root, `${name} all`).setChecked(value === 'all');
      if (value !== 'all') await fillRange(root, name, value as [number, number]);
      return;
    case 'layers':
      await fillRange(root, name, value as [number, number]);
      return;
    case 'kinds':
      for (const option of spec.options ?? []) await field(root, `${name} ${option}`).setChecked((value as string[]).includes(option));
      return;
    case 'curriculum':
    case 'checks': {
      const rows = value as Record<string, unknown>[];
      const count = async () => root.getByRole('button', { name: new RegExp(`^remove ${name}\\[`) }).count();
      while ((await count()) > rows.length) await root.getByRole('button', { name: `remove ${name}[${(await count()) - 1}]`, exact: true }).click();
      while ((await count()) < rows.length) await root.getByRole('button', { name: `add ${name} entry`, exact: true }).click();
      for (const [i, row] of rows.entries()) {
        for (const [key, v] of Object.entries(row)) {
          const label = `${name}[${i}].${key}`;
          if (typeof v === 'number') await fillNumber(root, label, v);
          else await field(root, label).selectOption(String(v));
        }
      }
      return;
    }
    case 'mask':
      for (const [m, mSpec] of Object.entries(MASK_FIELDS as Record<string, FieldSpec>)) {
        await setField(root, m, mSpec, (value as Record<string, unknown>)[m]);
      }
      return;
    default:
      await field(root, name).fill(String(value));
  }
}

/** Fills every field of `node` that differs from its kind's defaults, plus id and label. */
export async function fillNode(page: Page, node: PipelineNode): Promise<void> {
  const root = inspector(page);
  const idInput = field(root, 'id');
  await idInput.fill(node.id);
  await idInput.press('Enter');
  await expect(page.locator(`[data-node-id="${node.id}"]`)).toBeVisible();
  if (node.label) await field(root, 'label').fill(node.label);
  const spec = NODE_SPECS[node.kind];
  const defaults = spec.defaults as unknown as Record<string, unknown>;
  for (const [name, fieldSpec] of Object.entries(spec.fields as Record<string, FieldSpec>)) {
    const value = (node.params as unknown as Record<string, unknown>)[name];
    if (JSON.stringify(value) !== JSON.stringify(defaults[name])) await setField(root, name, fieldSpec, value);
  }
}

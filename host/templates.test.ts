import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listTemplates, readTemplate } from './templates';

const dir = mkdtempSync(join(tmpdir(), 'templates-'));
const pipeline = (name: string, description = '') => JSON.stringify({ version: 1, info: { name, author: '', description }, nodes: [], links: [] });
writeFileSync(join(dir, 'b-second.json'), pipeline('Second', 'two'));
writeFileSync(join(dir, 'a-first.json'), pipeline('First'));
writeFileSync(join(dir, 'broken.json'), '{ "info": ');
writeFileSync(join(dir, 'nameless.json'), '{ "info": {} }');
writeFileSync(join(dir, 'notes.txt'), 'not a template');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('templates', () => {
  it('lists valid templates by file name with name and description, warning about broken ones', async () => {
    const warnings: string[] = [];
    const list = await listTemplates(dir, (line) => warnings.push(line));
    expect(list).toEqual([
      { id: 'a-first', name: 'First', description: '' },
      { id: 'b-second', name: 'Second', description: 'two' },
    ]);
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(/^templates: skipping broken\.json: broken\.json is not valid JSON/);
    expect(warnings[1]).toBe('templates: skipping nameless.json: info.name is missing or not a string');
  });

  it('reads one template', async () => {
    expect((await readTemplate(dir, 'b-second')).info.name).toBe('Second');
  });

  it('refuses ids that could leave the folder, and unknown ids', async () => {
    await expect(readTemplate(dir, '../electron/package')).rejects.toMatchObject({ code: 'bad_request' });
    await expect(readTemplate(dir, 'a/../../x')).rejects.toMatchObject({ code: 'bad_request' });
    await expect(readTemplate(dir, '../electron')).rejects.toMatchObject({ code: 'bad_request' });
    await expect(readTemplate(dir, 'missing')).rejects.toMatchObject({ code: 'not_found', message: 'template "missing" not found' });
    await expect(readTemplate(dir, 'broken')).rejects.toMatchObject({ code: 'bad_template' });
  });
});

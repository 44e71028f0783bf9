import { describe, expect, it } from 'vitest';
import { validityBadge } from './EditorView';

describe('the validity badge', () => {
  it('counts validation problems first, then the preflight of this pipeline', () => {
    expect(validityBadge(3, { problems: 2, fresh: true })).toMatchObject({ text: '3 problems', bad: true });
    expect(validityBadge(0, null)).toMatchObject({ text: 'valid', bad: false });
    expect(validityBadge(0, { problems: 2, fresh: true })).toMatchObject({ text: '2 preflight errors', bad: true });
    expect(validityBadge(0, { problems: 1, fresh: true })).toMatchObject({ text: '1 preflight error', bad: true });
    expect(validityBadge(0, { problems: 2, fresh: false })).toMatchObject({ text: 'valid · preflight outdated', bad: false });
    expect(validityBadge(0, { problems: 0, fresh: true })).toMatchObject({ text: 'valid · preflight passed', bad: false });
  });
});

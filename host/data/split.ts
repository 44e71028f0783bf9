// Train/validation split by document, stratified by group (Brown genre, sub-folder) and seeded:
// every group gives about the same share to validation, so the held-out text covers every genre.
import { DataError } from './errors';
import { hashString, mixSeed, permutation } from './rng';

export interface DocumentSplit {
  /** Document indices, ascending. */
  train: number[];
  validation: number[];
}

/** Checks a validation fraction (0 < x < 0.5, as core/schema.ts documents). */
export function checkValidationFraction(fraction: number): void {
  if (!(typeof fraction === 'number' && fraction > 0 && fraction < 0.5)) {
    throw new DataError('DATA_BAD_PARAMS', `dataset.validation_fraction: ${fraction} is outside (0, 0.5)`);
  }
}

/**
 * Splits documents (given by their groups) into train and validation. Each group holds out
 * round(size * fraction) documents; if that leaves validation empty, the largest group gives one.
 * With fewer than two documents nothing can be split by document: both lists come back as given
 * (validation empty) and the caller splits tokens instead.
 */
export function splitDocuments(groups: string[], fraction: number, seed: number): DocumentSplit {
  checkValidationFraction(fraction);
  const byGroup = new Map<string, number[]>();
  groups.forEach((g, i) => {
    const members = byGroup.get(g) ?? [];
    members.push(i);
    byGroup.set(g, members);
  });
  const held = new Set<number>();
  const names = [...byGroup.keys()].sort();
  for (const name of names) {
    const members = byGroup.get(name)!;
    const order = permutation(members.length, mixSeed(seed, hashString(name)));
    const take = Math.min(members.length - 1, Math.round(members.length * fraction));
    for (let i = 0; i < take; i++) held.add(members[order[i]]);
  }
  if (held.size === 0 && groups.length >= 2) {
    const largest = names.reduce((a, b) => (byGroup.get(b)!.length > byGroup.get(a)!.length ? b : a));
    const members = byGroup.get(largest)!;
    const order = permutation(members.length, mixSeed(seed, hashString(largest)));
    held.add(members[order[0]]);
  }
  const train: number[] = [];
  const validation: number[] = [];
  groups.forEach((_, i) => (held.has(i) ? validation : train).push(i));
  return { train, validation };
}

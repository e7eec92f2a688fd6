// The names of the variables in a request's header block (SCGI, uwsgi), kept
// from one request to the next. A web server sends the same names in the same
// order every time: a name found at the same place as last time is the string
// already used as a property key then, so it is neither copied out of the
// block nor looked up in V8's string table again (for a hello response that
// lookup and the copies were most of the cost of parsing the block).

/** Names past this many in a block are not kept. */
const MAX_KEPT = 256;

export class VarNames {
  readonly #names: string[] = [];

  /** The `index`th name of a block: `text` from `start` to `end` (a block decoded as Latin-1). */
  name(index: number, text: string, start: number, end: number): string {
    const known = this.#names[index];
    if (known !== undefined && known.length === end - start && text.startsWith(known, start))
      return known;
    const name = internalized(text.slice(start, end));
    if (index < MAX_KEPT) this.#names[index] = name;
    return name;
  }
}

/** The string table's own copy of `text` (a property key comes back as it), not a slice of the block. */
function internalized(text: string): string {
  return Object.keys({ [text]: 0 })[0];
}

// command-words.ts — a command line written as one string (--ready-exec 'pg_isready -h 127.0.0.1')
// split into argv the way a shell splits simple words: white space separates, '...' is literal,
// "..." keeps spaces and honours \" \\ \$ \`, a backslash outside quotes escapes the next
// character. No expansion, no pipes: for those, write sh -c '...' yourself.

/** argv of `text`; throws a message (without option name) when the quoting is broken. */
export function splitCommand(text: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      continue;
    }
    inWord = true;
    if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) throw new Error("a ' is not closed");
      word += text.slice(i + 1, end);
      i = end;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < text.length && text[j] !== '"'; j++) {
        if (text[j] === '\\' && j + 1 < text.length && '"\\$`'.includes(text[j + 1] as string)) j++;
        word += text[j];
      }
      if (j >= text.length) throw new Error('a " is not closed');
      i = j;
    } else if (c === '\\') {
      if (i + 1 >= text.length) throw new Error('it ends with a lone \\');
      word += text[++i];
    } else {
      word += c;
    }
  }
  if (inWord) words.push(word);
  return words;
}

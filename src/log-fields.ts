// log-fields.ts — a log record's own fields as `key=value` words, quoted where needed; shared
// by the journal and the terminal formats.
const OMIT = new Set(['level', 'time', 'pid', 'hostname', 'msg']);

function formatValue(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return /[\s"=]/.test(text) ? JSON.stringify(text) : text;
}

export function formatFields(record: Record<string, unknown>): string {
  return Object.entries(record)
    .filter(([key, value]) => !OMIT.has(key) && value !== undefined)
    .map(([key, value]) => `${key}=${formatValue(value)}`)
    .join(' ');
}

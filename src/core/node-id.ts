/**
 * The one rule for node ids, used wherever one is accepted (settings, the
 * system group's commands, membership): 1-63 characters of A-Z a-z 0-9 . _ -,
 * starting with a letter or digit. Never `~` (replica ids are `<node>~<gen>`).
 */
export const NODE_ID_RULE = '1-63 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit';
const NODE_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export function isNodeId(v: unknown): v is string {
  return typeof v === 'string' && NODE_ID_RE.test(v);
}

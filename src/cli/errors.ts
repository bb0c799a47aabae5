/** The CLI's two failures: a usage error (exit 2) and a command that ran and failed (exit 1). */
export class UsageError extends Error {}
export class CommandFailed extends Error {}

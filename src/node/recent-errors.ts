/** The last warnings and errors this node logged, for the dashboard (a ring of RECENT entries). */
const RECENT = 50;

export class RecentErrors {
  private readonly entries: { time: string; level: string; msg: string }[] = [];

  add(entry: { time: string; level: string; msg: string }): void {
    this.entries.push({ time: entry.time, level: entry.level, msg: entry.msg });
    if (this.entries.length > RECENT) this.entries.shift();
  }

  list(): { time: string; level: string; msg: string }[] {
    return this.entries.slice();
  }
}

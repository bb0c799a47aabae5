/** The system group's replicated state machine: SystemState behind GroupMachine, with the placement view the replicator reads. */
import type { GroupMachine } from './group';
import type { DbRecord, SystemMachine } from './replicator';
import type { MergeExport } from './system-client';
import { SystemState, type SystemResult } from './system-state';

export class SystemStateMachine implements GroupMachine, SystemMachine {
  private current = new SystemState();

  get state(): SystemState {
    return this.current;
  }

  apply(data: unknown, index: number): SystemResult {
    return this.current.apply(data, index);
  }

  snapshot(): Uint8Array {
    return this.current.snapshot();
  }

  restore(image: Uint8Array | undefined): void {
    this.current = image ? SystemState.restore(image) : new SystemState();
  }

  databases(): DbRecord[] {
    return this.current.databases();
  }

  removed(): string[] {
    return this.current.removed();
  }

  clusterId(): string | undefined {
    return this.current.clusterId();
  }

  database(name: string): DbRecord | undefined {
    return this.current.database(name);
  }

  mergeState(): { into: string | undefined; done: boolean } {
    const m = this.current.mergeState();
    return { into: m.into, done: m.done };
  }

  mergeExport(): MergeExport {
    const st = this.current;
    return {
      databases: st.databases(),
      kv: st
        .kvList()
        .filter((e) => e.session === undefined)
        .map((e) => ({ key: e.key, value: e.value })),
      token: st.lastTokenIssued(),
      sessions: st.sessions().length,
    };
  }
}

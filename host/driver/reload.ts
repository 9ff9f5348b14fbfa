// Hot reload, the Driver's side: its options and result, the reloads waiting for the worker's
// 'reloaded' answer, and what a swap leaves behind for a rollback (the old module and the state it
// saved, and the descriptor firewall's rings at the last fault). The procedure itself (the quiet
// point, the state transfer, the grace period) is described in host/reload.ts and docs/design.md
// ("Reload"); the swap runs in the worker (host/sandbox/worker.ts). Whether a fault rolls back is the
// supervisor's decision (host/driver/supervisor.ts).

import type { RingsState } from '../sandbox/ring-hook.ts';
import type { IrqWaitKind } from '../sandbox/protocol.ts';

export interface ReloadOptions {
  /** Skip the state transfer: the new module probes the device afresh. Default false. */
  fresh?: boolean;
  /** A fault of the new module within this many ms rolls back to the old module and its state. Default 1000. */
  graceMs?: number;
}

export interface ReloadResult {
  ok: boolean;
  /** Why the swap was refused (the old driver kept running untouched). */
  error?: string;
  /** Time from the quiet point to the new instance serving, measured in the worker. */
  swapMs: number;
  /** Bytes of state carried over (0 for a fresh probe). */
  stateBytes: number;
  /** True when the new module restored the old one's state, false when it probed. */
  restored: boolean;
}

/** The worker's answer to a reload (its 'reloaded' message), or the refusal a fault gives instead. */
type Reloaded = {
  ok: boolean;
  error?: string;
  swapMs: number;
  restored: boolean;
  state?: Uint8Array;
  ioSize?: number;
  gate?: { kind: 'inline' | 'instance' | 'off'; regions: number[]; irqWait: IrqWaitKind };
};

export class Reloads {
  private waiting = new Map<number, (r: Reloaded) => void>();
  /** The module (and its state) to roll back to if the new one faults within its grace period. */
  private previous?: { bytes: Uint8Array; state?: Uint8Array; until: number };
  /** The descriptor firewall's rings when the driver last faulted: a rollback restores them with the old state. */
  faultRings?: RingsState;

  /** Wait for the worker's answer to reload `id`. */
  expect(id: number, done: (r: Reloaded) => void): void {
    this.waiting.set(id, done);
  }

  /**
   * Once `ready` (the new module compiled, the register gate compiled into it in the compile process),
   * `send` posts the reload message. The old module serves every request made meanwhile: those reach
   * the worker ahead of the reload message, which the worker takes at its next quiet point; requests
   * made after it reach the new module. A failure, or a refusal `send` returns, answers reload `id`
   * before its message reached the worker, once (as the worker's answer would).
   */
  prepare<T>(name: string, id: number, ready: Promise<T>, send: (r: T) => string | undefined): void {
    const refuse = (error: string) => this.answer({ id, ok: false, error, swapMs: 0, restored: false });
    ready.then(
      (r) => {
        const refused = send(r);
        if (refused !== undefined) refuse(refused);
      },
      (err) => refuse(`${name}: ${(err as Error).message}`),
    );
  }

  /** The worker answered reload `m.id`. */
  answer(m: Reloaded & { id: number }): void {
    const done = this.waiting.get(m.id);
    this.waiting.delete(m.id);
    done?.(m);
  }

  /** A swap succeeded: a fault within `graceMs` rolls back to `bytes` and the `state` they saved. */
  keep(bytes: Uint8Array, state: Uint8Array | undefined, graceMs: number): void {
    this.previous = { bytes, state, until: Date.now() + graceMs };
  }

  /** The driver faulted: every reload still waiting for its answer is refused. */
  abandon(kind: string): void {
    for (const done of this.waiting.values())
      done({ ok: false, error: `driver faulted: ${kind}`, swapMs: 0, restored: false });
    this.waiting.clear();
  }

  /** The module to roll back to when the running one is still within its grace period; taken once. */
  takeRollback(): { bytes: Uint8Array; state?: Uint8Array } | undefined {
    const prev = this.previous;
    if (!prev || Date.now() > prev.until) return undefined;
    this.previous = undefined;
    return prev;
  }
}

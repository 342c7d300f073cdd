/**
 * The IGreedConnections service: one GreedConnection per notebook or console session,
 * the current tab's one, and the poll that asks it for stats.
 */

import { ILabShell } from '@jupyterlab/application';
import { ISessionContext } from '@jupyterlab/apputils';
import { IConsoleTracker } from '@jupyterlab/console';
import { INotebookTracker } from '@jupyterlab/notebook';
import { Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';

import { GreedConnection } from './connection';
import {
  DEFAULT_REFRESH_RATE_S,
  maxBackoffMs,
  statsDelayMs,
  statsDue
} from './logic';
import { GreedModel } from './model';
import { IGreedConnections } from './tokens';

type KernelWidget = Widget & { sessionContext: ISessionContext };

export class GreedConnections extends GreedModel implements IGreedConnections {
  constructor(options: GreedConnections.IOptions = {}) {
    super();
    this._notebooks = options.notebooks ?? null;
    this._consoles = options.consoles ?? null;
    this._labShell = options.labShell ?? null;
    const interval = options.refreshRate ?? DEFAULT_REFRESH_RATE_S * 1000;
    // Stats only for the current tab, only on a Greed kernel with the comm open, only
    // when the kernel is idle (a request never queues behind a running cell) and the
    // page is visible, and no more often than the refresh rate. A failed request
    // (an error answer, no answer) backs off.
    this._poll = new Poll<void, Error, 'standby'>({
      auto: true,
      factory: () => this._tick(),
      frequency: { interval, backoff: true, max: maxBackoffMs(interval) },
      name: 'greed-kernel-lab:stats',
      standby: () => document.visibilityState !== 'visible' || !this.active
    });

    for (const tracker of [this._notebooks, this._consoles]) {
      if (!tracker) {
        continue;
      }
      tracker.forEach(widget => this.connectionFor(widget.sessionContext));
      tracker.widgetAdded.connect(this._onWidgetAdded, this);
      tracker.currentChanged.connect(this.updateCurrent, this);
    }
    this._labShell?.currentChanged.connect(this.updateCurrent, this);
    this.changed.connect(this._onChanged, this);
    this.updateCurrent();
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  get refreshRate(): number {
    return this._poll.frequency.interval;
  }

  set refreshRate(interval: number) {
    if (this._isDisposed || interval === this.refreshRate) {
      return;
    }
    this._poll.frequency = {
      interval,
      backoff: true,
      max: maxBackoffMs(interval)
    };
    // Tick now: the next ones follow the new rate (statsDue keeps to it).
    void this._poll.refresh();
  }

  connectionFor(context: ISessionContext): GreedConnection {
    let connection = this._connections.get(context);
    if (!connection) {
      connection = new GreedConnection(context);
      this._connections.set(context, connection);
      context.disposed.connect(this._onContextDisposed, this);
    }
    return connection;
  }

  /** Follow the main area's current tab: its connection is the one shown. */
  updateCurrent(): void {
    if (this._isDisposed) {
      return;
    }
    let widget: Widget | null;
    if (this._labShell) {
      widget = this._labShell.currentWidget;
    } else {
      widget =
        this._notebooks?.currentWidget ?? this._consoles?.currentWidget ?? null;
    }
    this.current =
      this._tracked(widget) && !widget.isDisposed
        ? this.connectionFor(widget.sessionContext)
        : null;
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    // Stopping clears the timer of the next tick, which dispose() alone leaves behind.
    void this._poll.stop();
    this._poll.dispose();
    super.dispose(); // disconnects every signal this service connected to
    for (const connection of this._connections.values()) {
      connection.dispose();
    }
    this._connections.clear();
  }

  private _tracked(widget: Widget | null): widget is KernelWidget {
    return (
      !!widget &&
      ((this._notebooks?.has(widget) ?? false) ||
        (this._consoles?.has(widget) ?? false))
    );
  }

  private _onWidgetAdded(_: unknown, widget: KernelWidget): void {
    this.connectionFor(widget.sessionContext);
    this.updateCurrent();
  }

  private _onContextDisposed(context: ISessionContext): void {
    this._connections.get(context)?.dispose();
    this._connections.delete(context);
    this.updateCurrent();
  }

  /** After a cell ran: fresh stats, at once if the last are a refresh old, else when due. */
  private _onChanged(_: GreedModel, what: string): void {
    const connection = this.current;
    if (what !== 'cell' || !connection || this._poll.isDisposed) {
      return;
    }
    const wait = statsDelayMs(Date.now(), connection.statsAt, this.refreshRate);
    void this._poll.schedule({ interval: wait, phase: 'refreshed' });
  }

  private async _tick(): Promise<void> {
    // Between events, the clock moves on ("3 min ago").
    this.emitChanged('tick');
    const connection = this.current;
    if (
      connection &&
      connection.isOpen &&
      connection.kernelIdle &&
      document.visibilityState === 'visible' &&
      statsDue(
        Date.now(),
        connection.statsAt,
        this.refreshRate,
        connection.statsPending
      )
    ) {
      await connection.requestStats();
    }
  }

  private _isDisposed = false;
  private _connections = new Map<ISessionContext, GreedConnection>();
  private _notebooks: INotebookTracker | null;
  private _consoles: IConsoleTracker | null;
  private _labShell: ILabShell | null;
  private _poll: Poll<void, Error, 'standby'>;
}

export namespace GreedConnections {
  export interface IOptions {
    notebooks?: INotebookTracker | null;
    consoles?: IConsoleTracker | null;
    labShell?: ILabShell | null;
    /** The stats poll's interval (ms); the default refresh rate without one. */
    refreshRate?: number;
  }
}

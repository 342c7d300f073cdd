/**
 * Which Greed connection the status bar and the panel show: the one of the
 * notebook or console in the main area's current tab, if any.
 */

import { ISignal, Signal } from '@lumino/signaling';

import { GreedConnection } from './connection';
import { GreedEvent } from './logic';
import { IGreedModel } from './tokens';

export class GreedModel implements IGreedModel {
  /** The current tab's connection changed, or something it shows did. */
  get changed(): ISignal<this, string> {
    return this._changed;
  }

  /** An event from the current connection's kernel. */
  get received(): ISignal<this, GreedEvent> {
    return this._received;
  }

  get current(): GreedConnection | null {
    return this._current;
  }

  set current(connection: GreedConnection | null) {
    if (connection && connection.isDisposed) {
      connection = null;
    }
    if (connection === this._current) {
      return;
    }
    if (this._current) {
      this._current.changed.disconnect(this._forward, this);
      this._current.received.disconnect(this._forwardEvent, this);
    }
    this._current = connection;
    if (connection) {
      connection.changed.connect(this._forward, this);
      connection.received.connect(this._forwardEvent, this);
    }
    this._changed.emit('current');
  }

  /** Whether the status item shows: the current tab runs a Greed kernel. */
  get active(): boolean {
    return this._current !== null && this._current.isGreed;
  }

  dispose(): void {
    this.current = null;
    Signal.clearData(this);
  }

  /** Tell the views something changed (`what`: an event name, 'state', 'tick'…). */
  protected emitChanged(what: string): void {
    this._changed.emit(what);
  }

  private _forward(_: GreedConnection, what: string): void {
    this._changed.emit(what);
  }

  private _forwardEvent(_: GreedConnection, event: GreedEvent): void {
    this._received.emit(event);
  }

  private _current: GreedConnection | null = null;
  private _changed = new Signal<this, string>(this);
  private _received = new Signal<this, GreedEvent>(this);
}

/**
 * The service other plugins use: the Greed connections of the open notebooks and
 * consoles, and the one of the current tab.
 */

import { ISessionContext } from '@jupyterlab/apputils';
import { Token } from '@lumino/coreutils';
import { IDisposable } from '@lumino/disposable';
import { ISignal } from '@lumino/signaling';

import { GreedConnection } from './connection';
import { GreedEvent } from './logic';

/** The connection the current tab shows, and its changes. */
export interface IGreedModel {
  /** The current tab's connection changed ('current'), or something it shows did. */
  readonly changed: ISignal<IGreedModel, string>;
  /** An event from the current connection's kernel. */
  readonly received: ISignal<IGreedModel, GreedEvent>;
  /** The connection of the notebook or console in the current tab, if any. */
  readonly current: GreedConnection | null;
  /** Whether the current tab runs a Greed kernel. */
  readonly active: boolean;
}

/** The connections of every notebook and console, and the stats poll. */
export interface IGreedConnections extends IGreedModel, IDisposable {
  /** The connection of a session context: one per context, made on first use. */
  connectionFor(sessionContext: ISessionContext): GreedConnection;
  /**
   * How often (ms) the current connection's stats are asked for, while the page is
   * visible and the kernel idle: the `refreshRate` setting.
   */
  refreshRate: number;
}

export const IGreedConnections = new Token<IGreedConnections>(
  'greed-kernel-lab:IGreedConnections',
  'The Greed kernel connections of the open notebooks and consoles, the current one, and the stats poll.'
);

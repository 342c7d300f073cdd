/**
 * The status-bar item: the memory counted against the kernel's budget (RssAnon +
 * RssShmem) over its limit, coloured by pressure level, what is paged out, a
 * warning when the budget is not held, CUDA memory, and the last cleanup. Clicking
 * it opens the panel.
 */

import { Widget } from '@lumino/widgets';

import { ConnectionState } from './connection';
import { ITrans, Level, NO_TRANSLATION, statusView } from './logic';
import { IGreedModel } from './tokens';

const LEVELS: Level[] = ['normal', 'warning', 'danger'];

function waitingText(state: ConnectionState, trans: ITrans): string {
  switch (state) {
    case 'checking':
    case 'opening':
      return trans.__('Greed: connecting…');
    case 'waiting':
      return trans.__('Greed: waiting for the kernel…');
    case 'closed':
      return trans.__('Greed: disconnected');
    default:
      return trans.__('Greed');
  }
}

export class GreedStatus extends Widget {
  constructor(
    private _model: IGreedModel,
    onClick: () => void,
    private _trans: ITrans = NO_TRANSLATION
  ) {
    super();
    this.addClass('jp-greed-status');
    this.node.setAttribute('role', 'button');
    this.node.tabIndex = 0;
    this._dot.className = 'jp-greed-status-dot';
    this._text.className = 'jp-greed-status-text';
    this.node.append(this._dot, this._text);
    this.node.addEventListener('click', onClick);
    this.node.addEventListener('keydown', event => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        onClick();
      }
    });
    _model.changed.connect(this.update, this);
    this.update();
  }

  /** Render now (the panel's clock also calls it, so "3 min ago" moves on). */
  protected onUpdateRequest(): void {
    this.render();
  }

  render(): void {
    const connection = this._model.current;
    let text = '';
    let title = '';
    let level: Level | 'idle' = 'idle';
    let held = true;
    if (connection && connection.isGreed) {
      const stats = connection.stats;
      if (stats && connection.state === 'open') {
        const view = statusView(
          stats,
          connection.threshold,
          connection.lastCleanup,
          Date.now(),
          this._trans
        );
        text = view.text;
        title = view.title;
        level = view.level;
        held = view.held;
      } else {
        text = waitingText(connection.state, this._trans);
        title =
          connection.state === 'closed'
            ? this._trans.__(
                'The kernel closed the greed comm; it reopens after a restart'
              )
            : this._trans.__('Waiting for the Greed kernel');
      }
    }
    this._text.textContent = text;
    this.node.title = title;
    this.node.dataset.level = level;
    this.node.dataset.held = String(held);
    this.toggleClass('jp-greed-unheld', !held);
    for (const l of LEVELS) {
      this.toggleClass(`jp-greed-level-${l}`, l === level);
    }
  }

  private _dot = document.createElement('span');
  private _text = document.createElement('span');
}

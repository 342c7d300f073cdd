/**
 * The side panel: what the hello said of the previous kernel when it died, the current
 * Greed kernel's memory budget (and, when it cannot be held, what holds the memory),
 * its memory over time (src/plot.ts), its variables (sortable, with what is paged out and
 * preserve / unpreserve / read back), "Clean up now", "Optimise now" and "Read back
 * all", and the recent cleanups with what each freed and paged out.
 */

import { Widget } from '@lumino/widgets';

import { GreedConnection } from './connection';
import { GreedRequest } from './rpc';
import {
  DEFAULT_SORT,
  GreedEvent,
  ITrans,
  IReport,
  ISort,
  IVariable,
  NO_TRANSLATION,
  SortKey,
  budgetText,
  changesHistory,
  changesVariables,
  cleanupText,
  formatAgo,
  formatBytes,
  holdersText,
  holdersTitle,
  nextSort,
  pagedCell,
  recentReports,
  reportAge,
  reportPressureText,
  parseRestored,
  restoredText,
  rowActions,
  sortVariables,
  statusView,
  touchedText
} from './logic';
import { renderMemoryPlot } from './plot';
import { memoryPlot, previousKernelTitle } from './timeline';
import { IGreedModel } from './tokens';

function columns(
  trans: ITrans
): Array<{ key: SortKey; label: string; numeric?: boolean }> {
  return [
    { key: 'name', label: trans.__('Name') },
    { key: 'type', label: trans.__('Type') },
    { key: 'size', label: trans.__('Size'), numeric: true },
    { key: 'device', label: trans.__('Device') },
    { key: 'lastTouched', label: trans.__('Last touched') },
    { key: 'decision', label: trans.__('Decision') },
    { key: 'paged', label: trans.__('Paged'), numeric: true }
  ];
}

function actionLabel(
  action: 'preserve' | 'unpreserve' | 'restore',
  trans: ITrans
): string {
  switch (action) {
    case 'preserve':
      return trans.__('Preserve');
    case 'unpreserve':
      return trans.__('Unpreserve');
    default:
      return trans.__('Read back');
  }
}

/** "torch.nn.modules.container.Sequential" -> "Sequential" (the full name is the cell's title). */
function shortType(name: string): string {
  const parts = name.split('.');
  return parts[parts.length - 1] || name;
}

/** A button waits this long for its answer before it can be clicked again. */
const BUSY_MS = 30_000;
/** Events and cells that ran within this long ask for the table once. */
const REFRESH_DELAY_MS = 250;
/** The memory plot's height, and its narrowest width (px). */
const PLOT_HEIGHT = 160;
const PLOT_MIN_WIDTH = 220;

/** What the panel asks the kernel for again. */
interface IRefresh {
  vars?: boolean;
  history?: boolean;
  memory?: boolean;
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = '',
  text = ''
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text) {
    node.textContent = text;
  }
  return node;
}

export class GreedPanel extends Widget {
  constructor(
    private _model: IGreedModel,
    private _trans: ITrans = NO_TRANSLATION
  ) {
    super();
    this.id = 'greed-kernel-lab-panel';
    this.addClass('jp-greed-panel');
    this.title.caption = _trans.__('Greed kernel: variables and cleanups');
    this._columns = columns(_trans);
    _model.changed.connect(this._onChanged, this);
    _model.received.connect(this._onEvent, this);
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    window.clearTimeout(this._refreshTimer);
    this._refreshTimer = 0;
    super.dispose(); // disconnects from the model
  }

  private _onEvent(_: IGreedModel, event: GreedEvent): void {
    // What changes the variables (a cleanup, paging) changes memory and its markers.
    const vars = changesVariables(event.event);
    this._refreshSoon({
      vars,
      history: changesHistory(event.event),
      memory: vars
    });
  }

  /** Ask again after events and cells, once for a burst of them. */
  private _refreshSoon(what: IRefresh): void {
    if (!this.isVisible || (!what.vars && !what.history && !what.memory)) {
      return;
    }
    const wanted = this._refreshWanted;
    wanted.vars ||= what.vars ?? false;
    wanted.history ||= what.history ?? false;
    wanted.memory ||= what.memory ?? false;
    if (this._refreshTimer) {
      return;
    }
    this._refreshTimer = window.setTimeout(() => {
      this._refreshTimer = 0;
      const asked = { ...this._refreshWanted };
      this._refreshWanted = { vars: false, history: false, memory: false };
      this.refresh(asked);
    }, REFRESH_DELAY_MS);
  }

  /**
   * Ask the current kernel for its variables, history and memory over time (when
   * shown; memory only from a kernel that has the method).
   */
  refresh(what: IRefresh = { vars: true, history: true, memory: true }): void {
    const connection = this._model.current;
    if (!this.isVisible || !connection || !connection.isOpen) {
      return;
    }
    if (what.vars) {
      connection.request({ method: 'vars' }).catch(() => undefined);
    }
    if (what.history) {
      connection.request({ method: 'history' }).catch(() => undefined);
    }
    if (
      what.memory &&
      connection.memorySupported &&
      !connection.memoryPending
    ) {
      connection.request({ method: 'memory' }).catch(() => undefined);
    }
  }

  protected onAfterShow(): void {
    this.refresh();
    this.update();
  }

  /** The plot is as wide as the panel: drawn again at the new width. */
  protected onResize(msg: Widget.ResizeMessage): void {
    super.onResize(msg);
    this.update();
  }

  protected onUpdateRequest(): void {
    if (this.isVisible) {
      this.render();
    }
  }

  private _onChanged(_: IGreedModel, what: string): void {
    if (what === 'cell') {
      this._refreshSoon({ vars: true, memory: true });
    }
    if (what === 'current' || what === 'state') {
      this._busy.clear();
      this._message = '';
      if (this._model.current?.isOpen) {
        this.refresh();
      }
    }
    this.update();
  }

  /** Send a request; its button is busy until its own answer (or error) comes. */
  private _send(key: string, request: GreedRequest): void {
    const connection = this._model.current;
    if (!connection || !connection.isOpen) {
      return;
    }
    const since = Date.now();
    this._message = '';
    this._busy.set(key, since);
    this.update();
    connection
      .request(request)
      .then(
        result => {
          if (request.method === 'restore') {
            const restored = parseRestored(result);
            if (restored) {
              this._message = restoredText(
                restored.names,
                restored.bytes,
                this._trans
              );
            }
          }
          const method: string = request.method;
          if (['preserve', 'unpreserve', 'restore'].includes(method)) {
            this._refreshSoon({ vars: true, memory: method === 'restore' });
          }
        },
        () => undefined // the connection shows the error
      )
      .finally(() => {
        if (this._busy.get(key) === since) {
          this._busy.delete(key);
        }
        this.update();
      });
  }

  private _isBusy(key: string): boolean {
    const since = this._busy.get(key);
    return since !== undefined && Date.now() - since < BUSY_MS;
  }

  render(): void {
    const connection = this._model.current;
    const node = this.node;
    const scroll = node.scrollTop;
    node.textContent = '';
    const trans = this._trans;
    node.append(el('h2', 'jp-greed-panel-title', trans.__('Greed kernel')));
    if (!connection || !connection.isGreed) {
      node.append(
        el(
          'p',
          'jp-greed-panel-empty',
          trans.__(
            'The current tab runs no Greed (PyTorch) kernel. Open a notebook or a console on it to see its variables.'
          )
        )
      );
      return;
    }
    const previous = connection.previousKernel;
    if (previous) {
      const notice = el('div', 'jp-greed-panel-previous', previous.message);
      notice.setAttribute('role', 'status');
      notice.dataset.cause = previous.cause;
      notice.title = previousKernelTitle(previous, trans);
      node.append(notice);
    }
    node.append(this._renderSummary(connection));
    node.append(this._renderActions(connection));
    if (connection.error) {
      node.append(el('p', 'jp-greed-panel-error', connection.error));
    }
    if (this._message) {
      node.append(el('p', 'jp-greed-panel-message', this._message));
    }
    if (connection.memorySupported) {
      node.append(el('h3', '', trans.__('Memory over time')));
      node.append(this._renderMemory(connection));
    }
    node.append(el('h3', '', trans.__('Variables')));
    node.append(this._renderVariables(connection));
    node.append(el('h3', '', trans.__('Recent cleanups')));
    node.append(this._renderHistory(connection.history));
    node.scrollTop = scroll;
  }

  private _renderSummary(connection: GreedConnection): HTMLElement {
    const summary = el('div', 'jp-greed-panel-summary');
    const name =
      connection.sessionContext.name || connection.sessionContext.path;
    summary.append(el('div', 'jp-greed-panel-session', name));
    const stats = connection.stats;
    if (!stats || !connection.isOpen) {
      summary.append(
        el(
          'div',
          '',
          connection.state === 'closed'
            ? this._trans.__(
                'The kernel closed the greed comm; it reopens after a restart.'
              )
            : this._trans.__('Waiting for the kernel…')
        )
      );
      return summary;
    }
    const view = statusView(
      stats,
      connection.threshold,
      connection.lastCleanup,
      Date.now(),
      this._trans
    );
    const line = el(
      'div',
      `jp-greed-panel-status jp-greed-level-${view.level}`,
      view.text
    );
    line.title = view.title;
    summary.append(line);
    const budget = budgetText(stats, this._trans);
    if (budget !== null) {
      const b = el(
        'div',
        view.held
          ? 'jp-greed-panel-budget'
          : 'jp-greed-panel-budget jp-greed-unheld',
        budget
      );
      b.dataset.held = String(view.held);
      summary.append(b);
    }
    const holders = connection.holders;
    if (holders !== null) {
      const h = el(
        'div',
        'jp-greed-panel-holders',
        holdersText(holders, this._trans)
      );
      h.title = holdersTitle(holders);
      summary.append(h);
    }
    if (stats.pagingNotice) {
      summary.append(el('div', 'jp-greed-panel-notice', stats.pagingNotice));
    }
    return summary;
  }

  private _renderMemory(connection: GreedConnection): HTMLElement {
    const timeline = connection.memory;
    if (timeline === null) {
      return el(
        'p',
        'jp-greed-panel-empty',
        connection.isOpen ? this._trans.__('Loading…') : ''
      );
    }
    // The panel's content width (its padding is 12 px a side).
    const width = Math.max(PLOT_MIN_WIDTH, this.node.clientWidth - 24);
    const plot = memoryPlot(timeline, width, PLOT_HEIGHT, this._trans);
    if (plot === null) {
      return el(
        'p',
        'jp-greed-panel-empty',
        this._trans.__('No memory samples yet.')
      );
    }
    return renderMemoryPlot(plot, this._trans);
  }

  private _renderActions(connection: GreedConnection): HTMLElement {
    const bar = el('div', 'jp-greed-panel-actions');
    const open = connection.isOpen;
    const button = (
      label: string,
      key: string,
      request: GreedRequest,
      title: string
    ) => {
      const b = el('button', 'jp-mod-styled jp-greed-button', label);
      b.type = 'button';
      b.title = title;
      b.disabled = !open || this._isBusy(key);
      b.addEventListener('click', () => this._send(key, request));
      return b;
    };
    const trans = this._trans;
    bar.append(
      button(
        trans.__('Clean up now'),
        'cleanup',
        { method: 'cleanup' },
        trans.__(
          'Delete temporaries, release old outputs and stale values, collect garbage'
        )
      ),
      button(
        trans.__('Optimise now'),
        'optimize',
        { method: 'optimize' },
        trans.__(
          'Clear stale gradients, run a full collection, empty the CUDA cache'
        )
      )
    );
    const stats = connection.stats;
    if (stats && (stats.pagedBytes > 0 || stats.paged.length)) {
      bar.append(
        button(
          trans.__('Read back all'),
          'restore-all',
          { method: 'restore', params: { all: true } },
          trans.__(
            'Read every paged-out value back into RAM now (first use does it anyway; it stays file-backed, so the OS may drop it again)'
          )
        )
      );
    }
    const refresh = el(
      'button',
      'jp-mod-styled jp-greed-button',
      trans.__('Refresh')
    );
    refresh.type = 'button';
    refresh.disabled = !open;
    refresh.addEventListener('click', () => {
      this._message = '';
      this.refresh();
      this.update();
    });
    bar.append(refresh);
    return bar;
  }

  private _renderVariables(connection: GreedConnection): HTMLElement {
    const rows = connection.variables;
    if (rows === null) {
      return el(
        'p',
        'jp-greed-panel-empty',
        connection.isOpen ? this._trans.__('Loading…') : ''
      );
    }
    if (!rows.length) {
      return el(
        'p',
        'jp-greed-panel-empty',
        this._trans.__('No variables yet.')
      );
    }
    const wrap = el('div', 'jp-greed-table-wrap');
    const table = el('table', 'jp-greed-table jp-greed-vars');
    const head = el('tr');
    for (const column of this._columns) {
      const th = el('th', column.numeric ? 'jp-greed-num' : '', column.label);
      th.dataset.key = column.key;
      th.title = this._trans.__('Sort by %1', column.label.toLowerCase());
      th.setAttribute('role', 'button');
      if (this._sort.key === column.key) {
        th.classList.add(
          this._sort.ascending ? 'jp-greed-sort-asc' : 'jp-greed-sort-desc'
        );
        th.setAttribute(
          'aria-sort',
          this._sort.ascending ? 'ascending' : 'descending'
        );
      }
      th.addEventListener('click', () => {
        this._sort = nextSort(this._sort, column.key);
        this.update();
      });
      head.append(th);
    }
    head.append(el('th', '', ''));
    const thead = el('thead');
    thead.append(head);
    table.append(thead);
    const body = el('tbody');
    for (const row of sortVariables(rows, this._sort)) {
      body.append(this._renderRow(row, connection.isOpen));
    }
    table.append(body);
    wrap.append(table);
    if (connection.omitted) {
      wrap.append(
        el(
          'p',
          'jp-greed-panel-note',
          this._trans.__('and %1 more', connection.omitted)
        )
      );
    }
    return wrap;
  }

  private _renderRow(row: IVariable, open: boolean): HTMLElement {
    const tr = el('tr');
    tr.dataset.name = row.name;
    if (row.pagedBytes > 0) {
      tr.classList.add('jp-greed-paged');
    }
    const decision = el(
      'td',
      `jp-greed-decision-${row.decision}`,
      row.decision
    );
    decision.title = row.reason;
    if (row.rule && row.rule !== row.decision) {
      decision.append(el('span', 'jp-greed-rule', ` (${row.rule})`));
    }
    const type = el('td', 'jp-greed-type', shortType(row.type));
    type.title = row.type;
    tr.append(
      el('td', 'jp-greed-name', row.name),
      type,
      el('td', 'jp-greed-num', formatBytes(row.size)),
      el('td', '', row.device ?? ''),
      el('td', '', touchedText(row, this._trans)),
      decision,
      el('td', 'jp-greed-num jp-greed-paged-bytes', pagedCell(row))
    );
    const actions = el('td', 'jp-greed-row-actions');
    for (const action of rowActions(row)) {
      const key = `${action}:${row.name}`;
      const b = el(
        'button',
        'jp-mod-styled jp-greed-button jp-greed-small',
        actionLabel(action, this._trans)
      );
      b.type = 'button';
      b.dataset.action = action;
      if (action === 'restore') {
        b.title = this._trans.__(
          'Read the paged-out memory of %1 back into RAM now (first use does it anyway; it stays file-backed, so the OS may drop it again)',
          row.name
        );
      }
      b.disabled = !open || this._isBusy(key);
      b.addEventListener('click', () =>
        this._send(key, { method: action, params: { names: [row.name] } })
      );
      actions.append(b);
    }
    tr.append(actions);
    return tr;
  }

  private _renderHistory(history: IReport[] | null): HTMLElement {
    const trans = this._trans;
    if (history === null) {
      return el('p', 'jp-greed-panel-empty', trans.__('Loading…'));
    }
    const reports = recentReports(history);
    if (!reports.length) {
      return el('p', 'jp-greed-panel-empty', trans.__('No cleanup yet.'));
    }
    const table = el('table', 'jp-greed-table jp-greed-history');
    const head = el('tr');
    const headers: Array<[string, boolean]> = [
      [trans.__('When'), false],
      [trans.__('Kind'), false],
      [trans.__('Trigger'), false],
      [trans.__('Cell'), false],
      [trans.__('Freed'), true],
      [trans.__('Paged'), true],
      [trans.__('Took'), true]
    ];
    for (const [label, numeric] of headers) {
      head.append(el('th', numeric ? 'jp-greed-num' : '', label));
    }
    const thead = el('thead');
    thead.append(head);
    table.append(thead);
    const body = el('tbody');
    const now = Date.now();
    for (const report of reports) {
      const tr = el('tr');
      tr.title = [
        cleanupText(report, now, trans),
        reportPressureText(report, trans),
        report.paged.length
          ? trans.__('paged out: %1', report.paged.join(', '))
          : ''
      ]
        .filter(line => line)
        .join('\n');
      const age = reportAge(report, now);
      tr.append(
        el('td', '', age === null ? '' : formatAgo(age, trans)),
        el('td', '', report.kind),
        el('td', '', report.trigger),
        el(
          'td',
          '',
          report.executionCount === null ? '' : String(report.executionCount)
        ),
        el('td', 'jp-greed-num', formatBytes(report.freedBytes)),
        el(
          'td',
          'jp-greed-num',
          report.pagedBytes > 0 ? formatBytes(report.pagedBytes) : ''
        ),
        el(
          'td',
          'jp-greed-num',
          report.durationMs === null
            ? ''
            : trans.__('%1 ms', report.durationMs.toFixed(0))
        )
      );
      body.append(tr);
    }
    table.append(body);
    const wrap = el('div', 'jp-greed-table-wrap');
    wrap.append(table);
    return wrap;
  }

  private _sort: ISort = DEFAULT_SORT;
  private _busy = new Map<string, number>();
  private _columns: Array<{ key: SortKey; label: string; numeric?: boolean }>;
  private _refreshTimer = 0;
  private _refreshWanted = { vars: false, history: false, memory: false };
  /** What the last "Read back" did, until the next action. */
  private _message = '';
}

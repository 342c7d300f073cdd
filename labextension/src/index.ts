/**
 * greed-kernel-lab: a status-bar item and a variables panel for notebooks and
 * consoles on the Greed (PyTorch) kernel, fed by the kernel's `greed` comm.
 */

import {
  ILabShell,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, ISessionContext } from '@jupyterlab/apputils';
import { IConsoleTracker } from '@jupyterlab/console';
import { INotebookTracker } from '@jupyterlab/notebook';
import { IStatusBar } from '@jupyterlab/statusbar';
import { LabIcon } from '@jupyterlab/ui-components';
import { Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { GreedConnection } from './connection';
import { changesHistory, changesVariables } from './logic';
import { GreedModel } from './model';
import { GreedPanel } from './panel';
import { GreedStatus } from './status';

const PLUGIN_ID = 'greed-kernel-lab:plugin';
const OPEN_PANEL = 'greed-kernel-lab:open-panel';
/** Stats are asked for at most this often, and only while the page is visible. */
const POLL_MS = 5000;

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <path class="jp-icon3" fill="#616161" d="M4 20V10h3v10H4zm6.5 0V4h3v16h-3zM17 20v-7h3v7h-3z"/>
</svg>`;

const greedIcon = new LabIcon({ name: 'greed-kernel-lab:icon', svgstr: ICON_SVG });

type KernelWidget = Widget & { sessionContext: ISessionContext };

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Memory status and variables of the Greed (PyTorch) kernel',
  autoStart: true,
  optional: [IStatusBar, INotebookTracker, IConsoleTracker, ILabShell, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    statusBar: IStatusBar | null,
    notebooks: INotebookTracker | null,
    consoles: IConsoleTracker | null,
    labShell: ILabShell | null,
    palette: ICommandPalette | null
  ): void => {
    const model = new GreedModel();
    let status: GreedStatus | null = null;
    // One connection per session context: two views of a notebook share it.
    const connections = new Map<ISessionContext, GreedConnection>();

    const connectionOf = (widget: KernelWidget): GreedConnection => {
      const context = widget.sessionContext;
      let connection = connections.get(context);
      if (!connection) {
        connection = new GreedConnection(context);
        connections.set(context, connection);
        context.disposed.connect(() => {
          connections.get(context)?.dispose();
          connections.delete(context);
          updateCurrent();
        });
      }
      return connection;
    };

    const tracked = (widget: Widget | null): widget is KernelWidget =>
      !!widget &&
      ((notebooks?.has(widget) ?? false) || (consoles?.has(widget) ?? false));

    // The current tab of the main area: its connection is the one shown.
    const updateCurrent = (): void => {
      let widget: Widget | null = null;
      if (labShell) {
        widget = labShell.currentWidget;
      } else {
        widget = notebooks?.currentWidget ?? consoles?.currentWidget ?? null;
      }
      model.current = tracked(widget) && !widget.isDisposed ? connectionOf(widget) : null;
    };

    for (const tracker of [notebooks, consoles]) {
      if (!tracker) {
        continue;
      }
      tracker.forEach(widget => connectionOf(widget));
      tracker.widgetAdded.connect((_, widget) => {
        connectionOf(widget);
        updateCurrent();
      });
      tracker.currentChanged.connect(updateCurrent);
    }
    labShell?.currentChanged.connect(updateCurrent);

    const panel = new GreedPanel(model);
    panel.title.icon = greedIcon;
    app.shell.add(panel, 'right', { rank: 900 });

    app.commands.addCommand(OPEN_PANEL, {
      label: 'Show Greed Kernel Variables',
      caption: 'Open the Greed kernel panel: variables, cleanups',
      icon: greedIcon,
      execute: () => {
        app.shell.activateById(panel.id);
      }
    });
    palette?.addItem({ command: OPEN_PANEL, category: 'Kernel' });

    if (statusBar) {
      const item = (status = new GreedStatus(model, () => {
        void app.commands.execute(OPEN_PANEL);
      }));
      const activeChanged = new Signal<GreedModel, void>(model);
      let wasActive = model.active;
      model.changed.connect(() => {
        if (model.active !== wasActive) {
          wasActive = model.active;
          activeChanged.emit();
        }
      });
      statusBar.registerStatusItem(PLUGIN_ID, {
        item,
        align: 'left',
        rank: 4,
        isActive: () => model.active,
        activeStateChanged: activeChanged
      });
    }

    // Refresh the panel's table after each event, and after each cell that ran.
    let pending = 0;
    const scheduleRefresh = (vars: boolean, history: boolean): void => {
      if (!panel.isVisible) {
        return;
      }
      refreshWanted.vars ||= vars;
      refreshWanted.history ||= history;
      if (pending) {
        return;
      }
      pending = window.setTimeout(() => {
        pending = 0;
        const wanted = { ...refreshWanted };
        refreshWanted.vars = refreshWanted.history = false;
        panel.refresh(wanted);
      }, 250);
    };
    const refreshWanted = { vars: false, history: false };
    model.received.connect((_, event) => {
      scheduleRefresh(changesVariables(event.event), changesHistory(event.event));
    });
    model.changed.connect((_, what) => {
      if (what === 'cell') {
        scheduleRefresh(true, false);
        statsSoon();
      }
    });

    // After a cell, fresh stats: at once if the last came POLL_MS ago, else when they are due.
    let statsTimer = 0;
    const statsSoon = (): void => {
      const connection = model.current;
      if (statsTimer || !connection) {
        return;
      }
      const wait = Math.max(0, connection.statsAt + POLL_MS - Date.now());
      statsTimer = window.setTimeout(() => {
        statsTimer = 0;
        if (model.current === connection) {
          poll();
        }
      }, wait);
    };

    // Poll: only the current tab, only on a Greed kernel with the comm open, only when
    // the kernel is idle (a request never queues behind a running cell) and the page is
    // visible, and no more than every POLL_MS.
    const tick = (): void => {
      if (document.visibilityState !== 'visible') {
        return;
      }
      // Between events, the clock moves "3 min ago" on.
      status?.update();
      panel.update();
      poll();
    };
    const poll = (): void => {
      const connection = model.current;
      if (
        connection &&
        connection.isOpen &&
        connection.kernelIdle &&
        !connection.statsPending &&
        document.visibilityState === 'visible' &&
        Date.now() - connection.statsAt >= POLL_MS - 250
      ) {
        connection.request({ request: 'stats' });
      }
    };
    window.setInterval(tick, POLL_MS);
    document.addEventListener('visibilitychange', tick);

    void app.restored.then(updateCurrent);
    updateCurrent();
  }
};

export default plugin;

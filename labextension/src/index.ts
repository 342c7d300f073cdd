/**
 * greed-kernel-lab: a status-bar item and a variables panel for notebooks and
 * consoles on the Greed (PyTorch) kernel, fed by the kernel's `greed` comm.
 *
 * One plugin per feature: the connections (the IGreedConnections service, with the
 * stats poll and its refresh rate), the panel, and the status-bar item.
 */

import {
  ILabShell,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { IConsoleTracker } from '@jupyterlab/console';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import { LabIcon } from '@jupyterlab/ui-components';
import { Signal } from '@lumino/signaling';

import { booleanSetting, refreshIntervalMs } from './logic';
import { GreedPanel } from './panel';
import { GreedConnections } from './service';
import { GreedStatus } from './status';
import { IGreedConnections } from './tokens';

export { IGreedConnections, IGreedModel } from './tokens';
export { GreedConnection } from './connection';

const CONNECTIONS_ID = 'greed-kernel-lab:connections';
const PANEL_ID = 'greed-kernel-lab:panel';
const STATUS_ID = 'greed-kernel-lab:status-item';
const OPEN_PANEL = 'greed-kernel-lab:open-panel';

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <path class="jp-icon3" fill="#616161" d="M4 20V10h3v10H4zm6.5 0V4h3v16h-3zM17 20v-7h3v7h-3z"/>
</svg>`;

const greedIcon = new LabIcon({
  name: 'greed-kernel-lab:icon',
  svgstr: ICON_SVG
});

/** Load a plugin's settings, apply them now and on every change. */
function followSettings(
  registry: ISettingRegistry | null,
  pluginId: string,
  apply: (settings: ISettingRegistry.ISettings) => void
): void {
  if (!registry) {
    return;
  }
  registry
    .load(pluginId)
    .then(settings => {
      apply(settings);
      settings.changed.connect(apply);
    })
    .catch(reason => {
      console.error(
        `greed: could not load the settings of ${pluginId}`,
        reason
      );
    });
}

/** The connections of notebooks and consoles, and the stats poll. */
const connectionsPlugin: JupyterFrontEndPlugin<IGreedConnections> = {
  id: CONNECTIONS_ID,
  description:
    'The Greed kernel connections of notebooks and consoles, and the stats poll',
  autoStart: true,
  provides: IGreedConnections,
  optional: [ISettingRegistry, INotebookTracker, IConsoleTracker, ILabShell],
  activate: (
    app: JupyterFrontEnd,
    registry: ISettingRegistry | null,
    notebooks: INotebookTracker | null,
    consoles: IConsoleTracker | null,
    labShell: ILabShell | null
  ): IGreedConnections => {
    const connections = new GreedConnections({ notebooks, consoles, labShell });
    followSettings(registry, CONNECTIONS_ID, settings => {
      connections.refreshRate = refreshIntervalMs(
        settings.get('refreshRate').composite
      );
    });
    void app.restored.then(() => connections.updateCurrent());
    return connections;
  }
};

/** The side panel: variables, cleanups; and the command that opens it. */
const panelPlugin: JupyterFrontEndPlugin<void> = {
  id: PANEL_ID,
  description: 'The Greed kernel panel: variables, cleanups',
  autoStart: true,
  requires: [IGreedConnections],
  optional: [ITranslator, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    connections: IGreedConnections,
    translator: ITranslator | null,
    palette: ICommandPalette | null
  ): void => {
    const trans = (translator ?? nullTranslator).load('greed-kernel-lab');
    const panel = new GreedPanel(connections, trans);
    panel.title.icon = greedIcon;
    app.shell.add(panel, 'right', { rank: 900 });
    app.commands.addCommand(OPEN_PANEL, {
      label: trans.__('Show Greed Kernel Variables'),
      caption: trans.__('Open the Greed kernel panel: variables, cleanups'),
      icon: greedIcon,
      execute: () => {
        app.shell.activateById(panel.id);
      }
    });
    palette?.addItem({ command: OPEN_PANEL, category: trans.__('Kernel') });
  }
};

/** The status-bar item: shown on a Greed kernel unless `showStatusItem` is off. */
const statusPlugin: JupyterFrontEndPlugin<void> = {
  id: STATUS_ID,
  description: 'Memory status of the Greed (PyTorch) kernel in the status bar',
  autoStart: true,
  requires: [IGreedConnections, IStatusBar],
  optional: [ISettingRegistry, ITranslator],
  activate: (
    app: JupyterFrontEnd,
    connections: IGreedConnections,
    statusBar: IStatusBar,
    registry: ISettingRegistry | null,
    translator: ITranslator | null
  ): void => {
    const trans = (translator ?? nullTranslator).load('greed-kernel-lab');
    const item = new GreedStatus(
      connections,
      () => {
        if (app.commands.hasCommand(OPEN_PANEL)) {
          void app.commands.execute(OPEN_PANEL);
        }
      },
      trans
    );
    let show = true;
    let wasActive = false;
    const isActive = (): boolean => show && connections.active;
    // Both signals are cleared with the item: nothing outlives it.
    const activeStateChanged = new Signal<GreedStatus, void>(item);
    const check = (): void => {
      if (isActive() !== wasActive) {
        wasActive = isActive();
        activeStateChanged.emit();
      }
    };
    connections.changed.connect(check, item);
    wasActive = isActive();
    statusBar.registerStatusItem(STATUS_ID, {
      item,
      align: 'left',
      rank: 4,
      isActive,
      activeStateChanged
    });
    followSettings(registry, STATUS_ID, settings => {
      show = booleanSetting(settings.get('showStatusItem').composite, true);
      check();
    });
  }
};

const plugins: JupyterFrontEndPlugin<unknown>[] = [
  connectionsPlugin,
  panelPlugin,
  statusPlugin
];

export default plugins;

/**
 * nbtrail's JupyterLab extension: the "Experiments" and "Model registry" sidebars, the run /
 * compare / sweep views in the main area, and a notebook toolbar button showing the
 * notebook's runs.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, ToolbarButton } from '@jupyterlab/apputils';
import { DocumentRegistry, IDocumentWidget } from '@jupyterlab/docregistry';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { LabIcon, ReactWidget } from '@jupyterlab/ui-components';
import * as React from 'react';

import { CompareView } from './components/compare';
import { RegistryPanel } from './components/registry';
import { RunView } from './components/runview';
import { ExperimentsPanel } from './components/sidebar';
import { SweepView } from './components/sweep';
import { quoteFilter } from './format';
import { ExperimentsModel } from './model';
import { requestAPI } from './request';
import {
  CommandIDs,
  DEFAULT_SETTINGS,
  ISettings,
  IStoreInfo,
  PLUGIN_ID,
  REGISTRY_ID,
  SIDEBAR_ID
} from './tokens';

const trailIcon = new LabIcon({
  name: 'nbtrail:trail',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16">' +
    '<path class="jp-icon3" fill="#616161" d="M5 3a2 2 0 1 1 0 4 2 2 0 0 1 0-4zm0 14a2 2 0 1 1 0 4 2 2 0 0 1 0-4z' +
    'm14-7a2 2 0 1 1 0 4 2 2 0 0 1 0-4zM6 7h1.5v3.2c0 .9.7 1.6 1.6 1.6H17v1.5H9.1A3.1 3.1 0 0 1 6 10.2z' +
    'M6 17v-1.6c0-1.7 1.4-3.1 3.1-3.1H11v1.5H9.1c-.9 0-1.6.7-1.6 1.6V17z"/></svg>'
});

const registryIcon = new LabIcon({
  name: 'nbtrail:registry',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16">' +
    '<path class="jp-icon3" fill="#616161" d="M3 4a1 1 0 0 1 1-1h7.6a1 1 0 0 1 .7.3l8.4 8.4a1 1 0 0 1 0 1.4' +
    'l-7.6 7.6a1 1 0 0 1-1.4 0L3.3 12.3a1 1 0 0 1-.3-.7zm4.5 2a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3z"/></svg>'
});

function readSettings(settings: ISettingRegistry.ISettings | null): ISettings {
  if (!settings) {
    return DEFAULT_SETTINGS;
  }
  const c = settings.composite as Partial<ISettings>;
  return {
    storePath: c.storePath ?? DEFAULT_SETTINGS.storePath,
    refreshInterval: Math.max(1, c.refreshInterval ?? DEFAULT_SETTINGS.refreshInterval),
    defaultMetric: c.defaultMetric ?? DEFAULT_SETTINGS.defaultMetric,
    buildImage: c.buildImage ?? DEFAULT_SETTINGS.buildImage
  };
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Experiments sidebar: runs, comparisons, sweeps and packaging.',
  autoStart: true,
  optional: [ISettingRegistry, ICommandPalette, ILayoutRestorer],
  activate: async (
    app: JupyterFrontEnd,
    registry: ISettingRegistry | null,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    let settings: ISettingRegistry.ISettings | null = null;
    if (registry) {
      try {
        settings = await registry.load(PLUGIN_ID);
      } catch (error) {
        console.warn('nbtrail: settings could not be loaded; using the defaults', error);
      }
    }
    const model = new ExperimentsModel(readSettings(settings));
    settings?.changed.connect(() => model.updateSettings(readSettings(settings)));

    const panel = new ExperimentsPanel(model, app.commands);
    panel.id = SIDEBAR_ID;
    panel.title.icon = trailIcon;
    panel.title.caption = 'Experiments (nbtrail)';
    app.shell.add(panel, 'left', { rank: 600 });
    restorer?.add(panel, SIDEBAR_ID);

    const openRun = (runId: string) => void app.commands.execute(CommandIDs.openRun, { runId });

    const registryPanel = new RegistryPanel(model, openRun);
    registryPanel.id = REGISTRY_ID;
    registryPanel.title.icon = registryIcon;
    registryPanel.title.caption = 'Model registry (nbtrail)';
    app.shell.add(registryPanel, 'left', { rank: 601 });
    restorer?.add(registryPanel, REGISTRY_ID);

    const openMain = (id: string, label: string, element: () => JSX.Element) => {
      const existing = [...app.shell.widgets('main')].find(w => w.id === id);
      if (existing) {
        app.shell.activateById(id);
        return;
      }
      const content = ReactWidget.create(element());
      content.addClass('nbt-main');
      const widget = new MainAreaWidget({ content });
      widget.id = id;
      widget.title.label = label;
      widget.title.icon = trailIcon;
      widget.title.closable = true;
      app.shell.add(widget, 'main');
      app.shell.activateById(id);
    };

    app.commands.addCommand(CommandIDs.open, {
      label: 'Show Experiments',
      caption: 'Open the nbtrail sidebar',
      icon: trailIcon,
      execute: () => app.shell.activateById(SIDEBAR_ID)
    });
    app.commands.addCommand(CommandIDs.openRegistry, {
      label: 'Show Model Registry',
      caption: 'Open the model registry: versions, aliases and promotions to decide',
      icon: registryIcon,
      execute: () => app.shell.activateById(REGISTRY_ID)
    });
    app.commands.addCommand(CommandIDs.refresh, {
      label: 'Refresh Experiments',
      execute: () => model.refreshNow()
    });
    app.commands.addCommand(CommandIDs.openNotebookRuns, {
      label: 'Show Runs of This Notebook',
      caption: 'Open the Experiments sidebar on the runs of this notebook',
      icon: trailIcon,
      execute: async args => {
        const path = args.path as string;
        const store = await requestAPI<IStoreInfo>('store', model.storeParams());
        const absolute = `${store.root_dir.replace(/\/$/, '')}/${path}`;
        model.setQuery({ experiment: '', where: `notebook = ${quoteFilter(absolute)}` });
        app.shell.activateById(SIDEBAR_ID);
      }
    });
    app.commands.addCommand(CommandIDs.openRun, {
      label: 'Open Run',
      execute: args => {
        const runId = args.runId as string;
        const name = (args.name as string | undefined) ?? runId.slice(0, 10);
        openMain(`nbtrail-run-${runId}`, `Run ${name}`, () => (
          <RunView runId={runId} storeParams={model.storeParams()}
            refreshInterval={model.settings.refreshInterval}
            buildImage={model.settings.buildImage} openRun={openRun} />
        ));
      }
    });
    app.commands.addCommand(CommandIDs.compareRuns, {
      label: 'Compare Runs',
      execute: args => {
        const runIds = args.runIds as string[];
        openMain(`nbtrail-compare-${runIds.join('-')}`, `Compare ${(args.names as string[]).join(', ')}`, () => (
          <CompareView what="runs" names={runIds} metric={model.settings.defaultMetric}
            storeParams={model.storeParams()} />
        ));
      }
    });
    app.commands.addCommand(CommandIDs.compareBranches, {
      label: 'Compare Branches',
      execute: args => {
        const branches = args.branches as string[];
        const metric = (args.metric as string | undefined) ?? model.settings.defaultMetric;
        openMain(`nbtrail-branches-${branches.join('-')}-${metric}`, `Branches ${branches.join(' vs ')}`, () => (
          <CompareView what="branches" names={branches} metric={metric}
            storeParams={model.storeParams()} />
        ));
      }
    });
    app.commands.addCommand(CommandIDs.openSweep, {
      label: 'Open Sweep',
      execute: args => {
        const sweepId = args.sweepId as string;
        openMain(`nbtrail-sweep-${sweepId}`, `Sweep ${args.name ?? sweepId}`, () => (
          <SweepView sweepId={sweepId} storeParams={model.storeParams()}
            refreshInterval={model.settings.refreshInterval} openRun={openRun} />
        ));
      }
    });
    palette?.addItem({ command: CommandIDs.open, category: 'nbtrail' });
    palette?.addItem({ command: CommandIDs.openRegistry, category: 'nbtrail' });
    palette?.addItem({ command: CommandIDs.refresh, category: 'nbtrail' });

    app.docRegistry.addWidgetExtension('Notebook', new NotebookRunsButton(app));
  }
};

/** The notebook toolbar button that opens the sidebar on this notebook's runs. */
class NotebookRunsButton implements DocumentRegistry.IWidgetExtension<IDocumentWidget, DocumentRegistry.IModel> {
  constructor(private readonly app: JupyterFrontEnd) {}

  createNew(widget: IDocumentWidget, context: DocumentRegistry.IContext<DocumentRegistry.IModel>): ToolbarButton {
    const button = new ToolbarButton({
      icon: trailIcon,
      label: 'Runs',
      tooltip: "Show this notebook's runs in the Experiments sidebar",
      onClick: () => void this.app.commands.execute(CommandIDs.openNotebookRuns, { path: context.path })
    });
    widget.toolbar.insertItem(10, 'nbtrailRuns', button);
    return button;
  }
}

export default plugin;

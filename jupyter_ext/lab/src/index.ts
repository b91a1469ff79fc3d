/**
 * jupyter-xcomposer: XComposer in JupyterLab 4.
 *
 * A panel in the right sidebar and commands (palette, notebook toolbar, a Markdown
 * cell's context menu) over the jupyter_xcomposer server extension's REST API.
 * The kernel-side assistant widget keeps its comm target for kernels that use it.
 */
import { ILabShell, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, ToolbarButton } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { LabIcon } from '@jupyterlab/ui-components';
import { XComposerApi } from './api';
import { registerComm } from './comm';
import { XComposerPanel } from './panel';

const ICON = new LabIcon({
  name: 'jupyter-xcomposer:icon',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><path class="jp-icon3" fill="#616161" ' +
    'd="M4 4h16v12H4z M6 14l3-4 2 3 3-4 4 5z M4 18h10v2H4z"/></svg>'
});

const COMMANDS = {
  compose: 'xcomposer:compose',
  illustrate: 'xcomposer:illustrate-cell',
  describe: 'xcomposer:describe-cell',
  regenerate: 'xcomposer:regenerate',
  cancel: 'xcomposer:cancel',
  open: 'xcomposer:open-panel'
};

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-xcomposer:plugin',
  description: 'Compose, illustrate in place and describe notebook cells with XComposer.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, ILabShell],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    labShell: ILabShell | null
  ) => {
    const panel = new XComposerPanel(new XComposerApi(), tracker);
    panel.title.icon = ICON;
    app.shell.add(panel, 'right', { rank: 900 });
    const reveal = () => labShell?.activateById(panel.id);
    const { commands } = app;
    commands.addCommand(COMMANDS.open, { label: 'XComposer: Open Panel', execute: reveal });
    commands.addCommand(COMMANDS.compose, {
      label: 'XComposer: Compose into New Cells',
      icon: ICON,
      execute: () => {
        reveal();
        return panel.compose();
      }
    });
    commands.addCommand(COMMANDS.illustrate, {
      label: 'XComposer: Illustrate Cell in Place',
      isEnabled: () => tracker.activeCell?.model.type === 'markdown',
      execute: () => {
        reveal();
        return panel.illustrate();
      }
    });
    commands.addCommand(COMMANDS.describe, {
      label: 'XComposer: Describe Image Cell',
      execute: () => {
        reveal();
        return panel.describe();
      }
    });
    commands.addCommand(COMMANDS.regenerate, {
      label: 'XComposer: Regenerate with a New Seed',
      execute: () => panel.regenerate()
    });
    commands.addCommand(COMMANDS.cancel, { label: 'XComposer: Cancel', execute: () => panel.cancel() });
    for (const command of Object.values(COMMANDS)) {
      palette?.addItem({ command, category: 'XComposer' });
    }
    app.contextMenu.addItem({ command: COMMANDS.illustrate, selector: '.jp-Notebook .jp-MarkdownCell', rank: 20 });
    app.contextMenu.addItem({ command: COMMANDS.describe, selector: '.jp-Notebook .jp-Cell', rank: 21 });
    tracker.widgetAdded.connect((_sender, notebook) => {
      const button = new ToolbarButton({
        icon: ICON,
        tooltip: 'XComposer: illustrate the selected Markdown cell in place',
        onClick: () => void commands.execute(COMMANDS.illustrate)
      });
      notebook.toolbar.insertItem(10, 'xcomposer-illustrate', button);
      registerComm(notebook);
    });
  }
};

export default plugin;

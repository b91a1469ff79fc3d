/**
 * The comm target "jupyter_xcomposer" for the kernel-side assistant widget.
 *
 * The kernel opens one comm per request, the request in its opening data:
 *   {action: "insert", cells, after}     insert Markdown cells after a cell, then save
 *   {action: "selection", exclude}       the Markdown cell the person selected last
 *   {action: "last_image"}               the notebook's last image output
 * The answer goes back on the comm.  Only Markdown cells are inserted.
 */
import { NotebookPanel } from '@jupyterlab/notebook';
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { ICellJSON } from './api';
import { cellImage, insertCells } from './notebook';

const TARGET = 'jupyter_xcomposer';
const HISTORY = 20;

type Request = { action?: string; anchor?: string; after?: string; cells?: ICellJSON[]; exclude?: string[] };

async function answer(panel: NotebookPanel, history: string[], data: Request): Promise<Record<string, unknown>> {
  const model = panel.content.model!;
  if (data.action === 'insert') {
    const cells = (data.cells || []).filter(c => c && c.cell_type === 'markdown');
    if (!cells.length) {
      throw new Error('no Markdown cells to insert');
    }
    const inserted = insertCells(panel, data.after || data.anchor || null, cells);
    await panel.context.save();
    return { inserted, saved: true };
  }
  if (data.action === 'selection') {
    // The Markdown cell with text selected last: not the assistant's own, not a code cell,
    // not the empty cell that Shift+Enter leaves selected.
    const skip = new Set([data.anchor, ...(data.exclude || [])]);
    for (const id of history) {
      if (skip.has(id)) {
        continue;
      }
      for (let i = 0; i < model.cells.length; i++) {
        const cell = model.cells.get(i);
        if (cell.id === id && cell.type === 'markdown' && cell.sharedModel.getSource().trim()) {
          return { text: cell.sharedModel.getSource(), cell_id: id };
        }
      }
    }
    throw new Error('no Markdown cell with text was selected: click the one to illustrate');
  }
  if (data.action === 'last_image') {
    for (let i = model.cells.length - 1; i >= 0; i--) {
      const image = model.cells.get(i).type === 'code' ? cellImage(model.cells.get(i)) : null;
      if (image) {
        return { ...image, cell_id: model.cells.get(i).id };
      }
    }
    throw new Error('the notebook has no image output');
  }
  throw new Error(`unknown action ${data.action}`);
}

/** Answer the assistant's requests on this notebook's kernel (again after a kernel change). */
export function registerComm(panel: NotebookPanel): void {
  const history: string[] = [];
  panel.content.activeCellChanged.connect((_sender, cell) => {
    if (!cell) {
      return;
    }
    const at = history.indexOf(cell.model.id);
    if (at >= 0) {
      history.splice(at, 1);
    }
    history.unshift(cell.model.id);
    history.length = Math.min(history.length, HISTORY);
  });
  const register = () => {
    const kernel = panel.sessionContext.session?.kernel;
    kernel?.registerCommTarget(TARGET, (comm: Kernel.IComm, msg: KernelMessage.ICommOpenMsg) => {
      const data = (msg.content.data || {}) as Request;
      answer(panel, history, data)
        .then(reply => ({ ...reply, ok: true }))
        .catch((err: Error) => ({ ok: false, error: String(err?.message || err) }))
        .then(reply => {
          if (!comm.isDisposed) {
            comm.send({ ...reply, action: data.action ?? null, path: panel.context.path });
          }
        });
    });
  };
  panel.sessionContext.kernelChanged.connect(register);
  void panel.sessionContext.ready.then(register);
}

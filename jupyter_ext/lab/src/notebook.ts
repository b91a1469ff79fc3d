/**
 * Edits of the open notebook: each one a single shared-model transaction, so one
 * Undo takes it back whole.  Only Markdown cells are written; nothing is executed.
 */
import { ICellModel } from '@jupyterlab/cells';
import type * as nbformat from '@jupyterlab/nbformat';
import { NotebookPanel } from '@jupyterlab/notebook';
import { ICellJSON } from './api';

/** Only Markdown cells, whatever the server sent. */
function markdownCell(cell: ICellJSON): nbformat.IMarkdownCell {
  return {
    cell_type: 'markdown',
    source: cell.source,
    metadata: (cell.metadata || {}) as nbformat.IMarkdownCell['metadata'],
    attachments: (cell.attachments || {}) as nbformat.IAttachments
  };
}

/**
 * ``change`` in one shared-model transaction that is one Undo step of its own: never
 * merged with an edit made just before or after it (the undo manager's capture window).
 */
function oneStep(panel: NotebookPanel, change: () => void): void {
  const shared = panel.content.model!.sharedModel;
  // The notebook's shared model is a YDocument, whose undo manager is a Y.UndoManager.
  const undo = (shared as unknown as { undoManager?: { stopCapturing(): void } }).undoManager;
  undo?.stopCapturing();
  shared.transact(change);
  undo?.stopCapturing();
}

function indexOf(panel: NotebookPanel, id: string): number {
  const cells = panel.content.model!.cells;
  for (let i = 0; i < cells.length; i++) {
    if (cells.get(i).id === id) {
      return i;
    }
  }
  return -1;
}

function renderFrom(panel: NotebookPanel, index: number, count: number): void {
  for (let i = index; i < index + count; i++) {
    const widget = panel.content.widgets[i] as unknown as { rendered?: boolean };
    if (widget && 'rendered' in widget) {
      widget.rendered = true;
    }
  }
}

/** Insert cells after cell ``afterId`` (or at the end); the new cells' ids. */
export function insertCells(panel: NotebookPanel, afterId: string | null, cells: ICellJSON[]): string[] {
  const model = panel.content.model!;
  const at = afterId ? indexOf(panel, afterId) + 1 : model.cells.length;
  const index = at > 0 ? at : model.cells.length;
  oneStep(panel, () => {
    model.sharedModel.insertCells(index, cells.map(markdownCell));
  });
  renderFrom(panel, index, cells.length);
  return cells.map((_c, k) => model.cells.get(index + k).id);
}

/**
 * Put ``cells`` into the cells ``ids`` they came from (an edit, a regenerate): each
 * existing cell keeps its id and takes the new source and attachments; extra new
 * cells go after the last one, cells no longer needed are deleted.  One transaction,
 * so one Undo restores them all.  The cells' ids afterwards.
 */
export function rewriteCells(panel: NotebookPanel, ids: string[], cells: ICellJSON[]): string[] {
  const model = panel.content.model!;
  const positions = ids.map(id => indexOf(panel, id)).filter(i => i >= 0).sort((a, b) => a - b);
  if (!positions.length) {
    return insertCells(panel, null, cells);
  }
  const kept = Math.min(positions.length, cells.length);
  if (!kept) {
    oneStep(panel, () => positions.reverse().forEach(p => model.sharedModel.deleteCell(p)));
    return [];
  }
  oneStep(panel, () => {
    for (let k = 0; k < kept; k++) {
      writeCell(model.sharedModel.getCell(positions[k]), cells[k]);
    }
    for (const position of positions.slice(kept).reverse()) {
      model.sharedModel.deleteCell(position);
    }
    if (cells.length > kept) {
      model.sharedModel.insertCells(positions[kept - 1] + 1, cells.slice(kept).map(markdownCell));
    }
  });
  const first = positions[0];
  const last = positions[kept - 1] + Math.max(0, cells.length - kept);
  renderFrom(panel, first, last - first + 1);
  const out = positions.slice(0, kept).map(p => model.cells.get(p).id);
  for (let k = kept; k < cells.length; k++) {
    out.push(model.cells.get(positions[kept - 1] + 1 + (k - kept)).id);
  }
  return out;
}

/** The source and attachments of ``cell`` into an existing shared cell. */
function writeCell(shared: unknown, cell: ICellJSON): void {
  const target = shared as { setSource(s: string): void; setAttachments?(a: unknown): void };
  target.setSource(cell.source);
  target.setAttachments?.(cell.attachments || {});
}

/** Write ``cell``'s source and attachments into the existing cell ``id`` (illustrate in place). */
export function updateCell(panel: NotebookPanel, id: string, cell: ICellJSON): void {
  const model = panel.content.model!;
  const target = model.cells.get(indexOf(panel, id)) as ICellModel;
  oneStep(panel, () => writeCell(target.sharedModel, cell));
  renderFrom(panel, indexOf(panel, id), 1);
}

/** The first image of a cell: a Markdown attachment or a code cell's PNG/JPEG output. */
export function cellImage(cellModel: ICellModel): { data: string; mime: string } | null {
  const json = cellModel.toJSON() as unknown as {
    attachments?: Record<string, Record<string, string>>;
    outputs?: { data?: Record<string, unknown> }[];
  };
  for (const bundle of Object.values(json.attachments || {})) {
    for (const [mime, data] of Object.entries(bundle)) {
      if (mime.startsWith('image/')) {
        return { data, mime };
      }
    }
  }
  for (const output of json.outputs || []) {
    for (const mime of ['image/png', 'image/jpeg']) {
      const data = output.data?.[mime];
      if (typeof data === 'string') {
        return { data, mime };
      }
    }
  }
  return null;
}

/**
 * The XComposer panel (right sidebar): compose into new cells, illustrate the selected
 * Markdown cell in place, describe an image cell; progress across the whole job,
 * cancel, regenerate with a new seed; each figure with its candidates and scores,
 * a click on one replaces the figure in the cells it came from.  After insertion,
 * Rewrite / Expand / Shorten a paragraph and Remove a figure update the same cells
 * (one Undo step each).  A person's own text (an illustrated cell) is never rewritten:
 * only its figures change.
 */
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';
import { IArticle, IJob, IResult, XComposerApi, XComposerError, overallProgress } from './api';
import { cellImage, insertCells, rewriteCells, updateCell } from './notebook';

/** Where a result goes: new cells after a cell, or the person's own cell in place. */
interface ITarget {
  panel: NotebookPanel;
  op: 'compose' | 'illustrate';
  body: Record<string, unknown>;
  ids: string[];
  text?: string;
  article?: IArticle;
  /** Each article put into the cells, with the cells' text it gave (newest last). */
  history?: { article: IArticle; sources: string }[];
}

const HISTORY = 20;

/** The text of the cells ``ids`` (those still there), to tell which article they show. */
function cellSources(target: ITarget): string {
  const cells = target.panel.content.model?.cells;
  const out: string[] = [];
  for (let i = 0; cells && i < cells.length; i++) {
    if (target.ids.includes(cells.get(i).id)) {
      out.push(cells.get(i).sharedModel.getSource());
    }
  }
  return out.join('\u0000');
}

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<HTMLElementTagNameMap[K]> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

export class XComposerPanel extends Widget {
  readonly instruction = element('textarea', {
    className: 'jp-xcomposer-instruction',
    placeholder: 'What to write, e.g. Write a short article about lighthouses',
    rows: 3
  });
  readonly library = element('input', { className: 'jp-xcomposer-library', placeholder: 'image folder (relative to the root)' });
  readonly images = element('select', { className: 'jp-xcomposer-images' });
  readonly sections = element('input', { className: 'jp-xcomposer-sections', type: 'number', min: '1', max: '12', value: '4' });
  readonly words = element('input', { className: 'jp-xcomposer-words', type: 'number', min: '10', max: '1000', value: '80' });
  readonly progress = element('progress', { className: 'jp-xcomposer-progress', max: 1, value: 0 });
  readonly status = element('div', { className: 'jp-xcomposer-status' });
  readonly figures = element('div', { className: 'jp-xcomposer-figures' });
  readonly paragraph = element('select', { className: 'jp-xcomposer-paragraph' });
  readonly how = element('input', { className: 'jp-xcomposer-how', placeholder: 'how to rewrite (optional)' });
  readonly editor = element('div', { className: 'jp-xcomposer-edit' });
  private job: IJob | null = null;
  private watched = new WeakSet<NotebookPanel>();
  private target: ITarget | null = null;
  private buttons: HTMLButtonElement[] = [];

  constructor(private api: XComposerApi, private tracker: INotebookTracker) {
    super();
    this.id = 'jp-xcomposer-panel';
    this.addClass('jp-xcomposer-panel');
    this.title.caption = 'XComposer';
    for (const n of ['auto', '0', '1', '2', '3', '4']) {
      this.images.append(element('option', { value: n, textContent: n }));
    }
    const button = (label: string, cls: string, run: () => void): HTMLButtonElement => {
      const b = element('button', { className: `jp-Button jp-mod-styled ${cls}`, textContent: label });
      b.addEventListener('click', run);
      return b;
    };
    const actions = [
      button('Compose', 'jp-xcomposer-compose jp-mod-accept', () => void this.compose()),
      button('Illustrate cell', 'jp-xcomposer-illustrate', () => void this.illustrate()),
      button('Describe image cell', 'jp-xcomposer-describe', () => void this.describe()),
      button('Regenerate', 'jp-xcomposer-regenerate', () => void this.regenerate())
    ];
    const cancel = button('Cancel', 'jp-xcomposer-cancel jp-mod-warn', () => void this.cancel());
    const edits = [
      button('Rewrite', 'jp-xcomposer-rewrite', () => void this.editParagraph('rewrite')),
      button('Expand', 'jp-xcomposer-expand', () => void this.editParagraph('expand')),
      button('Shorten', 'jp-xcomposer-shorten', () => void this.editParagraph('shorten'))
    ];
    this.buttons = [...actions, ...edits];
    this.editor.append(
      element('label', {}, 'Paragraph ', this.paragraph),
      this.how,
      element('div', { className: 'jp-xcomposer-actions' }, ...edits)
    );
    this.node.append(
      element('h3', { textContent: 'XComposer' }),
      this.instruction,
      element('label', {}, 'Library ', this.library),
      element('label', {}, 'Images ', this.images),
      element('label', {}, 'Sections ', this.sections),
      element('label', {}, 'Words per section ', this.words),
      element('div', { className: 'jp-xcomposer-actions' }, ...actions, cancel),
      this.progress,
      this.status,
      this.editor,
      this.figures
    );
    this.setBusy(false);
  }

  get busy(): boolean {
    return this.job !== null;
  }

  private setBusy(busy: boolean): void {
    this.buttons.forEach(b => (b.disabled = busy));
    this.figures.querySelectorAll('button').forEach(b => ((b as HTMLButtonElement).disabled = busy));
    this.node.classList.toggle('jp-mod-busy', busy);
    // Text edits need a composed article: a person's own text is not rewritten.
    this.editor.hidden = !this.target?.article || this.target.op !== 'compose';
  }

  private say(text: string, error = false): void {
    this.status.textContent = text;
    this.status.classList.toggle('jp-mod-error', error);
  }

  private options(): Record<string, unknown> {
    const n = this.images.value;
    return {
      library: this.library.value.trim() || null,
      n_images: n === 'auto' ? 'auto' : Number(n),
      cells: true
    };
  }

  private notebook(): NotebookPanel {
    const panel = this.tracker.currentWidget;
    if (!panel || !panel.content.model) {
      throw new XComposerError('open a notebook first');
    }
    return panel;
  }

  /** Compose into new cells after the active cell. */
  async compose(): Promise<void> {
    await this.guard(async () => {
      const panel = this.notebook();
      const active = panel.content.activeCell;
      const body = {
        instruction: this.instruction.value,
        sections: Number(this.sections.value),
        words: Number(this.words.value),
        ...this.options()
      };
      const target: ITarget = { panel, op: 'compose', body, ids: active ? [active.model.id] : [] };
      await this.run(target, body);
    });
  }

  /** Illustrate the selected Markdown cell in place: the person's text stays as written. */
  async illustrate(): Promise<void> {
    await this.guard(async () => {
      const panel = this.notebook();
      const cell = panel.content.activeCell;
      if (!cell || cell.model.type !== 'markdown') {
        throw new XComposerError('select a Markdown cell to illustrate (code cells are not prose)');
      }
      const text = cell.model.sharedModel.getSource();
      if (!text.trim()) {
        throw new XComposerError('the selected Markdown cell is empty');
      }
      const body = { text, ...this.options() };
      await this.run({ panel, op: 'illustrate', body, ids: [cell.model.id], text }, body);
    });
  }

  /** Describe the selected cell's image into a new Markdown cell below it. */
  async describe(): Promise<void> {
    await this.guard(async () => {
      const panel = this.notebook();
      const cell = panel.content.activeCell;
      const image = cell ? cellImage(cell.model) : null;
      if (!cell || !image) {
        throw new XComposerError('select a cell with an image (an attachment or a plot output)');
      }
      const bytes = Uint8Array.from(atob(image.data.replace(/\s/g, '')), c => c.charCodeAt(0));
      const result = await this.follow(await this.api.describeBytes(new Blob([bytes]), image.mime));
      if (result?.text) {
        const cellJSON = { cell_type: 'markdown' as const, source: result.text, metadata: { tags: ['xcomposer'] } };
        insertCells(panel, cell.model.id, [cellJSON]);
        this.say('described');
      }
    });
  }

  /** The last compose or illustrate again, with a new seed, into the same cells. */
  async regenerate(): Promise<void> {
    await this.guard(async () => {
      if (!this.target) {
        throw new XComposerError('compose or illustrate something first');
      }
      const body = { ...this.target.body, seed: Math.floor(Math.random() * 2 ** 31) };
      await this.run({ ...this.target, body }, body, true);
    });
  }

  async cancel(): Promise<void> {
    if (this.job) {
      await this.api.cancel(this.job).catch(() => undefined);
      this.say('cancelling (after the model call in progress)');
    }
  }

  /** Replace figure ``figure`` by candidate ``image``, in the cells it came from. */
  async choose(figure: number, image: string): Promise<void> {
    await this.edit('choose_image', { figure, image });
  }

  /** Remove figure ``figure`` from the cells it came from (the text stays). */
  async removeFigure(figure: number): Promise<void> {
    await this.edit('remove_image', { figure });
  }

  /** Rewrite, expand or shorten the paragraph chosen in the panel, in its cell. */
  async editParagraph(op: 'rewrite' | 'expand' | 'shorten'): Promise<void> {
    if (this.target && this.target.op !== 'compose') {
      this.say('the illustrated cell is your own text: Rewrite, Expand and Shorten change composed articles', true);
      return;
    }
    // A new seed each time: pressing Rewrite again asks for another version, not the cached one.
    const extra: Record<string, unknown> = {
      index: Number(this.paragraph.value),
      seed: Math.floor(Math.random() * 2 ** 31)
    };
    if (op === 'rewrite' && this.how.value.trim()) {
      extra.how = this.how.value.trim();
    }
    await this.edit(op, extra);
  }

  /** An edit of the last result (POST /xcomposer/edit), put into the cells it came from. */
  private async edit(op: string, extra: Record<string, unknown>): Promise<void> {
    await this.guard(async () => {
      const target = this.target;
      if (!target?.article) {
        throw new XComposerError('compose or illustrate something first');
      }
      if (!this.sync(target)) {
        throw new XComposerError(
          'the cells changed since XComposer wrote them: compose or illustrate again to edit them ' +
            '(an edit would overwrite the changes)'
        );
      }
      const body = { op, article: target.article, cells: true, text: target.text, ...extra };
      const result = await this.follow(await this.api.start('edit', body));
      if (result) {
        this.apply(target, result, true);
        this.say(`done: ${op.replace('_', ' ')}`);
      }
    });
  }

  private async guard(work: () => Promise<void>): Promise<void> {
    if (this.busy) {
      this.say('a job is already running: wait for it or cancel it', true);
      return;
    }
    this.say('starting'); // at once, so nobody reads the last job's status as this one's
    try {
      await work();
    } catch (err) {
      this.say(err instanceof Error ? err.message : String(err), true);
    } finally {
      this.job = null;
      this.setBusy(false);
    }
  }

  private async follow(job: IJob): Promise<IResult | null> {
    this.job = job;
    this.setBusy(true);
    this.progress.value = 0;
    this.say('queued');
    const result = await this.api.follow(job, event => {
      this.progress.value = Math.max(this.progress.value, overallProgress(event));
      const speed = event.tokens_per_s ? ` · ${Math.round(event.tokens_per_s)} tok/s` : '';
      this.say(`${event.stage} ${event.done}/${event.total}${speed}`);
    });
    if (result === null) {
      this.say('cancelled');
    }
    return result;
  }

  private async run(target: ITarget, body: Record<string, unknown>, replace = false): Promise<void> {
    const result = await this.follow(await this.api.start(target.op, body));
    if (result) {
      this.apply(target, result, replace);
    }
  }

  /** Put a result into the notebook (one undo step) and show its figures. */
  private apply(target: ITarget, result: IResult, replace: boolean): void {
    if (target.op === 'illustrate' && result.cell) {
      updateCell(target.panel, target.ids[0], result.cell);
    } else if (replace) {
      target.ids = rewriteCells(target.panel, target.ids, result.cells || []);
    } else {
      target.ids = insertCells(target.panel, target.ids[0] ?? null, result.cells || []);
    }
    target.article = result.article;
    if (result.article) {
      const entry = { article: result.article, sources: cellSources(target) };
      target.history = [...(target.history || []), entry].slice(-HISTORY);
    }
    this.target = target;
    this.watch(target.panel);
    this.showFigures(result.article);
    this.showParagraphs(result.article);
    this.progress.value = 1;
    this.say(`done: ${target.op === 'illustrate' ? 'illustrated the cell' : `${target.ids.length} cell(s)`}`);
  }

  /**
   * Which article the cells show now (after an Undo, an earlier one): the panel's
   * figures, paragraphs and the next edit follow it.  False when the cells match none
   * (a person edited them).
   */
  private sync(target: ITarget): boolean {
    const now = cellSources(target);
    const entry = [...(target.history || [])].reverse().find(h => h.sources === now);
    if (!entry) {
      return false;
    }
    if (entry.article !== target.article) {
      target.article = entry.article;
      this.showFigures(entry.article);
      this.showParagraphs(entry.article);
    }
    return true;
  }

  private watch(panel: NotebookPanel): void {
    if (this.watched.has(panel) || !panel.content.model) {
      return;
    }
    this.watched.add(panel);
    panel.content.model.sharedModel.changed.connect(() => {
      if (this.target?.panel === panel && !this.busy) {
        this.sync(this.target);
      }
    });
  }

  private showFigures(article: IArticle | undefined): void {
    this.figures.replaceChildren();
    (article?.figures || []).forEach((fig, index) => {
      const list = element('ul', { className: 'jp-xcomposer-candidates' });
      for (const cand of fig.candidates) {
        const chosen = cand.image === fig.image;
        const item = element(
          'li',
          { className: chosen ? 'jp-xcomposer-candidate jp-mod-selected' : 'jp-xcomposer-candidate', title: cand.image },
          element('span', { className: 'jp-xcomposer-name', textContent: cand.image.split('/').pop() || cand.image }),
          element('span', { className: 'jp-xcomposer-score', textContent: cand.score.toFixed(2) })
        );
        if (!chosen) {
          item.addEventListener('click', () => void this.choose(index, cand.image));
        }
        list.append(item);
      }
      const remove = element('button', {
        className: 'jp-Button jp-mod-styled jp-xcomposer-remove',
        textContent: 'Remove',
        title: 'Remove this figure from the cells'
      });
      remove.addEventListener('click', () => void this.removeFigure(index));
      this.figures.append(
        element(
          'div',
          { className: 'jp-xcomposer-figure' },
          element('b', { textContent: `Figure ${index + 1}: ` }),
          fig.caption,
          remove,
          list
        )
      );
    });
  }

  /** The article's text paragraphs, for Rewrite / Expand / Shorten. */
  private showParagraphs(article: IArticle | undefined): void {
    const chosen = this.paragraph.value;
    this.paragraph.replaceChildren();
    (article?.paragraphs || []).forEach((para, index) => {
      if (para.kind !== 'text') {
        return;
      }
      const words = para.text.split(/\s+/).slice(0, 8).join(' ');
      this.paragraph.append(element('option', { value: String(index), textContent: `${index}: ${words}…` }));
    });
    if (Array.from(this.paragraph.options).some(o => o.value === chosen)) {
      this.paragraph.value = chosen;
    }
  }
}

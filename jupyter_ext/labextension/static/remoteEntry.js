/*
 * jupyter-xcomposer: the JupyterLab side of the jupyter_xcomposer assistant.
 *
 * A prebuilt ("federated") JupyterLab extension written by hand: JupyterLab loads
 * this script, finds the module container in window._JUPYTERLAB["jupyter-xcomposer"]
 * and asks it for "./extension".  The plugin imports nothing from JupyterLab
 * (no shared modules, so no build step): it receives the application object and
 * uses the notebook panels it finds in the shell.
 *
 * For every notebook it registers the kernel comm target "jupyter_xcomposer".  The
 * assistant in the kernel opens one comm per request, the request in its opening data:
 *   {action: "insert", cells: [...], after: CELL_ID}  insert Markdown cells, then save
 *   {action: "selection", exclude: [CELL_ID]}         the cell the person selected last
 *   {action: "last_image"}                            the last image/png output
 * The answer goes back on the comm; errors come back as {ok: false, error}.
 * Only Markdown cells are inserted: nothing the kernel sends is executed here.
 */
var _JUPYTERLAB;
(function () {
  'use strict';

  var TARGET = 'jupyter_xcomposer';
  var HISTORY = 20;

  function cellIndex(model, id) {
    for (var i = 0; i < model.cells.length; i++) {
      if (model.cells.get(i).id === id) {
        return i;
      }
    }
    return -1;
  }

  function sourceText(source) {
    return Array.isArray(source) ? source.join('') : String(source || '');
  }

  async function insertCells(panel, anchor, data) {
    var notebook = panel.content;
    var model = notebook.model;
    var cells = (data.cells || [])
      .filter(function (c) {
        return c && c.cell_type === 'markdown';
      })
      .map(function (c) {
        return {
          cell_type: 'markdown',
          source: sourceText(c.source),
          metadata: c.metadata || {},
          attachments: c.attachments || {}
        };
      });
    if (!cells.length) {
      throw new Error('no Markdown cells to insert');
    }
    var index = data.after ? cellIndex(model, data.after) : -1;
    if (index < 0 && anchor) {
      index = cellIndex(model, anchor);
    }
    if (index < 0 && notebook.activeCellIndex >= 0) {
      index = notebook.activeCellIndex;
    }
    index = index < 0 ? model.cells.length : index + 1;
    model.sharedModel.insertCells(index, cells);
    var ids = [];
    for (var k = 0; k < cells.length; k++) {
      ids.push(model.cells.get(index + k).id);
      var widget = notebook.widgets[index + k];
      if (widget && 'rendered' in widget) {
        widget.rendered = true;
      }
    }
    await panel.context.save();
    return { inserted: ids, index: index, path: panel.context.path, saved: true };
  }

  function selection(panel, history, anchor, data) {
    var skip = [anchor].concat(data.exclude || []);
    var widgets = panel.content.widgets;
    for (var h = 0; h < history.length; h++) {
      if (skip.indexOf(history[h]) >= 0) {
        continue;
      }
      for (var i = 0; i < widgets.length; i++) {
        var model = widgets[i].model;
        if (model.id === history[h]) {
          return { text: model.sharedModel.getSource(), cell_id: model.id, cell_type: model.type };
        }
      }
    }
    throw new Error('no cell was selected before the assistant; click the cell to illustrate first');
  }

  function lastImage(panel) {
    var widgets = panel.content.widgets;
    for (var i = widgets.length - 1; i >= 0; i--) {
      var model = widgets[i].model;
      if (model.type !== 'code' || !model.outputs) {
        continue;
      }
      for (var j = model.outputs.length - 1; j >= 0; j--) {
        var out = model.outputs.get(j).data || {};
        if (out['image/png']) {
          return { data: sourceText(out['image/png']), mime: 'image/png', cell_id: model.id };
        }
        if (out['image/jpeg']) {
          return { data: sourceText(out['image/jpeg']), mime: 'image/jpeg', cell_id: model.id };
        }
      }
    }
    throw new Error('the notebook has no image output');
  }

  async function answer(panel, history, anchor, data) {
    var reply;
    try {
      if (data.action === 'insert') {
        reply = await insertCells(panel, anchor, data);
      } else if (data.action === 'selection') {
        reply = selection(panel, history, anchor, data);
      } else if (data.action === 'last_image') {
        reply = lastImage(panel);
      } else {
        throw new Error('unknown action ' + data.action);
      }
      reply.ok = true;
    } catch (err) {
      reply = { ok: false, error: String((err && err.message) || err) };
    }
    reply.action = data.action;
    reply.path = panel.context.path;
    return reply;
  }

  function openComm(panel, history, comm, openMsg) {
    // One request per comm: it comes in the opening message; the kernel closes the comm.
    var data = (openMsg.content || {}).data || {};
    answer(panel, history, data.anchor || null, data).then(function (reply) {
      if (!comm.isDisposed) {
        comm.send(reply);
      }
    });
  }

  function track(panel, seen) {
    if (!panel || seen.has(panel) || !panel.sessionContext || !panel.context) {
      return;
    }
    var notebook = panel.content;
    if (!notebook || !notebook.model || !notebook.activeCellChanged) {
      return;
    }
    seen.add(panel);
    var history = [];
    notebook.activeCellChanged.connect(function (_, cell) {
      if (!cell || !cell.model) {
        return;
      }
      var at = history.indexOf(cell.model.id);
      if (at >= 0) {
        history.splice(at, 1);
      }
      history.unshift(cell.model.id);
      history.length = Math.min(history.length, HISTORY);
    });
    var register = function () {
      var session = panel.sessionContext.session;
      var kernel = session && session.kernel;
      if (kernel) {
        kernel.registerCommTarget(TARGET, function (comm, msg) {
          openComm(panel, history, comm, msg);
        });
      }
    };
    panel.sessionContext.kernelChanged.connect(register);
    register();
  }

  var plugin = {
    id: 'jupyter-xcomposer:assistant',
    description: 'Inserts the jupyter_xcomposer assistant\'s cells into the open notebook.',
    autoStart: true,
    requires: [],
    activate: function (app) {
      var seen = new WeakSet();
      var scan = function () {
        var widgets = app.shell.widgets('main');
        for (var w of widgets) {
          track(w, seen);
        }
      };
      app.restored.then(function () {
        var factory = app.docRegistry.getWidgetFactory('Notebook');
        if (factory) {
          factory.widgetCreated.connect(function (_, panel) {
            track(panel, seen);
          });
        }
        scan();
      });
      if (app.shell.layoutModified) {
        app.shell.layoutModified.connect(scan);
      }
    }
  };

  _JUPYTERLAB = _JUPYTERLAB || {};
  _JUPYTERLAB['jupyter-xcomposer'] = {
    init: function () {
      return Promise.resolve();
    },
    get: function (module) {
      if (module !== './extension') {
        return Promise.reject(new Error('Module "' + module + '" does not exist in container.'));
      }
      return Promise.resolve(function () {
        return { __esModule: true, default: plugin };
      });
    }
  };
})();

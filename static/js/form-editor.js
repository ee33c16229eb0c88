// The structured editor of an action's form, in the admin (the rows are rendered by the
// server: apps/catalog/forms.py form_editor_rows, templates/catalog/_form_fields.html).
// 1. Each change in a row rewrites the JSON textarea, which stays what is saved, and asks
//    for the preview (the textarea's hx-trigger "fields-edited").
// 2. Adding, removing and moving a field change the JSON, then the server renders the rows
//    again from it. Ops typing in the JSON get the rows rendered again by htmx (hx-trigger
//    on #form-fields), unless the rows have written it since: the server is the one place
//    that reads the JSON into rows.
// 3. What the preview says is wrong with "fields[i]" is shown on row i as well.
(function () {
  "use strict";

  const editor = () => document.querySelector(".form-editor");
  const textarea = () => document.getElementById(editor().dataset.json);
  const rows = () => Array.from(document.querySelectorAll("#form-fields .form-editor-row"));

  // The row's type, and where its choices come from (only a choice field may have them
  // from elsewhere than its list), as the server's Part.shown reads them.
  function rowType(row) {
    return row.querySelector("[data-key=type]").value;
  }

  function rowSource(row) {
    return rowType(row) === "choice" ? row.querySelector("[data-source]").value : "list";
  }

  function showParts(row) {
    const type = rowType(row);
    const source = rowSource(row);
    row.querySelectorAll("[data-types]").forEach(function (part) {
      const sources = part.dataset.sources ? part.dataset.sources.split(" ") : [];
      part.hidden = !(part.dataset.types.split(" ").includes(type) && (!sources.length || sources.includes(source)));
    });
  }

  // An input's value as JSON holds it; undefined leaves the key out. A number that is not
  // one is written as typed: the validator names it.
  function valueOf(input, type) {
    const as = input.dataset.as === "default" && type === "integer" ? "int" : input.dataset.as;
    const text = input.value;
    if (as === "check") return input.checked ? true : undefined;
    if (as === "boolean") return text === "" ? undefined : text === "true";
    if (as === "lines") {
      const lines = text.split("\n").map((line) => line.trim()).filter((line) => line !== "");
      return lines.length ? lines : undefined;
    }
    if (text.trim() === "") return undefined;
    if (as === "int") return /^\s*-?\d+\s*$/.test(text) ? parseInt(text, 10) : text;
    return text;
  }

  function fieldOf(row, keys) {
    const type = rowType(row);
    const values = {};
    row.querySelectorAll("[data-key]").forEach(function (input) {
      if (input.closest("[data-types]") && input.closest("[data-types]").hidden) return;
      const value = valueOf(input, type);
      if (value === undefined) return;
      const [key, sub] = input.dataset.key.split(".");
      if (sub) values[key] = Object.assign(values[key] || {}, { [sub]: value });
      else values[key] = value;
    });
    // The editor's keys in its order, then what the row does not show, as it was.
    const field = {};
    keys.forEach(function (key) {
      if (key in values) field[key] = values[key];
    });
    const extra = JSON.parse(row.dataset.extra || "{}");
    Object.keys(extra).forEach(function (key) {
      if (!(key in field)) field[key] = extra[key];
    });
    return field;
  }

  function fieldsOfRows() {
    const keys = JSON.parse(editor().dataset.keys);
    return rows().map((row) => fieldOf(row, keys));
  }

  // What adding, removing and moving start from: the JSON, which each row's change has
  // written already and which may be ahead of the rows (typed in the last moments); none
  // while it does not read as a list (the rows give way to a note meanwhile).
  function fieldsOfJson() {
    try {
      const fields = JSON.parse(textarea().value.trim() || "[]");
      return Array.isArray(fields) ? fields : null;
    } catch (e) {
      return null;
    }
  }

  // The JSON as the rows last wrote it: while it is unchanged, the rows are ahead of any
  // re-render asked for by typing in the JSON just before (see "htmx:beforeRequest").
  let written = null;

  function writeJson(fields) {
    const json = textarea();
    json.value = fields.length ? JSON.stringify(fields, null, 2) : "[]";
    written = json.value;
    htmx.trigger(json, "fields-edited");
  }

  // The rows again from the JSON, then the focus where the person's next step is.
  function renderRows(focusId) {
    const json = textarea();
    htmx
      .ajax("POST", editor().dataset.fieldsUrl, { source: json, target: "#form-fields", swap: "innerHTML" })
      .then(function () {
        const target = document.getElementById(focusId);
        if (target) target.focus();
      });
  }

  function unusedName(fields) {
    const names = new Set(fields.map((field) => field.name));
    let n = fields.length + 1;
    while (names.has("field_" + n)) n += 1;
    return "field_" + n;
  }

  function add() {
    const fields = fieldsOfJson();
    if (!fields) return;
    fields.push({ name: unusedName(fields), type: "string" });
    writeJson(fields);
    renderRows("fe-" + (fields.length - 1) + "-name");
  }

  function remove(index) {
    const fields = fieldsOfJson();
    if (!fields) return;
    fields.splice(index, 1);
    writeJson(fields);
    // The focus goes to the row that took its place, or the Add button.
    renderRows(fields.length ? "fe-" + Math.min(index, fields.length - 1) + "-name" : "fe-add");
  }

  function move(index, by) {
    const fields = fieldsOfJson();
    const to = index + by;
    if (!fields || to < 0 || to >= fields.length) return;
    [fields[index], fields[to]] = [fields[to], fields[index]];
    writeJson(fields);
    // The same button of the moved row, unless it reached the end of the list.
    const last = to === 0 || to === fields.length - 1;
    renderRows("fe-" + to + (last ? "-name" : by < 0 ? "-up" : "-down"));
  }

  function rowIndex(row) {
    return rows().indexOf(row);
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("#form-fields button");
    if (!button) return;
    const row = button.closest(".form-editor-row");
    if (button.hasAttribute("data-add")) add();
    else if (button.hasAttribute("data-remove")) remove(rowIndex(row));
    else if (button.dataset.move) move(rowIndex(row), parseInt(button.dataset.move, 10));
  });

  function edited(event) {
    const row = event.target.closest("#form-fields .form-editor-row");
    if (!row) return;
    if (event.target.matches("[data-key=type], [data-source]")) showParts(row);
    if (event.target.matches("[data-key=name]")) {
      row.querySelector(".fe-legend-name").textContent = event.target.value ? ": " + event.target.value : "";
    }
    writeJson(fieldsOfRows());
  }

  // Text, selects and checkboxes alike say "input" on each change.
  document.addEventListener("input", edited);

  // 3. The preview's messages start "line 3, fields[1].choices: …".
  function showRowErrors() {
    const messages = document.querySelectorAll("#form-preview-errors li");
    rows().forEach(function (row, index) {
      const list = row.querySelector(".fe-errors");
      list.replaceChildren();
      messages.forEach(function (message) {
        const at = /fields\[(\d+)\]/.exec(message.textContent);
        if (!at || parseInt(at[1], 10) !== index) return;
        const item = document.createElement("li");
        item.textContent = message.textContent;
        list.appendChild(item);
      });
      list.hidden = !list.children.length;
      row.classList.toggle("fe-has-errors", !list.hidden);
    });
  }

  // A re-render asked for by typing in the JSON (hx-trigger on #form-fields, 400 ms later)
  // is dropped once the rows have written the JSON since: it would undo their change.
  // (The element that asked: a swap's detail.elt is its target.)
  function rowsAhead(event) {
    const asker = (event.detail.requestConfig || event.detail).elt;
    return asker.id === "form-fields" && textarea().value === written;
  }
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (rowsAhead(event)) event.preventDefault();
  });
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (rowsAhead(event)) event.detail.shouldSwap = false;
  });

  document.addEventListener("htmx:afterSettle", function (event) {
    const id = event.detail.target && event.detail.target.id;
    if (id === "form-preview" || id === "form-fields") showRowErrors();
  });
})();

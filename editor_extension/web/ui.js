/**
 * The extension's two dialogs (marking a node's inputs, publishing the
 * workflow), built from plain DOM elements so they depend on nothing in the
 * editor beyond `document`.
 *
 * @module ui
 */

import { cleanMark, publicName, validateMark } from "./marks.js";

const STYLE_ID = "comfy-bridge-editor-style";

const CSS = `
.cbx-backdrop { position: fixed; inset: 0; z-index: 10000; display: flex;
  align-items: center; justify-content: center; background: rgb(0 0 0 / 45%); }
.cbx-dialog { background: var(--comfy-menu-bg, #222); color: var(--fg-color, #ddd);
  border: 1px solid var(--border-color, #555); border-radius: 8px;
  font: 13px/1.4 system-ui, sans-serif; width: min(640px, 94vw);
  max-height: 88vh; display: flex; flex-direction: column; }
.cbx-dialog h2 { font-size: 15px; margin: 0; padding: 12px 16px;
  border-bottom: 1px solid var(--border-color, #555); }
.cbx-body { padding: 8px 16px; overflow: auto; }
.cbx-row { border-bottom: 1px solid var(--border-color, #444); padding: 8px 0; }
.cbx-row:last-child { border-bottom: 0; }
.cbx-head { display: flex; gap: 8px; align-items: baseline; }
.cbx-head label { font-weight: 600; }
.cbx-hint { opacity: 0.7; font-size: 12px; }
.cbx-fields { display: grid; grid-template-columns: 90px 1fr; gap: 4px 8px;
  margin: 6px 0 0 24px; align-items: center; }
.cbx-fields[hidden] { display: none; }
.cbx-bounds { display: flex; gap: 6px; }
.cbx-bounds input { width: 0; flex: 1; }
.cbx-dialog input, .cbx-dialog textarea, .cbx-dialog select {
  background: var(--comfy-input-bg, #111); color: inherit; border-radius: 4px;
  border: 1px solid var(--border-color, #555); padding: 3px 6px; font: inherit; }
.cbx-dialog select[multiple] { min-height: 5.5em; }
.cbx-problems { color: #f88; margin: 6px 16px 0; white-space: pre-wrap; }
.cbx-answer { margin: 6px 16px 0; white-space: pre-wrap; }
.cbx-answer.cbx-ok { color: #8d8; }
.cbx-answer.cbx-fail { color: #f88; }
.cbx-actions { display: flex; gap: 8px; justify-content: flex-end; padding: 12px 16px; }
.cbx-actions button { padding: 4px 14px; border-radius: 4px; cursor: pointer;
  background: var(--comfy-input-bg, #333); color: inherit;
  border: 1px solid var(--border-color, #555); }
.cbx-thumb { max-width: 160px; max-height: 120px; border-radius: 4px; }
`;

/**
 * Create an element with attributes and children.
 * @param {string} tag
 * @param {Record<string, any>} [attributes]
 * @param {...(Node|string|null|undefined)} children
 * @returns {HTMLElement}
 */
function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    // Properties for live state (a textarea's value has no attribute).
    if (key === "value" || (key in element && typeof value !== "string")) {
      element[key] = value;
    } else {
      element.setAttribute(key, value === true ? "" : String(value));
    }
  }
  element.append(...children.filter((child) => child != null));
  return element;
}

/** Add the dialogs' style sheet once. */
function ensureStyle() {
  if (document.getElementById(STYLE_ID)) return;
  document.head.append(el("style", { id: STYLE_ID }, CSS));
}

/**
 * A modal frame with a title, a body and buttons; Escape or the backdrop
 * closes it.
 * @param {string} title
 * @param {HTMLElement} body
 * @param {HTMLElement[]} buttons
 */
function modal(title, body, buttons) {
  ensureStyle();
  const problems = el("div", { class: "cbx-problems", role: "alert" });
  const answer = el("div", { class: "cbx-answer", "aria-live": "polite" });
  const dialog = el(
    "div",
    { class: "cbx-dialog", role: "dialog", "aria-label": title },
    el("h2", {}, title),
    el("div", { class: "cbx-body" }, body),
    problems,
    answer,
    el("div", { class: "cbx-actions" }, ...buttons),
  );
  const backdrop = el("div", { class: "cbx-backdrop" }, dialog);
  const close = () => {
    backdrop.remove();
    document.removeEventListener("keydown", onKey, true);
  };
  /** @param {KeyboardEvent} event */
  function onKey(event) {
    // Keys typed here must not reach the canvas's shortcuts.
    event.stopPropagation();
    if (event.key === "Escape") close();
  }
  backdrop.addEventListener("pointerdown", (event) => {
    if (event.target === backdrop) close();
  });
  document.addEventListener("keydown", onKey, true);
  document.body.append(backdrop);
  return { close, problems, answer, dialog };
}

/**
 * @param {string} label
 * @param {() => void} onClick
 */
function button(label, onClick) {
  return el("button", { type: "button", onclick: onClick }, label);
}

/**
 * How a widget's accepted values read in the dialog.
 * @param {import("./marks.js").WidgetFacts} facts
 */
function describeFacts(facts) {
  const range =
    facts.min !== undefined || facts.max !== undefined
      ? `, ${facts.min ?? "…"}..${facts.max ?? "…"}`
      : "";
  const count = facts.choices ? `, ${facts.choices.length} choices` : "";
  return `${facts.kind}${range}${count}, now ${JSON.stringify(facts.value)}`;
}

/**
 * One widget's row: a tick box and, once ticked, its fields.
 * @param {string} nodeId
 * @param {import("./marks.js").WidgetFacts} facts
 * @param {import("./marks.js").Mark | undefined} mark
 */
function markRow(nodeId, facts, mark) {
  const tick = el("input", { type: "checkbox", checked: Boolean(mark) });
  const id = `cbx-${nodeId}-${facts.input}`.replace(/[^\w-]/g, "_");
  tick.id = id;
  const name = el("input", {
    value: mark?.name ?? "",
    placeholder: publicName(nodeId, facts.input, {}),
  });
  const description = el("textarea", { rows: 2, value: mark?.description ?? "" });
  const fields = el(
    "div",
    { class: "cbx-fields", hidden: !mark },
    el("span", {}, "Name"),
    name,
    el("span", {}, "Description"),
    description,
  );
  const read = { bounds: () => ({}), choices: () => ({}) };
  if (facts.kind === "int" || facts.kind === "float") {
    read.bounds = boundsFields(fields, facts, mark);
  }
  if (facts.kind === "choice" && facts.choices?.length) {
    read.choices = choicesField(fields, facts, mark);
  }
  tick.addEventListener("change", () => {
    fields.hidden = !tick.checked;
  });
  const row = el(
    "div",
    { class: "cbx-row" },
    el(
      "div",
      { class: "cbx-head" },
      tick,
      el("label", { for: id }, facts.input),
      el("span", { class: "cbx-hint" }, describeFacts(facts)),
    ),
    fields,
  );
  /** @returns {import("./marks.js").Mark | undefined} */
  const value = () =>
    tick.checked
      ? cleanMark({
          name: name.value,
          description: description.value,
          ...read.bounds(),
          ...read.choices(),
        })
      : undefined;
  return { row, value };
}

/**
 * @param {HTMLElement} fields
 * @param {import("./marks.js").WidgetFacts} facts
 * @param {import("./marks.js").Mark | undefined} mark
 */
function boundsFields(fields, facts, mark) {
  const step = facts.kind === "int" ? "1" : "any";
  /** @param {"min"|"max"|"step"} key */
  const box = (key) =>
    el("input", {
      type: "number",
      step,
      value: mark?.[key] ?? "",
      placeholder: `${key}${facts[key] !== undefined ? ` ${facts[key]}` : ""}`,
      "aria-label": key,
    });
  const boxes = { min: box("min"), max: box("max"), step: box("step") };
  fields.append(
    el("span", {}, "Bounds"),
    el(
      "div",
      {},
      el("div", { class: "cbx-bounds" }, boxes.min, boxes.max, boxes.step),
      el("div", { class: "cbx-hint" }, "min · max · step; empty: the node's own"),
    ),
  );
  return () =>
    Object.fromEntries(
      Object.entries(boxes)
        .filter(([, input]) => input.value.trim() !== "")
        .map(([key, input]) => [key, Number(input.value)]),
    );
}

/**
 * @param {HTMLElement} fields
 * @param {import("./marks.js").WidgetFacts} facts
 * @param {import("./marks.js").Mark | undefined} mark
 */
function choicesField(fields, facts, mark) {
  const chosen = new Set(mark?.choices ?? []);
  const choices = facts.choices ?? [];
  const select = el(
    "select",
    { multiple: true, size: Math.min(choices.length, 8), "aria-label": "choices" },
    ...choices.map((choice, index) =>
      el("option", { value: String(index), selected: chosen.has(choice) }, String(choice)),
    ),
  );
  fields.append(
    el("span", {}, "Choices"),
    el("div", {}, select, el("div", { class: "cbx-hint" }, "none selected: all")),
  );
  return () => {
    const picked = [...select.selectedOptions].map((o) => choices[Number(o.value)]);
    return picked.length ? { choices: picked } : {};
  };
}

/**
 * The dialog that marks a node's public inputs.
 * @param {object} args
 * @param {string} args.nodeId the node's id in the API format
 * @param {string} args.title the node's title
 * @param {import("./marks.js").WidgetFacts[]} args.facts its widgets
 * @param {Record<string, import("./marks.js").Mark>} args.marks its marks now
 * @param {(marks: Record<string, import("./marks.js").Mark>) => void} args.onSave
 */
export function openMarksDialog({ nodeId, title, facts, marks, onSave }) {
  const rows = facts.map((f) => ({ facts: f, ...markRow(nodeId, f, marks[f.input]) }));
  const body = rows.length
    ? el("div", {}, ...rows.map((r) => r.row))
    : el("p", {}, "This node has no widget values a client could set.");
  const save = () => {
    /** @type {Record<string, import("./marks.js").Mark>} */
    const chosen = {};
    const problems = [];
    for (const row of rows) {
      const mark = row.value();
      if (!mark) continue;
      chosen[row.facts.input] = mark;
      problems.push(...validateMark(mark, row.facts));
    }
    view.problems.textContent = problems.join("\n");
    if (problems.length > 0) return;
    onSave(chosen);
    view.close();
  };
  const view = modal(`Bridge inputs: ${title} (#${nodeId})`, body, [
    button("Cancel", () => view.close()),
    button("Save", save),
  ]);
  // A problem shown stays until the author edits something.
  view.dialog.addEventListener("input", () => {
    view.problems.textContent = "";
  });
  return view;
}

/**
 * The dialog that publishes the workflow to the bridge.
 * @param {object} args
 * @param {string} args.alias a suggested alias
 * @param {string[]} args.inputs the public inputs' names
 * @param {string[]} args.problems problems found in the marks
 * @param {string | null} args.thumbnail a data URL, if there is an output image
 * @param {(form: {alias: string, description: string, thumbnail: string | null})
 *   => Promise<import("./publish.js").Answer>} args.onPublish
 */
export function openPublishDialog({ alias, inputs, problems, thumbnail, onPublish }) {
  const aliasBox = el("input", { value: alias, "aria-label": "alias" });
  const description = el("textarea", { rows: 3, "aria-label": "description" });
  const useThumb = el("input", { type: "checkbox", checked: Boolean(thumbnail) });
  const summary = inputs.length
    ? `Public inputs: ${inputs.join(", ")}`
    : "No input is marked public yet (right-click a node: Bridge inputs…).";
  const body = el(
    "div",
    { class: "cbx-fields", style: "margin-left: 0" },
    el("span", {}, "Alias"),
    aliasBox,
    el("span", {}, "Description"),
    description,
    el("span", {}, "Thumbnail"),
    thumbnail
      ? el(
          "div",
          {},
          el("img", { class: "cbx-thumb", src: thumbnail, alt: "the last output" }),
          el(
            "label",
            { class: "cbx-hint", style: "display: block" },
            useThumb,
            " send the last output",
          ),
        )
      : el("span", { class: "cbx-hint" }, "none (run the workflow once to get one)"),
    el("span", {}, "Inputs"),
    el("span", { class: "cbx-hint" }, summary),
  );
  const send = async () => {
    sendButton.disabled = true;
    view.answer.className = "cbx-answer";
    view.answer.textContent = "Publishing…";
    try {
      const answer = await onPublish({
        alias: aliasBox.value.trim(),
        description: description.value.trim(),
        thumbnail: thumbnail && useThumb.checked ? thumbnail : null,
      });
      view.answer.className = `cbx-answer ${answer.ok ? "cbx-ok" : "cbx-fail"}`;
      view.answer.textContent = [answer.message, ...answer.details].join("\n");
    } finally {
      sendButton.disabled = false;
    }
  };
  const sendButton = button("Publish", send);
  const view = modal("Publish to bridge", body, [
    button("Close", () => view.close()),
    sendButton,
  ]);
  view.problems.textContent = problems.join("\n");
  return view;
}

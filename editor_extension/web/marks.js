/**
 * Public-input marks: reading and writing them in a node's properties,
 * checking them against the node's widgets, and turning them into the
 * `_meta` fields the bridge reads from an API-format workflow.
 *
 * Plain functions over plain objects, so they run (and are tested) outside
 * the editor.
 *
 * A node's marks live in `node.properties.bridge_inputs`, keyed by the
 * input's name; listing an input makes it public:
 *
 *     { "seed": { "name": "seed", "description": "…", "min": 0, "max": 99 } }
 *
 * @module marks
 */

/** The node property that holds the marks (saved with the workflow). */
export const MARKS_PROPERTY = "bridge_inputs";

/** Names the bridge keeps for itself (the original API's alias field). */
export const RESERVED_NAMES = new Set(["workflow"]);

/** The keys a mark may hold, as the bridge's registry reads them. */
const MARK_KEYS = ["name", "description", "min", "max", "step", "choices"];

/**
 * @typedef {object} Mark
 * @property {string} [name] the input's public name
 * @property {string} [description] what the input does, for clients
 * @property {number} [min] a lower bound at or above the node's own
 * @property {number} [max] an upper bound at or below the node's own
 * @property {number} [step] the step between values
 * @property {Array<string|number>} [choices] a subset of the node's choices
 */

/**
 * @typedef {object} WidgetFacts
 * @property {string} input the input's name in the API format
 * @property {"int"|"float"|"string"|"boolean"|"choice"|"other"} kind
 * @property {unknown} value the widget's current value
 * @property {number} [min] the node's lower bound, if it has one
 * @property {number} [max] the node's upper bound, if it has one
 * @property {number} [step] the node's step, if it has one
 * @property {Array<string|number>} [choices] the node's choices, for combos
 */

/**
 * A node's marks, with anything malformed left out.
 * @param {Record<string, unknown> | undefined} properties
 * @returns {Record<string, Mark>}
 */
export function readMarks(properties) {
  const stored = properties?.[MARKS_PROPERTY];
  if (!isObject(stored)) return {};
  /** @type {Record<string, Mark>} */
  const marks = {};
  for (const [input, mark] of Object.entries(stored)) {
    if (isObject(mark)) marks[input] = cleanMark(mark);
  }
  return marks;
}

/**
 * Store a node's marks in its properties; no marks removes the property so
 * unmarked nodes save exactly as before.
 * @param {Record<string, unknown>} properties
 * @param {Record<string, Mark>} marks
 */
export function writeMarks(properties, marks) {
  const cleaned = Object.fromEntries(
    Object.entries(marks).map(([input, mark]) => [input, cleanMark(mark)]),
  );
  if (Object.keys(cleaned).length === 0) {
    delete properties[MARKS_PROPERTY];
  } else {
    properties[MARKS_PROPERTY] = cleaned;
  }
  return properties;
}

/**
 * A mark with only the known keys, blank text and empty values dropped.
 * @param {Record<string, unknown>} mark
 * @returns {Mark}
 */
export function cleanMark(mark) {
  /** @type {Record<string, unknown>} */
  const clean = {};
  for (const key of MARK_KEYS) {
    let value = mark[key];
    if (typeof value === "string") value = value.trim();
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value) && value.length === 0) continue;
    clean[key] = Array.isArray(value) ? [...value] : value;
  }
  return /** @type {Mark} */ (clean);
}

/**
 * What a widget accepts, from the node's definition where there is one
 * (ComfyUI's `object_info` entry for the input) and from the widget itself
 * otherwise.
 * @param {{name: string, type?: string, value?: unknown, options?: any}} widget
 * @param {unknown} [inputSpec] the `[type, options]` pair of the node's definition
 * @returns {WidgetFacts}
 */
export function widgetFacts(widget, inputSpec) {
  const [tag, options] = Array.isArray(inputSpec) ? inputSpec : [];
  const kind = kindOf(tag, widget);
  /** @type {WidgetFacts} */
  const facts = { input: widget.name, kind, value: widget.value };
  const source = isObject(options) ? options : (widget.options ?? {});
  if (kind === "int" || kind === "float") {
    for (const key of ["min", "max"]) {
      if (isFiniteNumber(source[key])) facts[key] = source[key];
    }
    // The widget's own `step` is scaled by ten for historical reasons, so
    // only the definition's step is trusted.
    if (isObject(options) && isFiniteNumber(options.step)) facts.step = options.step;
  }
  if (kind === "choice") facts.choices = comboChoices(tag, options, widget);
  return facts;
}

/**
 * The widgets of a node a client could be given: those that end up as a
 * value in the API format.
 * @param {{widgets?: Array<any>}} node
 * @param {Record<string, unknown>} [inputSpecs] the definition's inputs by name
 * @returns {WidgetFacts[]}
 */
export function markableWidgets(node, inputSpecs = {}) {
  const widgets = Array.isArray(node.widgets) ? node.widgets : [];
  return widgets
    .filter((w) => w && w.name && w.options?.serialize !== false)
    .map((w) => widgetFacts(w, inputSpecs[w.name]));
}

/**
 * Problems with one mark, as sentences; none means the bridge will accept
 * it as far as the editor can tell.
 * @param {Mark} mark
 * @param {WidgetFacts} facts
 * @returns {string[]}
 */
export function validateMark(mark, facts) {
  const where = `${facts.input}:`;
  const problems = [];
  if (mark.name !== undefined && RESERVED_NAMES.has(mark.name)) {
    problems.push(`${where} "${mark.name}" is reserved; choose another name`);
  }
  problems.push(...checkBounds(mark, facts).map((p) => `${where} ${p}`));
  problems.push(...checkChoices(mark, facts).map((p) => `${where} ${p}`));
  return problems;
}

/**
 * The public name a mark gives its input (the bridge's default otherwise).
 * @param {string} nodeId
 * @param {string} input
 * @param {Mark} mark
 */
export function publicName(nodeId, input, mark) {
  return mark.name || `${nodeId}/${input}`;
}

/**
 * Public names used twice across a workflow.
 * @param {Array<{id: string, marks: Record<string, Mark>}>} marked
 * @returns {string[]}
 */
export function duplicateNames(marked) {
  /** @type {Map<string, string>} */
  const seen = new Map();
  const problems = [];
  for (const { id, marks } of marked) {
    for (const [input, mark] of Object.entries(marks)) {
      const name = publicName(id, input, mark);
      const first = seen.get(name);
      if (first) {
        problems.push(`"${name}" names both ${first} and node ${id} ${input}`);
      } else {
        seen.set(name, `node ${id} ${input}`);
      }
    }
  }
  return problems;
}

/**
 * A node's `_meta` with its marks added: `apiinput` as the original bridge
 * reads it, and `bridge_inputs` with the richer fields.
 * @param {Record<string, unknown> | undefined} meta
 * @param {Record<string, Mark>} marks
 */
export function buildMeta(meta, marks) {
  const inputs = Object.keys(marks);
  if (inputs.length === 0) return { ...meta };
  return {
    ...meta,
    apiinput: inputs.join(","),
    bridge_inputs: Object.fromEntries(
      inputs.map((input) => [input, cleanMark(marks[input])]),
    ),
  };
}

/**
 * Add the marks to an API-format workflow, in place.
 *
 * Marks on nodes the export left out (muted, bypassed) are skipped; marks on
 * inputs that hold a link rather than a value are reported, since the bridge
 * refuses them.
 * @param {Record<string, any>} output the API-format workflow
 * @param {Array<{id: string, marks: Record<string, Mark>}>} marked
 * @returns {string[]} problems found
 */
export function applyMarks(output, marked) {
  const problems = [];
  for (const { id, marks } of marked) {
    const node = output[id];
    if (!isObject(node)) continue;
    const inputs = isObject(node.inputs) ? node.inputs : {};
    for (const input of Object.keys(marks)) {
      if (Array.isArray(inputs[input])) {
        problems.push(
          `node ${id} ${input} takes a link from another node; only inputs ` +
            "holding a value can be public",
        );
      }
    }
    node._meta = buildMeta(node._meta, marks);
  }
  return problems;
}

/**
 * Every node of a graph that carries marks, subgraphs included, with the id
 * the API format gives it (`outer:inner` inside a subgraph).
 * @param {{nodes?: Array<any>}} graph
 * @param {string} [prefix]
 * @returns {Array<{id: string, node: any, marks: Record<string, Mark>}>}
 */
export function markedNodes(graph, prefix = "") {
  const found = [];
  for (const node of graph?.nodes ?? []) {
    const id = `${prefix}${node.id}`;
    const marks = readMarks(node.properties);
    if (Object.keys(marks).length > 0) found.push({ id, node, marks });
    const inner = node.isSubgraphNode?.() ? node.subgraph : undefined;
    if (inner) found.push(...markedNodes(inner, `${id}:`));
  }
  return found;
}

/**
 * @param {unknown} tag
 * @param {{type?: string, value?: unknown, options?: any}} widget
 * @returns {WidgetFacts["kind"]}
 */
function kindOf(tag, widget) {
  if (Array.isArray(tag) || tag === "COMBO") return "choice";
  const byTag = { INT: "int", FLOAT: "float", STRING: "string", BOOLEAN: "boolean" };
  if (typeof tag === "string" && tag in byTag) return byTag[tag];
  switch (widget.type) {
    case "combo":
      return "choice";
    case "toggle":
      return "boolean";
    case "text":
    case "customtext":
      return "string";
    case "number":
      return Number.isInteger(widget.value) && widget.options?.precision === 0
        ? "int"
        : "float";
    default:
      return "other";
  }
}

/**
 * @param {unknown} tag
 * @param {any} options
 * @param {{options?: any}} widget
 * @returns {Array<string|number>}
 */
function comboChoices(tag, options, widget) {
  // Older definitions give the list as the type; newer ones under `options`.
  if (Array.isArray(tag)) return [...tag];
  if (Array.isArray(options?.options)) return [...options.options];
  const values = widget.options?.values;
  return Array.isArray(values) ? [...values] : [];
}

/**
 * @param {Mark} mark
 * @param {WidgetFacts} facts
 * @returns {string[]}
 */
function checkBounds(mark, facts) {
  const given = ["min", "max", "step"].filter((key) => mark[key] !== undefined);
  if (given.length === 0) return [];
  if (facts.kind !== "int" && facts.kind !== "float") {
    return [`bounds apply to numbers, not to a ${facts.kind} input`];
  }
  const problems = [];
  for (const key of given) {
    const value = mark[key];
    if (!isFiniteNumber(value)) {
      problems.push(`${key} must be a number, got ${JSON.stringify(value)}`);
    } else if (facts.kind === "int" && !Number.isInteger(value)) {
      problems.push(`${key} must be a whole number, got ${value}`);
    }
  }
  if (problems.length > 0) return problems;
  const min = mark.min ?? facts.min;
  const max = mark.max ?? facts.max;
  if (mark.min !== undefined && facts.min !== undefined && mark.min < facts.min) {
    problems.push(`min ${mark.min} is below the node's minimum ${facts.min}`);
  }
  if (mark.max !== undefined && facts.max !== undefined && mark.max > facts.max) {
    problems.push(`max ${mark.max} is above the node's maximum ${facts.max}`);
  }
  if (min !== undefined && max !== undefined && min > max) {
    problems.push(`min ${min} is greater than max ${max}`);
  }
  if (mark.step !== undefined && mark.step <= 0) {
    problems.push(`step must be positive, got ${mark.step}`);
  }
  if (isFiniteNumber(facts.value) && outside(facts.value, min, max)) {
    // The current value becomes the input's default, which the bridge
    // refuses outside the bounds.
    problems.push(`the current value ${facts.value} is outside ${min}..${max}`);
  }
  return problems;
}

/**
 * @param {Mark} mark
 * @param {WidgetFacts} facts
 * @returns {string[]}
 */
function checkChoices(mark, facts) {
  if (mark.choices === undefined) return [];
  if (facts.kind !== "choice") {
    return [`choices apply to a list input, not to a ${facts.kind} input`];
  }
  if (!Array.isArray(mark.choices) || mark.choices.length === 0) {
    return ["choose at least one value"];
  }
  const offered = facts.choices ?? [];
  const extra = mark.choices.filter((choice) => !offered.includes(choice));
  if (extra.length > 0) {
    return [`${JSON.stringify(extra)} are not offered by the node`];
  }
  if (!mark.choices.includes(facts.value)) {
    return [`the current value ${JSON.stringify(facts.value)} must be one of the choices`];
  }
  return [];
}

/**
 * @param {number} value
 * @param {number | undefined} min
 * @param {number | undefined} max
 */
function outside(value, min, max) {
  return (min !== undefined && value < min) || (max !== undefined && value > max);
}

/** @param {unknown} value @returns {value is number} */
function isFiniteNumber(value) {
  return typeof value === "number" && Number.isFinite(value);
}

/** @param {unknown} value @returns {value is Record<string, any>} */
function isObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

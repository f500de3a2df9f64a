import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  applyMarks,
  buildMeta,
  cleanMark,
  duplicateNames,
  MARKS_PROPERTY,
  markableWidgets,
  markedNodes,
  readMarks,
  validateMark,
  widgetFacts,
  writeMarks,
} from "../web/marks.js";

const seedSpec = ["INT", { default: 0, min: 0, max: 2 ** 53, control_after_generate: true }];
const cfgSpec = ["FLOAT", { default: 8, min: 0, max: 100, step: 0.1 }];
const samplerSpec = [["euler", "dpmpp_2m", "ddim"]];
const schedulerSpec = ["COMBO", { options: ["normal", "karras"] }];

describe("reading and writing marks", () => {
  it("keeps only known keys and drops blanks", () => {
    const properties = {
      [MARKS_PROPERTY]: {
        seed: { name: " seed ", description: "", min: 0, other: 1 },
        bad: "not an object",
      },
    };
    assert.deepEqual(readMarks(properties), { seed: { name: "seed", min: 0 } });
  });

  it("reads nothing from a node without marks", () => {
    assert.deepEqual(readMarks(undefined), {});
    assert.deepEqual(readMarks({ [MARKS_PROPERTY]: [1, 2] }), {});
  });

  it("removes the property when no input is marked", () => {
    const properties = { "Node name for S&R": "KSampler", [MARKS_PROPERTY]: { a: {} } };
    writeMarks(properties, {});
    assert.deepEqual(properties, { "Node name for S&R": "KSampler" });
  });

  it("survives a JSON round trip, as a saved or pasted workflow does", () => {
    const properties = writeMarks({}, { seed: { name: "seed", max: 99 }, cfg: {} });
    const reloaded = JSON.parse(JSON.stringify({ properties })).properties;
    assert.deepEqual(readMarks(reloaded), { seed: { name: "seed", max: 99 }, cfg: {} });
  });

  it("copies choices instead of sharing them", () => {
    const choices = ["a"];
    const mark = cleanMark({ choices });
    choices.push("b");
    assert.deepEqual(mark.choices, ["a"]);
  });
});

describe("widget facts", () => {
  it("takes bounds from the node's definition", () => {
    const facts = widgetFacts({ name: "cfg", type: "number", value: 7, options: { step: 1 } }, cfgSpec);
    assert.deepEqual(facts, { input: "cfg", kind: "float", value: 7, min: 0, max: 100, step: 0.1 });
  });

  it("reads combos in the old and the new definition format", () => {
    assert.deepEqual(widgetFacts({ name: "s", value: "euler" }, samplerSpec).choices, samplerSpec[0]);
    assert.deepEqual(widgetFacts({ name: "s", value: "normal" }, schedulerSpec).choices, [
      "normal",
      "karras",
    ]);
  });

  it("falls back to the widget without a definition", () => {
    const combo = { name: "m", type: "combo", value: "x", options: { values: ["x", "y"] } };
    assert.deepEqual(widgetFacts(combo), { input: "m", kind: "choice", value: "x", choices: ["x", "y"] });
    const toggle = widgetFacts({ name: "t", type: "toggle", value: true });
    assert.equal(toggle.kind, "boolean");
    const number = widgetFacts({ name: "n", type: "number", value: 2, options: { min: 1, max: 9, step: 10 } });
    assert.deepEqual(number, { input: "n", kind: "float", value: 2, min: 1, max: 9 });
  });

  it("lists only widgets that end up in the API format", () => {
    const node = {
      widgets: [
        { name: "seed", type: "number", value: 1, options: {} },
        { name: "control_after_generate", type: "combo", value: "fixed", options: { serialize: false } },
        { name: "", type: "button", options: {} },
      ],
    };
    assert.deepEqual(
      markableWidgets(node, { seed: seedSpec }).map((f) => f.input),
      ["seed"],
    );
  });
});

describe("validating a mark", () => {
  const seed = widgetFacts({ name: "seed", value: 5 }, seedSpec);
  const cfg = widgetFacts({ name: "cfg", value: 7.5 }, cfgSpec);
  const sampler = widgetFacts({ name: "sampler_name", value: "euler" }, samplerSpec);

  it("accepts narrower bounds and a subset of choices", () => {
    assert.deepEqual(validateMark({ min: 1, max: 10, step: 1 }, seed), []);
    assert.deepEqual(validateMark({ min: 1.5, max: 12.5 }, cfg), []);
    assert.deepEqual(validateMark({ choices: ["euler", "ddim"] }, sampler), []);
  });

  it("refuses bounds wider than the node's", () => {
    assert.deepEqual(validateMark({ min: -1 }, seed), [
      "seed: min -1 is below the node's minimum 0",
    ]);
    assert.deepEqual(validateMark({ max: 101 }, cfg), [
      "cfg: max 101 is above the node's maximum 100",
    ]);
  });

  it("refuses crossed bounds, a bad step and fractions for whole numbers", () => {
    assert.deepEqual(validateMark({ min: 9, max: 6 }, seed), [
      "seed: min 9 is greater than max 6",
      "seed: the current value 5 is outside 9..6",
    ]);
    assert.deepEqual(validateMark({ step: 0 }, cfg), ["cfg: step must be positive, got 0"]);
    assert.deepEqual(validateMark({ max: 2.5 }, seed), ["seed: max must be a whole number, got 2.5"]);
    assert.deepEqual(validateMark({ min: "1" }, seed), ['seed: min must be a number, got "1"']);
  });

  it("refuses bounds that leave out the current value, the input's default", () => {
    assert.deepEqual(validateMark({ max: 4 }, seed), ["seed: the current value 5 is outside 0..4"]);
  });

  it("refuses bounds on a list and choices on a number", () => {
    assert.deepEqual(validateMark({ min: 1 }, sampler), [
      "sampler_name: bounds apply to numbers, not to a choice input",
    ]);
    assert.deepEqual(validateMark({ choices: [1] }, seed), [
      "seed: choices apply to a list input, not to a int input",
    ]);
  });

  it("refuses choices the node does not offer or that leave out the value", () => {
    assert.deepEqual(validateMark({ choices: ["euler", "lms"] }, sampler), [
      'sampler_name: ["lms"] are not offered by the node',
    ]);
    assert.deepEqual(validateMark({ choices: ["ddim"] }, sampler), [
      'sampler_name: the current value "euler" must be one of the choices',
    ]);
  });

  it("refuses the bridge's reserved name", () => {
    assert.deepEqual(validateMark({ name: "workflow" }, seed), [
      'seed: "workflow" is reserved; choose another name',
    ]);
  });

  it("finds a public name used twice", () => {
    const marked = [
      { id: "3", marks: { seed: { name: "seed" }, cfg: {} } },
      { id: "9", marks: { noise_seed: { name: "seed" } } },
    ];
    assert.deepEqual(duplicateNames(marked), ['"seed" names both node 3 seed and node 9 noise_seed']);
  });
});

describe("building _meta", () => {
  it("writes apiinput as the original bridge reads it, beside the rich fields", () => {
    const meta = buildMeta({ title: "KSampler" }, { seed: { name: "seed", max: 9 }, cfg: {} });
    assert.deepEqual(meta, {
      title: "KSampler",
      apiinput: "seed,cfg",
      bridge_inputs: { seed: { name: "seed", max: 9 }, cfg: {} },
    });
  });

  it("leaves an unmarked node's _meta alone", () => {
    assert.deepEqual(buildMeta({ title: "x" }, {}), { title: "x" });
  });

  it("marks the exported nodes and reports linked inputs", () => {
    const output = {
      3: { class_type: "KSampler", inputs: { seed: 1, cfg: ["7", 0] }, _meta: { title: "K" } },
    };
    const problems = applyMarks(output, [
      { id: "3", marks: { seed: {}, cfg: {} } },
      { id: "8", marks: { seed: {} } },
    ]);
    assert.deepEqual(output[3]._meta, {
      title: "K",
      apiinput: "seed,cfg",
      bridge_inputs: { seed: {}, cfg: {} },
    });
    assert.deepEqual(problems, [
      "node 3 cfg takes a link from another node; only inputs holding a value can be public",
    ]);
    assert.equal(output[8], undefined);
  });

  it("finds marked nodes inside subgraphs under their API-format ids", () => {
    const inner = { nodes: [{ id: 4, properties: { [MARKS_PROPERTY]: { seed: {} } } }] };
    const graph = {
      nodes: [
        { id: 1, properties: {} },
        { id: 2, properties: { [MARKS_PROPERTY]: { a: {} } } },
        { id: 7, properties: {}, isSubgraphNode: () => true, subgraph: inner },
      ],
    };
    assert.deepEqual(
      markedNodes(graph).map(({ id, marks }) => [id, Object.keys(marks)]),
      [
        ["2", ["a"]],
        ["7:4", ["seed"]],
      ],
    );
  });
});

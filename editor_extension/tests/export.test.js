// The workflow an author marks in the editor, exported as ComfyUI's
// graphToPrompt would, with the marks applied. The result is the fixture the
// Python tests register in the bridge; UPDATE_FIXTURES=1 rewrites it.
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { it } from "node:test";

import { applyMarks, markableWidgets, markedNodes, validateMark, writeMarks } from "../web/marks.js";

const fixtures = new URL("./fixtures/", import.meta.url);
const objectInfo = JSON.parse(readFileSync(new URL("object_info.json", fixtures), "utf8"));
const exported = new URL("marked_workflow.json", fixtures);

/** An editor node: its widgets hold the values the API format will carry. */
function editorNode(id, type, values) {
  const options = { serialize: true };
  const widgets = Object.entries(values).map(([name, value]) => ({ name, value, options }));
  return { id, type, comfyClass: type, title: type, properties: {}, widgets };
}

const nodes = [
  editorNode(1, "EmptyImage", { width: 512, height: 384, batch_size: 1, color: 3355443 }),
  editorNode(2, "ImageScale", { upscale_method: "bicubic", width: 256, height: 256, crop: "disabled" }),
  editorNode(3, "ImageBlur", { blur_radius: 3, sigma: 1.5 }),
  editorNode(4, "SaveImage", { filename_prefix: "bridge-editor" }),
];
const links = { 2: { image: ["1", 0] }, 3: { image: ["2", 0] }, 4: { images: ["3", 0] } };

const marks = {
  1: {
    width: { name: "width", description: "Width in pixels", min: 64, max: 2048, step: 8 },
    color: { name: "colour", description: "Background colour as 0xRRGGBB" },
  },
  2: {
    upscale_method: {
      name: "method",
      description: "How to resize",
      choices: ["bilinear", "bicubic", "lanczos"],
    },
  },
  3: { sigma: { description: "Blur strength", max: 5 } },
};

/** What graphToPrompt gives for these nodes, before the extension adds marks. */
function apiFormat() {
  return Object.fromEntries(
    nodes.map((node) => [
      String(node.id),
      {
        inputs: {
          ...Object.fromEntries(node.widgets.map((w) => [w.name, w.value])),
          ...links[node.id],
        },
        class_type: node.type,
        _meta: { title: node.title },
      },
    ]),
  );
}

it("marks validate against the nodes' definitions", () => {
  for (const node of nodes) {
    const nodeMarks = marks[node.id] ?? {};
    writeMarks(node.properties, nodeMarks);
    const specs = objectInfo[node.type].input.required;
    for (const facts of markableWidgets(node, specs)) {
      const mark = nodeMarks[facts.input];
      if (mark) assert.deepEqual(validateMark(mark, facts), [], `${node.id} ${facts.input}`);
    }
  }
});

it("the exported workflow carries the marks in _meta", () => {
  const output = apiFormat();
  const graph = { nodes: JSON.parse(JSON.stringify(nodes)) };
  assert.deepEqual(applyMarks(output, markedNodes(graph)), []);
  assert.equal(output[1]._meta.apiinput, "width,color");
  assert.deepEqual(output[3]._meta.bridge_inputs, { sigma: { description: "Blur strength", max: 5 } });
  assert.deepEqual(output[4]._meta, { title: "SaveImage" });
  const text = `${JSON.stringify(output, null, 2)}\n`;
  if (process.env.UPDATE_FIXTURES) writeFileSync(exported, text);
  assert.equal(readFileSync(exported, "utf8"), text, "run with UPDATE_FIXTURES=1 to refresh");
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { bridgeBase, checkForm, describeInput, publish, publishRequest, readAnswer } from "../web/publish.js";

const form = {
  bridgeUrl: "http://127.0.0.1:8021/",
  token: " secret ",
  alias: "blur.v2",
  description: "Blurs a colour",
  workflow: { 1: { class_type: "EmptyImage", inputs: {} } },
  thumbnail: "data:image/png;base64,iVBORw0KGgo=",
};

/** A fetch that records its call and answers with `status` and `body`. */
function fakeFetch(status, body) {
  const calls = [];
  const fetchImpl = async (url, init) => {
    calls.push({ url, init });
    return { status, text: async () => (typeof body === "string" ? body : JSON.stringify(body)) };
  };
  return { calls, fetchImpl };
}

describe("the publish request", () => {
  it("puts the workflow to the admin API with the token", () => {
    const { url, init } = publishRequest(form);
    assert.equal(url, "http://127.0.0.1:8021/v1/workflows/blur.v2");
    assert.equal(init.method, "PUT");
    assert.equal(init.headers.Authorization, "Bearer secret");
    assert.deepEqual(JSON.parse(init.body), {
      workflow: form.workflow,
      description: "Blurs a colour",
      inputs: [],
      thumbnail: form.thumbnail,
    });
  });

  it("leaves the thumbnail out when there is none", () => {
    const { init } = publishRequest({ ...form, thumbnail: null });
    assert.equal("thumbnail" in JSON.parse(init.body), false);
  });

  it("keeps a path prefix of the bridge URL", () => {
    assert.equal(bridgeBase(" https://example.test/bridge/ "), "https://example.test/bridge");
  });

  it("names what is missing before sending anything", async () => {
    const { calls, fetchImpl } = fakeFetch(200, {});
    const answer = await publish({ ...form, bridgeUrl: "", token: "", alias: "-x" }, fetchImpl);
    assert.equal(answer.ok, false);
    assert.equal(calls.length, 0);
    assert.deepEqual(checkForm({ ...form, bridgeUrl: "ftp://x" }), [
      "the bridge URL must start with http:// or https://",
    ]);
    assert.equal(answer.details.length, 3);
  });
});

describe("the bridge's answer", () => {
  it("lists the registered inputs", async () => {
    const body = {
      alias: "blur.v2",
      inputs: [
        { name: "width", type: "int", minimum: 64, maximum: 2048, description: "Width" },
        { name: "method", type: "choice", choices: ["area", "bicubic"] },
      ],
    };
    const { fetchImpl } = fakeFetch(200, body);
    assert.deepEqual(await publish(form, fetchImpl), {
      ok: true,
      message: 'Published "blur.v2" with 2 input(s)',
      details: ["width (int) 64..2048 : Width", "method (choice) one of area, bicubic"],
    });
  });

  it("shows the bridge's own error", () => {
    const body = { code: "workflow_invalid", detail: "input 'width': min 0 is below" };
    assert.deepEqual(readAnswer(422, JSON.stringify(body)), {
      ok: false,
      message: "The bridge answered 422 (workflow_invalid)",
      details: ["input 'width': min 0 is below"],
    });
  });

  it("shows request validation errors field by field", () => {
    const body = { detail: [{ loc: ["body", "workflow"], msg: "Field required" }] };
    assert.deepEqual(readAnswer(422, JSON.stringify(body)).details, ["body.workflow: Field required"]);
  });

  it("shows a body that is not JSON", () => {
    assert.deepEqual(readAnswer(502, "Bad Gateway"), {
      ok: false,
      message: "The bridge answered 502",
      details: ["Bad Gateway"],
    });
  });

  it("explains an unreachable bridge, CORS included", async () => {
    const answer = await publish(form, async () => {
      throw new TypeError("Failed to fetch");
    });
    assert.equal(answer.ok, false);
    assert.match(answer.message, /Could not reach the bridge/);
    assert.match(answer.details.join(" "), /BRIDGE_CORS_ORIGINS/);
  });

  it("describes an input without bounds", () => {
    assert.equal(describeInput({ name: "prompt", type: "string" }), "prompt (string)");
  });
});

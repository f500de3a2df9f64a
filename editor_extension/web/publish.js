/**
 * Publishing a workflow to a bridge: the request to its admin API and the
 * reading of its answer. The network call is given `fetch`, so it runs (and
 * is tested) outside the editor.
 *
 * @module publish
 */

/** The bridge's rule for an alias: a slug of up to 128 characters. */
const ALIAS = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/**
 * @typedef {object} PublishForm
 * @property {string} bridgeUrl the bridge's base URL, from the settings
 * @property {string} token the bridge's admin token, from the settings
 * @property {string} alias the name clients will run the workflow by
 * @property {string} description what the workflow does
 * @property {Record<string, unknown>} workflow the API-format workflow
 * @property {string | null} [thumbnail] a base64 image (a data URL is fine)
 */

/**
 * @typedef {object} Answer
 * @property {boolean} ok
 * @property {string} message one line for the author
 * @property {string[]} details more lines: the inputs, or the errors
 */

/**
 * The bridge's base URL without a trailing slash.
 * @param {string} text
 * @returns {string}
 * @throws {Error} when it is not an http(s) URL
 */
export function bridgeBase(text) {
  let url;
  try {
    url = new URL(String(text ?? "").trim());
  } catch {
    throw new Error("set the bridge URL in the settings (comfy-bridge)");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new Error(`the bridge URL must start with http:// or https://`);
  }
  return url.href.replace(/\/+$/, "");
}

/**
 * Problems with the form before anything is sent.
 * @param {PublishForm} form
 * @returns {string[]}
 */
export function checkForm(form) {
  const problems = [];
  try {
    bridgeBase(form.bridgeUrl);
  } catch (error) {
    problems.push(error.message);
  }
  if (!String(form.token ?? "").trim()) {
    problems.push("set the admin token in the settings (comfy-bridge)");
  }
  if (!ALIAS.test(form.alias ?? "")) {
    problems.push(
      "the alias must be 1 to 128 letters, digits, '-', '_' or '.', " +
        "starting with a letter or digit",
    );
  }
  return problems;
}

/**
 * The admin API request that adds (or replaces) the workflow.
 * @param {PublishForm} form
 * @returns {{url: string, init: RequestInit}}
 */
export function publishRequest(form) {
  const body = {
    workflow: form.workflow,
    description: form.description ?? "",
    inputs: [],
  };
  if (form.thumbnail) body.thumbnail = form.thumbnail;
  return {
    url: `${bridgeBase(form.bridgeUrl)}/v1/workflows/${encodeURIComponent(form.alias)}`,
    init: {
      method: "PUT",
      headers: {
        "Content-Type": "application/json",
        Authorization: `Bearer ${form.token.trim()}`,
      },
      body: JSON.stringify(body),
    },
  };
}

/**
 * Send the workflow and read the bridge's answer; never throws.
 * @param {PublishForm} form
 * @param {typeof fetch} fetchImpl
 * @returns {Promise<Answer>}
 */
export async function publish(form, fetchImpl) {
  const problems = checkForm(form);
  if (problems.length > 0) {
    return { ok: false, message: "Not sent", details: problems };
  }
  const { url, init } = publishRequest(form);
  let response;
  try {
    response = await fetchImpl(url, init);
  } catch (error) {
    return unreachable(url, error);
  }
  return readAnswer(response.status, await response.text());
}

/**
 * What the bridge answered, for the author.
 * @param {number} status
 * @param {string} text the response body
 * @returns {Answer}
 */
export function readAnswer(status, text) {
  const body = parseJson(text);
  if (status >= 200 && status < 300 && body && typeof body === "object") {
    const inputs = Array.isArray(body.inputs) ? body.inputs : [];
    return {
      ok: true,
      message: `Published "${body.alias}" with ${inputs.length} input(s)`,
      details: inputs.map(describeInput),
    };
  }
  return {
    ok: false,
    message: `The bridge answered ${status}${codeOf(body)}`,
    details: errorLines(body, text),
  };
}

/**
 * One line for an input of the bridge's workflow description.
 * @param {Record<string, any>} input
 */
export function describeInput(input) {
  const parts = [`${input.name} (${input.type})`];
  if (input.minimum != null || input.maximum != null) {
    parts.push(`${input.minimum ?? "…"}..${input.maximum ?? "…"}`);
  }
  if (Array.isArray(input.choices)) parts.push(`one of ${input.choices.join(", ")}`);
  if (input.description) parts.push(`: ${input.description}`);
  return parts.join(" ");
}

/**
 * @param {string} url
 * @param {unknown} error
 * @returns {Answer}
 */
function unreachable(url, error) {
  const origin = globalThis.location?.origin ?? "this editor's origin";
  return {
    ok: false,
    message: `Could not reach the bridge at ${url}`,
    details: [
      String(error instanceof Error ? error.message : error),
      "Is the bridge running, and does its BRIDGE_CORS_ORIGINS setting " +
        `include ${origin}?`,
    ],
  };
}

/** @param {unknown} body */
function codeOf(body) {
  return body && typeof body === "object" && typeof body.code === "string"
    ? ` (${body.code})`
    : "";
}

/**
 * The bridge's own errors carry `detail` as text; request validation errors
 * carry a list of `{loc, msg}`.
 * @param {any} body
 * @param {string} text
 * @returns {string[]}
 */
function errorLines(body, text) {
  const detail = body && typeof body === "object" ? body.detail : undefined;
  if (typeof detail === "string") return [detail];
  if (Array.isArray(detail)) {
    return detail.map((item) =>
      Array.isArray(item?.loc) ? `${item.loc.join(".")}: ${item.msg}` : String(item),
    );
  }
  return text ? [text.slice(0, 500)] : [];
}

/** @param {string} text */
function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

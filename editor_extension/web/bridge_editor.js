/**
 * The editor extension: a node menu entry to mark public inputs, the marks
 * added to every API-format export and queued prompt, and "Publish to
 * bridge".
 *
 * Everything the editor offers is feature-detected: when a hook is missing
 * the extension says so once and leaves the editor as it was.
 *
 * @module bridge_editor
 */

import {
  applyMarks,
  duplicateNames,
  markableWidgets,
  markedNodes,
  publicName,
  readMarks,
  validateMark,
  widgetFacts,
  writeMarks,
} from "./marks.js";
import { publish } from "./publish.js";
import { openMarksDialog, openPublishDialog } from "./ui.js";

const EXTENSION = "comfy_bridge.editor";
const SETTING_URL = "ComfyBridge.Publish.BridgeURL";
const SETTING_TOKEN = "ComfyBridge.Publish.AdminToken";
const PUBLISH_COMMAND = "ComfyBridge.PublishWorkflow";
const MENU_LABEL = "Bridge inputs…";
const PUBLISH_LABEL = "Publish to bridge…";
const THUMBNAIL_SIDE = 384;

/** The definitions' inputs by node class, recorded as the editor registers them. */
const inputSpecs = new Map();
/** The last image a node showed after a run, as ComfyUI names it. */
let lastImage = null;

/**
 * The editor's app and api objects: the globals the frontend publishes for
 * extensions, or its compatibility modules.
 */
async function loadComfy() {
  const shared = globalThis.comfyAPI;
  if (shared?.app?.app && shared?.api?.api) {
    return { app: shared.app.app, api: shared.api.api };
  }
  const [appModule, apiModule] = await Promise.all([
    import("../../scripts/app.js"),
    import("../../scripts/api.js"),
  ]);
  return { app: appModule.app, api: apiModule.api };
}

/**
 * Tell the author something: the editor's toasts if it has them, the
 * console otherwise.
 * @param {any} app
 * @param {"info"|"warn"|"error"|"success"} severity
 * @param {string} detail
 */
function notify(app, severity, detail) {
  const toast = app?.extensionManager?.toast;
  if (typeof toast?.add === "function") {
    toast.add({ severity, summary: "comfy-bridge", detail, life: 8000 });
  }
  (severity === "error" ? console.error : console.warn)(`[comfy-bridge] ${detail}`);
}

/**
 * @param {any} app
 * @param {string} id
 */
function setting(app, id) {
  const store = app.extensionManager?.setting;
  if (typeof store?.get === "function") return store.get(id);
  return app.ui?.settings?.getSettingValue?.(id);
}

/** @param {any} node */
function nodeInputSpecs(node) {
  return inputSpecs.get(node.comfyClass ?? node.type) ?? {};
}

/**
 * The node's id as the API format writes it (`outer:inner` in a subgraph).
 * @param {any} app
 * @param {any} node
 */
function exportId(app, node) {
  return findPath(app.graph, node) ?? String(node.id);
}

/**
 * Where a node sits among nested subgraphs, as an API-format id.
 * @param {any} graph
 * @param {any} node
 * @param {string} [prefix]
 * @returns {string | null}
 */
function findPath(graph, node, prefix = "") {
  for (const candidate of graph?.nodes ?? []) {
    const id = `${prefix}${candidate.id}`;
    if (candidate === node) return id;
    if (candidate.isSubgraphNode?.() && candidate.subgraph) {
      const inner = findPath(candidate.subgraph, node, `${id}:`);
      if (inner) return inner;
    }
  }
  return null;
}

/**
 * The node menu entry.
 * @param {any} app
 * @param {any} node
 */
function nodeMenuItem(app, node) {
  const count = Object.keys(readMarks(node.properties)).length;
  return {
    content: count ? `${MENU_LABEL} (${count} public)` : MENU_LABEL,
    callback: () => openMarks(app, node),
  };
}

/**
 * @param {any} app
 * @param {any} node
 */
function openMarks(app, node) {
  const specs = nodeInputSpecs(node);
  openMarksDialog({
    nodeId: exportId(app, node),
    title: node.title ?? node.type,
    facts: markableWidgets(node, specs),
    marks: readMarks(node.properties),
    onSave: (marks) => {
      node.properties ??= {};
      writeMarks(node.properties, marks);
      markChanged(app);
    },
  });
}

/**
 * Let the editor know the workflow changed, so it is saved (and undoable).
 * @param {any} app
 */
function markChanged(app) {
  app.graph?.setDirtyCanvas?.(true, true);
  app.extensionManager?.workflow?.activeWorkflow?.changeTracker?.checkState?.();
}

/**
 * Problems with every mark of the workflow, checked against the widgets.
 * @param {Array<{id: string, node: any, marks: Record<string, any>}>} marked
 */
function markProblems(marked) {
  const problems = duplicateNames(marked);
  for (const { id, node, marks } of marked) {
    const widgets = new Map((node.widgets ?? []).map((w) => [w.name, w]));
    for (const [input, mark] of Object.entries(marks)) {
      const widget = widgets.get(input);
      if (!widget) {
        problems.push(`node ${id}: ${input} is marked but the node has no such widget`);
        continue;
      }
      const facts = widgetFacts(widget, nodeInputSpecs(node)[input]);
      problems.push(...validateMark(mark, facts).map((p) => `node ${id} ${p}`));
    }
  }
  return problems;
}

/**
 * Wrap the app's graph-to-prompt step, which both "Export (API)" and
 * queueing use, so the marks travel in every API-format workflow.
 * @param {any} app
 */
function hookPromptExport(app) {
  const original = app.graphToPrompt;
  if (typeof original !== "function") {
    notify(app, "warn", "this editor has no graphToPrompt; marks will not be exported");
    return;
  }
  app.graphToPrompt = async function (...args) {
    const result = await original.apply(this, args);
    try {
      const problems = applyMarks(result?.output ?? {}, markedNodes(args[0] ?? app.graph));
      if (problems.length) notify(app, "warn", problems.join("\n"));
    } catch (error) {
      notify(app, "error", `could not add the marks: ${error}`);
    }
    return result;
  };
}

/**
 * Remember the last image an output node showed, for the thumbnail.
 * @param {any} api
 */
function watchOutputs(api) {
  api?.addEventListener?.("executed", (event) => {
    const images = event?.detail?.output?.images;
    if (Array.isArray(images) && images.length) lastImage = images.at(-1);
  });
}

/**
 * The last output image, scaled down and re-drawn so that none of the
 * metadata ComfyUI writes into its PNGs (the whole graph) is published.
 * @param {any} app
 * @param {any} api
 * @returns {Promise<string | null>} a PNG data URL
 */
async function thumbnail(app, api) {
  const source = lastImageUrl(app, api);
  if (!source) return null;
  try {
    const image = new Image();
    image.src = source;
    await image.decode();
    const scale = Math.min(1, THUMBNAIL_SIDE / Math.max(image.width, image.height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(image.width * scale));
    canvas.height = Math.max(1, Math.round(image.height * scale));
    canvas.getContext("2d").drawImage(image, 0, 0, canvas.width, canvas.height);
    return canvas.toDataURL("image/png");
  } catch (error) {
    notify(app, "warn", `no thumbnail: ${error}`);
    return null;
  }
}

/**
 * @param {any} app
 * @param {any} api
 * @returns {string | null}
 */
function lastImageUrl(app, api) {
  if (lastImage?.filename) {
    const query = new URLSearchParams({
      filename: lastImage.filename,
      subfolder: lastImage.subfolder ?? "",
      type: lastImage.type ?? "output",
    });
    return api?.apiURL ? api.apiURL(`/view?${query}`) : `/view?${query}`;
  }
  // After a reload only the nodes' own previews are left.
  const shown = (app.graph?.nodes ?? []).flatMap((node) => node.imgs ?? []);
  return shown.at(-1)?.src ?? null;
}

/**
 * An alias from the open workflow's name.
 * @param {any} app
 */
function suggestedAlias(app) {
  const name = app.extensionManager?.workflow?.activeWorkflow?.filename ?? "";
  return name.replace(/[^A-Za-z0-9_.-]+/g, "-").replace(/^[^A-Za-z0-9]+/, "").slice(0, 128);
}

/**
 * @param {any} app
 * @param {any} api
 */
async function openPublish(app, api) {
  const marked = markedNodes(app.graph);
  openPublishDialog({
    alias: suggestedAlias(app),
    inputs: marked.flatMap(({ id, marks }) =>
      Object.entries(marks).map(([input, mark]) => publicName(id, input, mark)),
    ),
    problems: markProblems(marked),
    thumbnail: await thumbnail(app, api),
    onPublish: async (form) => {
      const prompt = await app.graphToPrompt();
      return publish(
        {
          ...form,
          bridgeUrl: setting(app, SETTING_URL),
          token: setting(app, SETTING_TOKEN),
          workflow: prompt.output,
        },
        (url, init) => fetch(url, init),
      );
    },
  });
}

/**
 * Newer editors collect menu entries from extensions; older ones only from
 * the nodes' and the canvas's own methods.
 * @param {any} app
 */
function collectsMenus(app) {
  return typeof app.collectNodeMenuItems === "function";
}

/**
 * The menus of editors that do not collect them from extensions.
 * @param {any} app
 * @param {any} api
 */
function addLegacyCanvasMenu(app, api) {
  const canvasClass = globalThis.LGraphCanvas;
  const original = canvasClass?.prototype?.getCanvasMenuOptions;
  if (typeof original !== "function") return;
  canvasClass.prototype.getCanvasMenuOptions = function (...args) {
    const options = original.apply(this, args);
    if (Array.isArray(options)) {
      options.push(null, { content: PUBLISH_LABEL, callback: () => openPublish(app, api) });
    }
    return options;
  };
}

/**
 * @param {any} nodeType
 * @param {any} app
 */
function addLegacyNodeMenu(nodeType, app) {
  const original = nodeType.prototype.getExtraMenuOptions;
  nodeType.prototype.getExtraMenuOptions = function (canvas, options, ...rest) {
    const extra = original?.call(this, canvas, options, ...rest);
    if (Array.isArray(options)) options.push(null, nodeMenuItem(app, this));
    return extra;
  };
}

/**
 * @param {any} app
 * @param {any} api
 */
function register(app, api) {
  app.registerExtension({
    name: EXTENSION,
    settings: [
      {
        id: SETTING_URL,
        category: ["comfy-bridge", "Publish", "Bridge URL"],
        name: "Bridge URL (e.g. http://127.0.0.1:8000)",
        type: "text",
        defaultValue: "",
      },
      {
        id: SETTING_TOKEN,
        category: ["comfy-bridge", "Publish", "Admin token"],
        name: "The bridge's admin token (BRIDGE_ADMIN_TOKEN)",
        tooltip: "Kept in this ComfyUI's user settings, like every other setting.",
        type: "text",
        defaultValue: "",
      },
    ],
    commands: [
      { id: PUBLISH_COMMAND, label: "Publish to bridge", function: () => openPublish(app, api) },
    ],
    menuCommands: [{ path: ["Workflow"], commands: [PUBLISH_COMMAND] }],
    beforeRegisterNodeDef(nodeType, nodeData) {
      inputSpecs.set(nodeData?.name, {
        ...(nodeData?.input?.required ?? {}),
        ...(nodeData?.input?.optional ?? {}),
      });
      if (!collectsMenus(app)) addLegacyNodeMenu(nodeType, app);
    },
    getNodeMenuItems(node) {
      return [null, nodeMenuItem(app, node)];
    },
    getCanvasMenuItems() {
      return [null, { content: PUBLISH_LABEL, callback: () => openPublish(app, api) }];
    },
    setup() {
      hookPromptExport(app);
      watchOutputs(api);
      if (!collectsMenus(app)) addLegacyCanvasMenu(app, api);
    },
  });
}

try {
  const { app, api } = await loadComfy();
  if (typeof app?.registerExtension !== "function") {
    throw new Error("this editor has no app.registerExtension");
  }
  register(app, api);
} catch (error) {
  console.error("[comfy-bridge] the editor extension is not active:", error);
}

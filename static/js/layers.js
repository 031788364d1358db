// Transfer learning: the layers of a layers-model version (fetched when the
// panel is first opened), a filter, and for the chosen layer two ways to
// load the model up to it: the served cut, and the classic getLayer recipe.
(() => {
  "use strict";

  const { h } = window.modelport;
  const section = document.getElementById("layers");
  if (!section) return;

  const page = document.getElementById("model-page");
  const panel = section.querySelector("[data-layers-panel]");
  const versionSelect = document.getElementById("layers-version");
  const filterInput = document.getElementById("layers-filter");
  const status = section.querySelector("[data-layers-status]");
  const list = section.querySelector("[data-layers-list]");
  const rows = section.querySelector("[data-layers-rows]");
  const snippets = section.querySelector("[data-layers-snippets]");
  const cutCode = section.querySelector("[data-cut-snippet] [data-snippet]");
  const recipeCode = section.querySelector("[data-recipe-snippet] [data-snippet]");
  // MobileNet's usual base: the last block, before pooling and the classifier.
  const PREFERRED = "conv_pw_13_relu";
  const fetched = new Map(); // layers URL -> promise of the layer list
  let layers = [];
  let chosen = null; // layer name, kept when another version is shown
  let shownUrl = null;

  // Like TF.js prints shapes: [null, 4, 4, 256]; an InputLayer's one-item list is unwrapped.
  function formatShape(shape) {
    if (!Array.isArray(shape)) return "\u2014";
    const one = (dims) => `[${dims.map((dim) => (dim === null ? "null" : dim)).join(", ")}]`;
    if (shape.length && shape.every(Array.isArray)) return shape.map(one).join(", ");
    return one(shape);
  }

  function layerRow(layer) {
    return h(
      "tr",
      { "data-layer": layer.name },
      h(
        "td",
        {},
        h(
          "label",
          { class: "layer-choice" },
          h("input", { type: "radio", name: "layer", value: layer.name }),
          h("span", { class: "layer-name" }, layer.name),
        ),
      ),
      h("td", { class: "layer-class" }, layer.class_name),
      h("td", { class: "layer-shape" }, formatShape(layer.output_shape)),
    );
  }

  function selectedVersion() {
    return versionSelect.selectedOptions[0];
  }

  function getLayers(url) {
    if (!fetched.has(url)) {
      const request = fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" }).then(
        async (response) => {
          if (!response.ok) throw new Error(`the server answered ${response.status}`);
          return response.json();
        },
      );
      // A failed request is tried again next time.
      request.catch(() => fetched.delete(url));
      fetched.set(url, request);
    }
    return fetched.get(url);
  }

  function showCount() {
    const query = filterInput.value.trim();
    const visible = [...rows.rows].filter((row) => !row.hidden).length;
    if (!layers.length) status.textContent = "No layer list was recorded for this version.";
    else if (!query) status.textContent = `${layers.length} layers. Pick the one whose output your model builds on.`;
    else if (!visible) status.textContent = `No layer name or class contains \u201c${query}\u201d.`;
    else status.textContent = `${visible} of ${layers.length} layers match \u201c${query}\u201d.`;
  }

  function applyFilter() {
    const query = filterInput.value.trim().toLowerCase();
    for (const [index, row] of [...rows.rows].entries()) {
      const layer = layers[index];
      row.hidden = Boolean(query) && !`${layer.name} ${layer.class_name}`.toLowerCase().includes(query);
    }
    showCount();
  }

  function choose(name, { scroll = false } = {}) {
    const layer = layers.find((item) => item.name === name);
    if (!layer) return;
    chosen = name;
    for (const row of rows.rows) {
      const selected = row.dataset.layer === name;
      row.classList.toggle("selected", selected);
      row.querySelector("input").checked = selected;
    }
    const modelUrl = selectedVersion().dataset.modelUrl;
    cutCode.textContent = `const base = await tf.loadLayersModel('${layer.cut_url}');`;
    recipeCode.textContent =
      `const m = await tf.loadLayersModel('${modelUrl}');\n` +
      `const base = tf.model({inputs: m.inputs, outputs: m.getLayer('${name}').output});`;
    snippets.hidden = false;
    if (scroll) {
      // Scroll the list only, not the page.
      const row = rows.querySelector(`tr[data-layer="${CSS.escape(name)}"]`);
      const offset = row.getBoundingClientRect().top - list.getBoundingClientRect().top;
      list.scrollTop += offset - list.clientHeight / 2;
    }
  }

  function defaultLayer() {
    if (chosen && layers.some((layer) => layer.name === chosen)) return chosen;
    if (layers.some((layer) => layer.name === PREFERRED)) return PREFERRED;
    return layers[Math.max(layers.length - 2, 0)].name;
  }

  async function show() {
    const option = selectedVersion();
    if (!option || option.dataset.layersUrl === shownUrl) return;
    const url = option.dataset.layersUrl;
    shownUrl = url;
    status.textContent = `Loading the layers of version ${option.value}\u2026`;
    let loaded;
    try {
      loaded = await getLayers(url);
    } catch (error) {
      shownUrl = null;
      status.textContent = `Could not load the layers (${error.message}); close and open the panel to try again.`;
      return;
    }
    if (url !== shownUrl) return; // another version was chosen meanwhile
    layers = loaded;
    rows.replaceChildren(...layers.map(layerRow));
    list.hidden = !layers.length;
    snippets.hidden = true;
    applyFilter();
    if (layers.length) choose(defaultLayer(), { scroll: true });
  }

  panel.addEventListener("toggle", () => {
    if (panel.open) show();
  });
  versionSelect.addEventListener("change", show);
  filterInput.addEventListener("input", applyFilter);
  rows.addEventListener("change", (event) => {
    if (event.target.name === "layer") choose(event.target.value);
  });
  // The whole row picks the layer, not only its name.
  rows.addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-layer]");
    if (row && !event.target.closest("label")) choose(row.dataset.layer);
  });

  // Newly ready layers-model versions (events from model_page.js).
  page.addEventListener("modelport:versions", (event) => {
    const ready = event.detail
      .filter((version) => version.status === "ready" && version.format === "layers-model")
      .sort((a, b) => b.number - a.number);
    const current = [...versionSelect.options].map((option) => option.value).join();
    if (!ready.length || current === ready.map((version) => String(version.number)).join()) return;
    // Newest first; an older version the user picked stays picked.
    const picked = versionSelect.selectedIndex > 0 ? versionSelect.value : null;
    versionSelect.replaceChildren(
      ...ready.map((version) =>
        h(
          "option",
          {
            value: String(version.number),
            "data-model-url": version.model_url,
            "data-layers-url": `${page.dataset.versionsUrl}${version.number}/layers/`,
          },
          String(version.number),
        ),
      ),
    );
    if (ready.some((version) => String(version.number) === picked)) versionSelect.value = picked;
    section.hidden = false;
    if (panel.open) show();
  });
})();

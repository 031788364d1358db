// "Try it": run the newest ready version in this browser with TensorFlow.js
// (served by Modelport itself, fetched on first use), on the backend the
// user picks. Image models ([N, H, W, 3]) classify a chosen, dropped or
// webcam picture, resized and normalised by the model's metadata or a
// preset, and show the top 5 with the labels of its companion files; other
// models take their input values as JSON.
(() => {
  "use strict";

  const section = document.getElementById("try-it");
  if (!section) return;

  const $ = (selector) => section.querySelector(selector);
  const button = $("[data-try-button]");
  const output = $("[data-try-output]");
  const top = $("[data-try-top]");
  const backendSelect = $("[data-try-backend]");
  const preset = $("[data-try-preset]");
  const preview = $("[data-try-preview]");
  const jsonInput = $("[data-try-json]");
  const TOP_K = 5;
  const scripts = new Map();
  let loaded = null; // {key, model} of the model loaded on the current backend
  let picture = null; // the image, canvas or video frame to classify
  let webcam = null;

  let inputs = [];
  let isImage = false;
  let companions = null;

  function say(text, { error = false } = {}) {
    output.hidden = false;
    output.classList.toggle("try-error", error);
    output.textContent = text;
  }

  function loadScript(src) {
    if (!scripts.has(src)) {
      scripts.set(
        src,
        new Promise((resolve, reject) => {
          const script = document.createElement("script");
          script.src = src;
          script.onload = resolve;
          script.onerror = () => {
            scripts.delete(src);
            script.remove();
            reject(new Error(`could not load ${src}`));
          };
          document.head.append(script);
        }),
      );
    }
    return scripts.get(src);
  }

  async function tfOn(backend) {
    await loadScript(section.dataset.tfjsSrc);
    const tf = window.tf;
    if (backend === "wasm" && !tf.findBackend("wasm")) {
      await loadScript(section.dataset.wasmSrc);
      tf.wasm.setWasmPaths(section.dataset.wasmPath);
    }
    if (tf.getBackend() !== backend && !(await tf.setBackend(backend))) {
      throw new Error(`the ${backend} backend does not work in this browser`);
    }
    await tf.ready();
    return tf;
  }

  async function model(tf) {
    const key = `${section.dataset.modelUrl} ${tf.getBackend()}`;
    if (loaded && loaded.key === key) return { model: loaded.model, loadMs: null };
    if (loaded) loaded.model.dispose();
    const started = performance.now();
    const url = section.dataset.modelUrl;
    const made = section.dataset.format === "graph-model" ? await tf.loadGraphModel(url) : await tf.loadLayersModel(url);
    loaded = { key, model: made };
    return { model: made, loadMs: performance.now() - started };
  }

  // ---- companions: labels and normalisation ----

  async function readCompanions() {
    const found = { labels: [], metadata: null };
    try {
      if (section.dataset.metadataUrl) {
        found.metadata = await (await fetch(section.dataset.metadataUrl)).json();
        if (Array.isArray(found.metadata.labels)) found.labels = found.metadata.labels.map(String);
      }
      if (!found.labels.length && section.dataset.labelsUrl) {
        const text = await (await fetch(section.dataset.labelsUrl)).text();
        found.labels = text.split(/\r?\n/).map((line) => line.trim()).filter(Boolean);
      }
    } catch (error) {
      console.warn("Modelport: could not read the model's companion files", error);
    }
    // A Teachable Machine export: normalise as its library does.
    if (found.metadata && /teachablemachine/.test(String(found.metadata.packageName))) {
      const option = preset.querySelector("option[value=metadata]");
      option.hidden = false;
      option.disabled = false;
      preset.value = "metadata";
    }
    return found;
  }

  function numbers(text, name) {
    const values = text.split(",").map((part) => Number(part.trim()));
    if (values.length !== 3 || values.some((value) => !Number.isFinite(value))) {
      throw new Error(`${name} needs three numbers, one per channel (R, G, B)`);
    }
    return values;
  }

  // Pixels in [0, 255] → what the model expects.
  function normalise(tf, pixels, metadata) {
    const choice = preset.value;
    if (choice === "metadata") return pixels.div(127).sub(1); // Teachable Machine's own capture()
    if (choice === "unit") return pixels.div(255);
    if (choice === "signed") return pixels.div(127.5).sub(1);
    if (choice === "raw") return pixels;
    const mean = tf.tensor1d(numbers($("[data-try-mean]").value, "Mean"));
    const std = tf.tensor1d(numbers($("[data-try-std]").value, "Std"));
    return pixels.div(255).sub(mean).div(std);
  }

  // The centre square (or the model's aspect) of the picture, at the model's size.
  function drawInput(width, height) {
    const source = picture;
    const sourceWidth = source.videoWidth || source.naturalWidth || source.width;
    const sourceHeight = source.videoHeight || source.naturalHeight || source.height;
    const scale = Math.min(sourceWidth / width, sourceHeight / height);
    const cropWidth = width * scale;
    const cropHeight = height * scale;
    preview.width = width;
    preview.height = height;
    const context = preview.getContext("2d");
    context.drawImage(
      source, (sourceWidth - cropWidth) / 2, (sourceHeight - cropHeight) / 2, cropWidth, cropHeight, 0, 0, width, height,
    );  // prettier-ignore
    preview.hidden = false;
    return preview;
  }

  function imageTensor(tf, net, metadata) {
    if (!picture) throw new Error("choose or drop an image first (or use the webcam)");
    const [, h, w] = net.inputs[0].shape;
    const size = (metadata && metadata.imageSize) || 224;
    const canvas = drawInput(w > 0 ? w : size, h > 0 ? h : size);
    return tf.tidy(() => normalise(tf, tf.browser.fromPixels(canvas).toFloat(), metadata).expandDims(0));
  }

  function valueTensors(tf, net) {
    let values;
    try {
      values = JSON.parse(jsonInput.value);
    } catch (error) {
      throw new Error(`the input values are not JSON: ${error.message}`);
    }
    const given = net.inputs.length === 1 ? [values] : values;
    if (!Array.isArray(given) || given.length !== net.inputs.length) {
      throw new Error(`this model takes ${net.inputs.length} inputs: give a list of ${net.inputs.length} arrays`);
    }
    return given.map((value, index) => tf.tensor(value, undefined, net.inputs[index].dtype || "float32"));
  }

  function showTop(values, labels) {
    const probabilities = values.every((v) => v >= 0 && v <= 1) && Math.abs(values.reduce((a, b) => a + b, 0) - 1) < 1e-3;
    const ranked = Array.from(values, (value, index) => ({ value, index })).sort((a, b) => b.value - a.value);
    top.replaceChildren(
      ...ranked.slice(0, TOP_K).map(({ value, index }) => {
        const item = document.createElement("li");
        const label = document.createElement("span");
        label.className = "try-label";
        label.textContent = labels[index] ?? `class ${index}`;
        const figure = document.createElement("span");
        figure.className = "try-score";
        figure.textContent = probabilities ? `${(value * 100).toFixed(1)}%` : value.toPrecision(4);
        const bar = document.createElement("span");
        bar.className = "try-bar";
        bar.style.width = `${probabilities ? Math.round(value * 100) : 0}%`;
        item.append(label, figure, bar);
        return item;
      }),
    );
    top.hidden = false;
  }

  async function run() {
    say("Loading TensorFlow.js…");
    top.hidden = true;
    const tf = await tfOn(backendSelect.value);
    const { labels, metadata } = await companions;
    const { model: net, loadMs } = await model(tf);
    const tensors = isImage ? [imageTensor(tf, net, metadata)] : valueTensors(tf, net);
    try {
      const started = performance.now();
      const feed = tensors.length === 1 ? tensors[0] : tensors;
      const result = section.dataset.format === "graph-model" ? await net.executeAsync(feed) : net.predict(feed);
      const outputs = Array.isArray(result) ? result : [result];
      const values = await outputs[0].data();
      const ms = performance.now() - started;
      const lines = [`TensorFlow.js ${tf.version.tfjs} on ${tf.getBackend()}.`];
      if (loadMs !== null) lines.push(`Loaded version ${section.dataset.number} in ${Math.round(loadMs)} ms.`);
      lines.push(`Prediction: ${ms.toFixed(1)} ms${loadMs !== null ? " (the first on a backend includes its warm-up)" : ""}.`);
      lines.push(`Output: shape [${outputs[0].shape.join(", ")}] ${outputs[0].dtype}.`);
      say(lines.join("\n"));
      if (isImage || outputs[0].size <= 1000) showTop(Array.from(values), labels);
      tf.dispose(outputs);
    } finally {
      tf.dispose(tensors);
    }
  }

  // ---- choosing a picture ----

  function usePicture(source) {
    picture = source;
    if (source instanceof HTMLImageElement) drawInput(source.naturalWidth, source.naturalHeight);
  }

  function openFile(file) {
    if (!file || !file.type.startsWith("image/")) {
      say("That is not an image file.", { error: true });
      return;
    }
    const image = new Image();
    image.onload = () => {
      usePicture(image);
      URL.revokeObjectURL(image.src);
      button.click();
    };
    image.onerror = () => say("This browser cannot read that image.", { error: true });
    image.src = URL.createObjectURL(file);
  }

  $("[data-try-file]").addEventListener("change", (event) => openFile(event.target.files[0]));
  const drop = $("[data-try-drop]");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("drop-over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("drop-over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("drop-over");
    openFile(event.dataTransfer.files[0]);
  });

  $("[data-try-webcam]").addEventListener("click", async () => {
    try {
      if (!webcam) {
        webcam = document.createElement("video");
        webcam.className = "try-webcam";
        webcam.muted = true;
        webcam.playsInline = true;
        webcam.srcObject = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
        await webcam.play();
        drop.after(webcam);
      }
      usePicture(webcam);
      button.click();
    } catch (error) {
      say(`The webcam is not available: ${error.message}`, { error: true });
    }
  });

  preset.addEventListener("change", () => {
    $("[data-try-meanstd]").hidden = preset.value !== "meanstd";
  });

  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await run();
    } catch (error) {
      say(`Failed: ${error.message}`, { error: true });
    } finally {
      button.disabled = false;
    }
  });

  // The version to try, from the section's data (model_page.js updates it
  // when a newer version is ready).
  function configure() {
    inputs = JSON.parse(section.dataset.inputs || "[]");
    isImage = inputs.length === 1 && inputs[0].shape.length === 4 && inputs[0].shape[3] === 3;
    $("[data-try-image]").hidden = !isImage;
    $("[data-try-image-only]").hidden = !isImage;
    $("[data-try-values]").hidden = isImage;
    companions = readCompanions();
    // A sensible first input for value models: zeros of the right shape.
    if (!isImage && inputs.length) {
      const zeros = (shape) => (shape.length ? Array.from({ length: shape[0] }, () => zeros(shape.slice(1))) : 0);
      const given = inputs.map((input) => zeros(input.shape.map((dim, axis) => (axis === 0 || !(dim > 0) ? 1 : dim))));
      jsonInput.value = JSON.stringify(inputs.length === 1 ? given[0] : given);
    }
  }

  section.addEventListener("modelport:latest", configure);
  configure();
})();

// "Try it": load the newest ready version with TensorFlow.js (served by
// Modelport itself, fetched only on first use) and run it once on a fixed
// input, so a user sees the model works in a browser before writing code.
(() => {
  "use strict";

  const section = document.getElementById("try-it");
  if (!section) return;

  const button = section.querySelector("[data-try-button]");
  const output = section.querySelector("[data-try-output]");
  const SHOWN_VALUES = 6;
  let tfLoading = null;

  function loadTf() {
    if (window.tf) return Promise.resolve(window.tf);
    if (!tfLoading) {
      tfLoading = new Promise((resolve, reject) => {
        const script = document.createElement("script");
        script.src = section.dataset.tfjsSrc;
        script.onload = () => resolve(window.tf);
        script.onerror = () => {
          tfLoading = null;
          script.remove();
          reject(new Error(`could not load TensorFlow.js from ${script.src}`));
        };
        document.head.append(script);
      });
    }
    return tfLoading;
  }

  // Unknown dimensions (null in layers models, -1 in graph models) become 1.
  function concreteShape(shape) {
    if (!Array.isArray(shape)) throw new Error("the model does not declare its input shape");
    return shape.map((dim) => (dim === null || dim === undefined || dim < 0 ? 1 : dim));
  }

  // The same input on every run: 0, 0.1, …, 0.9, 0, 0.1, … for float inputs,
  // alternating 0 and 1 for integer or boolean ones (safe as token ids).
  function fixedInput(tf, input) {
    const dtype = input.dtype || "float32";
    if (dtype === "string") throw new Error(`input "${input.name}" takes strings; this check cannot make one up`);
    const shape = concreteShape(input.shape);
    const size = shape.reduce((product, dim) => product * dim, 1);
    const values = Array.from({ length: size }, (_, i) => (dtype === "float32" ? (i % 10) / 10 : i % 2));
    return tf.tensor(values, shape, dtype);
  }

  function describe(values) {
    return Array.from(values.slice(0, SHOWN_VALUES), (value) => Number(value.toPrecision(5))).join(", ");
  }

  function ms(start) {
    return `${Math.round(performance.now() - start)} ms`;
  }

  async function run() {
    const url = section.dataset.modelUrl;
    const isGraph = section.dataset.format === "graph-model";
    const lines = [];
    const say = (line) => {
      lines.push(line);
      output.textContent = lines.join("\n");
    };
    output.hidden = false;
    output.classList.remove("try-error");
    output.textContent = "Loading TensorFlow.js…";

    const tf = await loadTf();
    await tf.ready();
    output.textContent = "";
    say(`TensorFlow.js ${tf.version.tfjs}, ${tf.getBackend()} backend.`);

    let started = performance.now();
    const model = isGraph ? await tf.loadGraphModel(url) : await tf.loadLayersModel(url);
    say(`Loaded version ${section.dataset.number} (${section.dataset.format}) in ${ms(started)}.`);

    const inputs = model.inputs.map((input) => fixedInput(tf, input));
    try {
      for (const [index, tensor] of inputs.entries()) {
        const first = describe(tensor.dataSync());
        say(`Input ${model.inputs[index].name || index}: shape [${tensor.shape.join(", ")}] ${tensor.dtype}, values ${first}${tensor.size > SHOWN_VALUES ? ", …" : ""}`);
      }
      started = performance.now();
      let result;
      if (isGraph) {
        const feed = inputs.length === 1 ? inputs[0] : Object.fromEntries(model.inputs.map((input, i) => [input.name, inputs[i]]));
        try {
          result = model.execute(feed);
        } catch (error) {
          // Models with control flow or dynamic shapes only run asynchronously.
          if (!/executeAsync/.test(error.message)) throw error;
          result = await model.executeAsync(feed);
        }
      } else {
        result = model.predict(inputs.length === 1 ? inputs[0] : inputs);
      }
      const outputs = Array.isArray(result) ? result : [result];
      const values = await outputs[0].data();
      say(`Ran in ${ms(started)}.`);
      say(`Output${outputs.length > 1 ? ` 1 of ${outputs.length}` : ""}: shape [${outputs[0].shape.join(", ")}] ${outputs[0].dtype}.`);
      say(`First values: ${describe(values)}${values.length > SHOWN_VALUES ? ", …" : ""}`);
      tf.dispose(outputs);
    } finally {
      tf.dispose(inputs);
      model.dispose();
    }
  }

  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await run();
    } catch (error) {
      output.hidden = false;
      output.classList.add("try-error");
      output.textContent += `${output.textContent ? "\n" : ""}Failed: ${error.message}`;
    } finally {
      button.disabled = false;
    }
  });
})();

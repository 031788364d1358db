// Model page: upload a version through the REST API with a progress bar,
// ask for quantized variants, poll the versions list while a conversion or
// a variant runs, copy snippets.
// The server renders the first view; this script keeps it current. After
// each poll it sends a "modelport:versions" event (detail: the versions) so
// aliases.js and layers.js can follow newly ready versions.
(() => {
  "use strict";

  const { h, formatTime, snippetBlock, csrfToken, send } = window.modelport;

  const page = document.getElementById("model-page");
  if (!page) return;

  const POLL_MS = 2000;
  const ACTIVE = ["pending", "converting"];
  const versionsUrl = page.dataset.versionsUrl;
  const latestUrl = page.dataset.latestUrl;
  const formatLabels = JSON.parse(document.getElementById("input-format-labels").textContent);
  const quantizations = JSON.parse(document.getElementById("quantizations").textContent);
  const GRAPH = "graph";
  const KERAS_FORMATS = ["keras-h5", "keras-v3"];
  const canWrite = "canWrite" in page.dataset;
  const table = document.getElementById("versions-table");
  const emptyNote = page.querySelector("[data-versions-empty]");
  const pollError = page.querySelector("[data-poll-error]");
  const variantsNote = page.querySelector("[data-variants-note]");
  const rendered = new Map(); // version number -> JSON it was last drawn from
  let pollTimer = null;

  // ---- rendering (mirrors registry/version_rows.html and variants.html) ----

  // Same output as Django's filesizeformat (1024-based, one decimal).
  function formatSize(bytes) {
    if (bytes < 1024) return `${bytes}\u00a0${bytes === 1 ? "byte" : "bytes"}`;
    const units = ["KB", "MB", "GB", "TB"];
    let value = bytes / 1024;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return `${value.toFixed(1)}\u00a0${units[unit]}`;
  }

  // Two significant digits; same output as short_number() in registry/web.py.
  function formatNumber(value) {
    const rounded = Number(value.toExponential(1));
    if (rounded === 0) return "0";
    if (Math.abs(rounded) >= 0.01 && Math.abs(rounded) < 100) return String(rounded);
    const [mantissa, exponent] = rounded.toExponential(1).split("e");
    return `${mantissa.replace(/\.0$/, "")}e${Number(exponent)}`;
  }

  // Same texts as parity_summary() in registry/web.py.
  function paritySummary(parity) {
    if (!parity || parity.max_abs_error === undefined || parity.max_abs_error === null) return null;
    const inputs = (parity.inputs || [])
      .map((input) => `${input.name} [${input.shape.join(", ")}] ${input.dtype}`)
      .join(", ");
    return {
      passed: Boolean(parity.passed),
      summary: `max error ${formatNumber(parity.max_abs_error)}`,
      details:
        `TF.js (in Node) vs TensorFlow on ${inputs || "fixed inputs"}: ` +
        `max absolute error ${formatNumber(parity.max_abs_error)}, ` +
        `max relative error ${formatNumber(parity.max_rel_error)}; ` +
        `allowed ${formatNumber(parity.atol)} + ${formatNumber(parity.rtol)}\u00d7|value|.`,
    };
  }

  function shortDuration(ms) {
    return ms < 1000 ? `${ms.toFixed(0)} ms` : `${(ms / 1000).toFixed(1)} s`;
  }

  // Same texts as backends_summary() in registry/web.py.
  function backendsSummary(rows) {
    if (!rows || !rows.length) return null;
    const passed = rows.filter((row) => row.status === "passed").map((row) => row.name);
    const problems = [];
    for (const row of rows) {
      if (row.status === "failed" && row.max_abs_error !== undefined && row.max_abs_error !== null) {
        problems.push(`${row.name}: failed (max error ${formatNumber(row.max_abs_error)})`);
      } else if (row.status !== "passed") {
        problems.push(`${row.name}: ${row.status}${row.error ? ` — ${row.error}` : ""}`);
      }
    }
    const timings = rows
      .filter((row) => row.first_predict_ms !== undefined && row.first_predict_ms !== null)
      .map((row) => `${row.name} ${shortDuration(row.first_predict_ms)}`);
    return {
      verified: passed.length ? `Verified on ${passed.join(", ")}` : "",
      problems,
      timings: timings.length ? `First prediction in Chromium: ${timings.join(", ")}.` : "",
      pending: rows.some((row) => row.status === "pending"),
    };
  }

  // Mirrors registry/backends.html.
  function backendsLine(checked) {
    if (!checked) return "";
    return h(
      "p",
      { class: "backends" },
      checked.verified ? h("span", { class: "backends-verified" }, `✓ ${checked.verified}`) : "",
      ...checked.problems.map((problem) => h("span", { class: "backends-problem" }, problem)),
      checked.timings ? " " : "",
      checked.timings ? h("span", { class: "muted" }, checked.timings) : "",
    );
  }

  function parityBadge(verified) {
    if (!verified) return h("span", { class: "muted" }, "—");
    return h(
      "span",
      { class: `parity ${verified.passed ? "parity-ok" : "parity-bad"}`, title: verified.details },
      `${verified.passed ? "\u2713" : "\u2717"} ${verified.summary}`,
    );
  }

  function parityDetails(verified) {
    return verified ? h("p", { class: "parity-details" }, verified.details) : "";
  }

  function capitalize(text) {
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  // Variants the owner can still ask for (mirrors Version.requestable_variants):
  // a failed one may be retried; a graph model only of a Keras layers model.
  function requestable(version) {
    const taken = version.variants
      .filter((variant) => variant.status === "pending" || variant.status === "ready")
      .map((variant) => variant.variant);
    const keras = !version.input_format || KERAS_FORMATS.includes(version.input_format);
    const choices = keras && version.format !== "graph-model" ? [...quantizations, GRAPH] : quantizations;
    return choices.filter((choice) => !taken.includes(choice));
  }

  function variantLabel(variant) {
    return variant === GRAPH ? "graph model" : variant;
  }

  function variantItem(version, variant) {
    const ready = variant.status === "ready";
    const verified = paritySummary(variant.parity);
    let below = [];
    if (ready) below = [snippetBlock(variant.snippet), backendsLine(backendsSummary(variant.backends))];
    else if (variant.status === "failed") below = [h("p", { class: "variant-error" }, variant.error || "No reason was recorded.")];
    return h(
      "li",
      { class: "variant", "data-variant": variant.variant },
      h(
        "div",
        { class: "variant-head" },
        h("span", { class: "variant-name" }, variantLabel(variant.variant)),
        " ",
        h("span", { class: `status status-${variant.status}` }, capitalize(variant.status)),
        ready ? " " : "",
        ready ? h("span", { class: "muted" }, formatSize(variant.size)) : "",
        verified ? " " : "",
        verified ? parityBadge(verified) : "",
      ),
      ...below,
    );
  }

  function variantForm(version, choices) {
    const id = `variant-${version.number}`;
    return h(
      "form",
      { class: "variant-form", method: "post", action: `${versionsUrl}${version.number}/variants/`, "data-variant-form": "" },
      h("label", { htmlFor: id }, "Make a variant"),
      h("select", { id, name: "variant" }, ...choices.map((choice) => h("option", { value: choice }, variantLabel(choice)))),
      h("button", { type: "submit", class: "button button-small" }, "Make variant"),
      h("p", { class: "form-error", "data-variant-error": "", role: "alert", hidden: true }),
    );
  }

  function variantsBlock(version) {
    const choices = canWrite ? requestable(version) : [];
    if (!version.variants.length && !choices.length) return "";
    return h(
      "div",
      { class: "variants" },
      version.variants.length ? h("h3", { class: "variants-title" }, "Variants") : "",
      version.variants.length
        ? h("ul", { class: "variant-list" }, ...version.variants.map((variant) => variantItem(version, variant)))
        : "",
      choices.length ? variantForm(version, choices) : "",
    );
  }

  function hasPendingVariants(version) {
    return version.status === "ready" && version.variants.some((variant) => variant.status === "pending");
  }

  function failureHint(failure) {
    if (failure === "user") return "Fix the file and upload it again.";
    if (failure === "system") return "This was a problem on Modelport's side; uploading the same file again may work.";
    return "";
  }

  function versionBody(version) {
    const attrs = {
      class: "version",
      "data-number": version.number,
      "data-status": version.status,
      "data-format": version.format,
    };
    if (hasPendingVariants(version)) attrs["data-variants-pending"] = "";
    const checked = backendsSummary(version.backends);
    const variantsChecking = version.variants.some((variant) => (backendsSummary(variant.backends) || {}).pending);
    if ((checked && checked.pending) || variantsChecking) attrs["data-backends-pending"] = "";
    const body = h("tbody", attrs);
    const seconds = version.conversion_seconds;
    const verified = paritySummary(version.parity);
    body.append(
      h(
        "tr",
        {},
        h("td", { class: "num" }, h("strong", {}, String(version.number))),
        h(
          "td",
          {},
          h("span", { class: `status status-${version.status}` }, capitalize(version.status)),
          version.attempts > 1 ? " " : "",
          version.attempts > 1 ? h("span", { class: "muted" }, `attempt ${version.attempts}`) : "",
        ),
        h("td", { "data-label": "Input" }, formatLabels[version.input_format] || version.input_format || "—"),
        h("td", { "data-label": "Output" }, version.format || "—"),
        h("td", { "data-label": "Verified" }, parityBadge(verified)),
        h(
          "td",
          { "data-label": "Upload" },
          h("span", { class: "filename" }, version.upload.name),
          " ",
          h("span", { class: "muted" }, formatSize(version.upload.size)),
        ),
        h("td", { class: "num", "data-label": "Conversion" }, seconds === null ? "—" : `${(Math.round(seconds * 10) / 10).toFixed(1)} s`),
        h("td", { "data-label": "Created" }, h("time", { dateTime: version.created_at }, formatTime(version.created_at))),
      ),
    );
    if (version.status === "ready") {
      body.append(
        h(
          "tr",
          { class: "detail" },
          h(
            "td",
            { colSpan: 8 },
            snippetBlock(version.snippet),
            parityDetails(verified),
            backendsLine(checked),
            variantsBlock(version),
          ),
        ),
      );
    } else if (version.status === "failed") {
      const hint = failureHint(version.failure);
      body.append(
        h(
          "tr",
          { class: "detail detail-failed" },
          h(
            "td",
            { colSpan: 8 },
            h("strong", {}, "Conversion failed:"),
            ` ${version.error || "no reason was recorded."} `,
            hint ? h("span", { class: "hint" }, hint) : "",
            parityDetails(verified),
          ),
        ),
      );
    }
    return body;
  }

  function upsert(version, { highlight = false } = {}) {
    const json = JSON.stringify(version);
    if (rendered.get(version.number) === json) return;
    rendered.set(version.number, json);
    const body = versionBody(version);
    const existing = table.querySelector(`tbody[data-number="${version.number}"]`);
    if (existing) {
      existing.replaceWith(body);
    } else {
      const after = [...table.tBodies].find((other) => Number(other.dataset.number) < version.number);
      table.insertBefore(body, after || null);
      if (highlight) body.classList.add("version-new");
    }
    table.hidden = false;
    emptyNote.hidden = true;
  }

  // The "Use it" and "Try it" sections follow the newest ready version.
  function updateLatest(versions) {
    const latest = versions
      .filter((version) => version.status === "ready")
      .reduce((best, version) => (best && best.number > version.number ? best : version), null);
    if (!latest || String(latest.number) === page.dataset.latestNumber) return;
    page.dataset.latestNumber = String(latest.number);
    for (const node of page.querySelectorAll("span[data-latest-number]")) node.textContent = latest.number;
    const useIt = document.getElementById("use-it");
    useIt.querySelector("[data-snippet]").textContent = latest.snippet.split(latest.model_url).join(latestUrl);
    useIt.hidden = false;
    const tryIt = document.getElementById("try-it");
    tryIt.dataset.modelUrl = latest.model_url;
    tryIt.dataset.number = String(latest.number);
    tryIt.dataset.format = latest.format;
    tryIt.hidden = false;
  }

  // Variants exist only for ready versions; the owner can make them, others only see them.
  function updateVariantsNote(versions) {
    const ready = versions.filter((version) => version.status === "ready");
    variantsNote.hidden = !ready.some((version) => canWrite || version.variants.length);
  }

  function anyActive() {
    return [...table.tBodies].some(
      (body) =>
        ACTIVE.includes(body.dataset.status) || "variantsPending" in body.dataset || "backendsPending" in body.dataset,
    );
  }

  // ---- polling ----

  function schedulePoll() {
    if (pollTimer === null && anyActive()) pollTimer = window.setTimeout(poll, POLL_MS);
  }

  async function poll() {
    pollTimer = null;
    try {
      const response = await fetch(versionsUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok) throw new Error(`the server answered ${response.status}`);
      const versions = await response.json();
      versions.forEach((version) => upsert(version));
      updateLatest(versions);
      updateVariantsNote(versions);
      page.dispatchEvent(new CustomEvent("modelport:versions", { detail: versions }));
      pollError.hidden = true;
    } catch (error) {
      pollError.textContent = `Could not refresh the versions (${error.message}); trying again.`;
      pollError.hidden = false;
    }
    schedulePoll();
  }

  // ---- copy ----

  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      try {
        await navigator.clipboard.writeText(text);
        return true;
      } catch {
        // Permission denied or no focus: fall through to the old way.
      }
    }
    const area = h("textarea", { value: text, readOnly: true });
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.append(area);
    area.select();
    let copied = false;
    try {
      copied = document.execCommand("copy");
    } catch {
      copied = false;
    }
    area.remove();
    return copied;
  }

  document.addEventListener("click", async (event) => {
    const button = event.target.closest(".copy-button");
    if (!button) return;
    const text = button.closest(".snippet").querySelector("[data-snippet]").textContent;
    const copied = await copyText(text);
    button.textContent = copied ? "Copied" : "Press Ctrl+C";
    button.classList.toggle("copied", copied);
    if (!copied) window.getSelection().selectAllChildren(button.closest(".snippet").querySelector("[data-snippet]"));
    window.setTimeout(() => {
      button.textContent = "Copy";
      button.classList.remove("copied");
    }, 1800);
  });

  // ---- variants ----

  async function requestVariant(form) {
    const errorBox = form.querySelector("[data-variant-error]");
    const button = form.querySelector("button[type=submit]");
    const showError = (message) => {
      errorBox.textContent = message;
      errorBox.hidden = false;
    };
    errorBox.hidden = true;
    button.disabled = true;
    let body;
    try {
      ({ body } = await send("POST", form.action, { variant: form.elements.variant.value }));
    } catch (error) {
      showError(error.message);
      return;
    } finally {
      button.disabled = false;
    }
    upsert(body);
    variantsNote.hidden = false;
    schedulePoll();
  }

  document.addEventListener("submit", (event) => {
    const form = event.target.closest("[data-variant-form]");
    if (!form) return;
    event.preventDefault();
    requestVariant(form);
  });

  // ---- upload ----

  const form = document.getElementById("upload-form");
  if (form) {
    const fileInput = form.querySelector("input[name=file]");
    const folderInput = form.querySelector("input[webkitdirectory]");
    const folderChosen = form.querySelector("[data-folder-chosen]");
    const formatSelect = form.querySelector("select[name=format]");
    const submit = form.querySelector("[data-upload-button]");
    const progressBox = form.querySelector("[data-upload-progress]");
    const progress = progressBox.querySelector("progress");
    const progressText = form.querySelector("[data-upload-text]");
    const errorBox = form.querySelector("[data-upload-error]");

    const showError = (message) => {
      errorBox.textContent = message;
      errorBox.hidden = false;
      progressBox.hidden = true;
    };

    const errorMessage = (xhr) => {
      try {
        const body = JSON.parse(xhr.responseText);
        if (body && body.detail) return body.detail;
      } catch {
        // Not JSON: a proxy or server error page.
      }
      return `The upload failed: the server answered ${xhr.status} ${xhr.statusText}.`.trim();
    };

    // Files a file manager leaves in folders; never part of a model.
    const JUNK = [".DS_Store", "Thumbs.db", "desktop.ini"];

    // The chosen folder's files, each with its path below the folder's
    // parent (e.g. my_model/variables/variables.index).
    const folderFiles = () => [...folderInput.files].filter((file) => !JUNK.includes(file.name));

    // One source at a time: choosing a file clears the folder and vice versa.
    const showFolder = () => {
      fileInput.required = !folderInput.files.length;
      if (!folderInput.files.length) {
        folderChosen.textContent = "No folder chosen";
        return;
      }
      const files = folderFiles();
      const name = folderInput.files[0].webkitRelativePath.split("/")[0];
      const size = files.reduce((total, file) => total + file.size, 0);
      folderChosen.replaceChildren(
        h("strong", { class: "filename" }, name),
        ` \u2014 ${files.length} ${files.length === 1 ? "file" : "files"}, ${formatSize(size)}`,
      );
    };

    fileInput.addEventListener("change", () => {
      if (fileInput.files.length && folderInput.files.length) {
        folderInput.value = "";
        showFolder();
      }
      errorBox.hidden = true;
    });
    folderInput.addEventListener("change", () => {
      if (folderInput.files.length) fileInput.value = "";
      showFolder();
      errorBox.hidden = true;
    });
    form.addEventListener("reset", () => window.setTimeout(showFolder));

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      errorBox.hidden = true;
      const file = fileInput.files[0];
      const folder = folderFiles();
      if (!file && !folder.length) {
        showError(
          folderInput.files.length
            ? "The chosen folder has no model files in it."
            : "Choose a model file or a model folder to upload.",
        );
        return;
      }
      const data = new FormData();
      let size;
      if (file) {
        data.append("file", file, file.name);
        size = file.size;
      } else {
        for (const part of folder) {
          data.append("files", part, part.name);
          data.append("paths", part.webkitRelativePath);
        }
        size = folder.reduce((total, part) => total + part.size, 0);
      }
      if (formatSelect.value) data.append("format", formatSelect.value);
      for (const box of form.querySelectorAll("input[name=variants]:checked")) data.append("variants", box.value);

      const xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("X-CSRFToken", csrfToken());
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.onprogress = (progressEvent) => {
        if (!progressEvent.lengthComputable) return;
        const percent = Math.round((progressEvent.loaded / progressEvent.total) * 100);
        progress.value = percent;
        progressText.textContent = `${percent}% of ${formatSize(progressEvent.total)}`;
      };
      xhr.upload.onload = () => {
        progress.value = 100;
        progressText.textContent = `Uploaded; the server is checking the ${file ? "file" : "folder"}…`;
      };
      xhr.onload = () => {
        submit.disabled = false;
        if (xhr.status < 200 || xhr.status >= 300) {
          showError(errorMessage(xhr));
          return;
        }
        const version = JSON.parse(xhr.responseText);
        progressText.textContent = `Version ${version.number} uploaded; it is converted in the background.`;
        window.setTimeout(() => {
          progressBox.hidden = true;
        }, 4000);
        form.reset();
        upsert(version, { highlight: true });
        schedulePoll();
      };
      xhr.onerror = () => {
        submit.disabled = false;
        showError("The upload did not reach the server. Check your connection and try again.");
      };

      submit.disabled = true;
      progress.value = 0;
      progressText.textContent = `0% of ${formatSize(size)}`;
      progressBox.hidden = false;
      xhr.send(data);
    });
  }

  schedulePoll();
})();

// Model page: upload a version through the REST API with a progress bar,
// ask for quantized variants, poll the versions list while a conversion or
// a variant runs, copy snippets.
// The server renders the rows, first and after every change (the page's
// rows/ URL): this script only swaps them in. After
// each poll it sends a "modelport:versions" event (detail: the versions) so
// aliases.js and layers.js can follow newly ready versions.
(() => {
  "use strict";

  const { h, fetchRows, csrfToken, send } = window.modelport;

  const page = document.getElementById("model-page");
  if (!page) return;

  const POLL_MS = 2000;
  const ACTIVE = ["pending", "converting"];
  const versionsUrl = page.dataset.versionsUrl;
  const latestUrl = page.dataset.latestUrl;
  const rowsUrl = page.dataset.rowsUrl;
  const canWrite = "canWrite" in page.dataset;
  const table = document.getElementById("versions-table");
  const emptyNote = page.querySelector("[data-versions-empty]");
  const pollError = page.querySelector("[data-poll-error]");
  const variantsNote = page.querySelector("[data-variants-note]");
  const rendered = new Map(); // version number -> JSON it was last drawn from
  let pollTimer = null;

  // Same output as Django's filesizeformat (1024-based, one decimal), for upload progress.
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

  // ---- rendering: the server draws the rows (registry/version_rows.html) ----

  // Swap in the rows of these versions as the server renders them now.
  async function redraw(versions, { highlight = false } = {}) {
    const query = versions.map((version) => `number=${version.number}`).join("&");
    for (const body of await fetchRows(`${rowsUrl}?${query}`, "tbody.version")) {
      const existing = table.querySelector(`tbody[data-number="${body.dataset.number}"]`);
      if (existing) {
        existing.replaceWith(body);
      } else {
        const after = [...table.tBodies].find((other) => Number(other.dataset.number) < Number(body.dataset.number));
        table.insertBefore(body, after || null);
        if (highlight) body.classList.add("version-new");
      }
    }
    for (const version of versions) rendered.set(version.number, JSON.stringify(version));
    table.hidden = false;
    emptyNote.hidden = true;
  }

  // Redraw the versions whose API representation changed since they were drawn.
  function upsert(versions, options) {
    const changed = versions.filter((version) => rendered.get(version.number) !== JSON.stringify(version));
    return changed.length ? redraw(changed, options) : Promise.resolve();
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
    tryIt.dataset.inputs = JSON.stringify(latest.parity.inputs || []);
    const files = Object.fromEntries(latest.companions.map((file) => [file.name, file.url]));
    tryIt.dataset.metadataUrl = files["metadata.json"] || "";
    tryIt.dataset.labelsUrl = files["labels.txt"] || "";
    tryIt.dispatchEvent(new CustomEvent("modelport:latest"));
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
      await upsert(versions); // the first poll redraws every row once: the page may be older than it
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
    await upsert([body]).catch(() => {});
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
        upsert([version], { highlight: true })
          .catch(() => {})
          .finally(schedulePoll);
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

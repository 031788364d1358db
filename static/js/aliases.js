// Aliases: the table of movable names (with the automatic `latest`), and for
// the owner setting, moving, rolling back and removing them through the
// REST API. The server renders the first view (registry/alias_rows.html);
// after each change this script fetches the list and the logs again and
// redraws the rows the same way.
(() => {
  "use strict";

  const { h, timeTag, loadSnippet, snippetBlock, send } = window.modelport;
  const section = document.getElementById("aliases");
  if (!section) return;

  const page = document.getElementById("model-page");
  const aliasesUrl = section.dataset.aliasesUrl;
  const table = document.getElementById("aliases-table");
  const versionsTable = document.getElementById("versions-table");
  const listError = section.querySelector("[data-aliases-error]");
  const canWrite = "canWrite" in page.dataset;
  const form = document.getElementById("alias-form");

  const aliasUrl = (name) => `${aliasesUrl}${encodeURIComponent(name)}/`;

  // ---- rendering (mirrors registry/alias_rows.html) ----

  function versionFormat(number) {
    const body = versionsTable.querySelector(`tbody[data-number="${number}"]`);
    return body ? body.dataset.format : "";
  }

  function moveText(move) {
    if (move.from_version === null) return `set to ${move.to_version}`;
    if (move.to_version === null) return `removed from ${move.from_version}`;
    return `${move.from_version} \u2192 ${move.to_version}`;
  }

  function moveItem(move) {
    return h(
      "li",
      {},
      timeTag(move.moved_at),
      " ",
      h("span", { class: "alias-move" }, moveText(move)),
      " ",
      h("span", { class: "muted" }, `by ${move.moved_by || "a deleted user"}`),
      move.rollback ? " " : "",
      move.rollback ? h("span", { class: "tag" }, "rollback") : "",
    );
  }

  function history(log, open) {
    if (!log.length) return "";
    return h(
      "details",
      { class: "alias-history", open },
      h("summary", {}, "History ", h("span", { class: "muted" }, `(${log.length} move${log.length === 1 ? "" : "s"})`)),
      h("ol", { class: "alias-log" }, ...log.map(moveItem)),
    );
  }

  function actions(alias, log) {
    const cell = h("td", { class: "alias-actions" });
    if (alias.automatic) return cell;
    // Where POST …/rollback/ goes: back to where the last move came from.
    const rollbackTo = log.length ? log[0].from_version : null;
    const quiet = "button button-small button-quiet";
    cell.append(
      h("button", { type: "button", class: quiet, "data-alias-move": "" }, "Move"),
      " ",
      rollbackTo === null
        ? h(
            "button",
            { type: "button", class: quiet, "data-alias-rollback": "", disabled: true, title: "No earlier version to roll back to." },
            "Roll back",
          )
        : h("button", { type: "button", class: quiet, "data-alias-rollback": "" }, `Roll back to ${rollbackTo}`),
      " ",
      h("button", { type: "button", class: "button button-small button-danger", "data-alias-remove": "" }, "Remove"),
    );
    return cell;
  }

  function aliasBody(alias, log, historyOpen) {
    const attrs = { class: "alias", "data-alias": alias.name, "data-version": alias.version };
    if (alias.automatic) attrs["data-automatic"] = "";
    return h(
      "tbody",
      attrs,
      h(
        "tr",
        {},
        h(
          "td",
          {},
          h("span", { class: "alias-name" }, alias.name),
          alias.automatic ? " " : "",
          alias.automatic ? h("span", { class: "badge badge-auto" }, "automatic") : "",
        ),
        h("td", { class: "num", "data-label": "Version" }, h("strong", {}, String(alias.version))),
        h(
          "td",
          { "data-label": "Updated" },
          alias.automatic ? h("span", { class: "muted" }, "follows the newest ready version") : timeTag(alias.updated_at),
        ),
        canWrite ? actions(alias, log) : "",
      ),
      h(
        "tr",
        { class: "detail" },
        h(
          "td",
          { colSpan: canWrite ? 4 : 3 },
          snippetBlock(loadSnippet(versionFormat(alias.version), alias.model_url)),
          history(log, historyOpen),
        ),
      ),
    );
  }

  // ---- fetching ----

  async function getJson(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!response.ok) throw new Error(`the server answered ${response.status}`);
    return response.json();
  }

  async function refresh() {
    try {
      const aliases = await getJson(aliasesUrl);
      const logs = await Promise.all(
        aliases.map((alias) => (alias.automatic ? [] : getJson(`${aliasUrl(alias.name)}log/`))),
      );
      const open = new Set(
        [...table.querySelectorAll("details.alias-history[open]")].map((node) => node.closest("tbody").dataset.alias),
      );
      for (const body of [...table.tBodies]) body.remove();
      aliases.forEach((alias, index) => table.append(aliasBody(alias, logs[index], open.has(alias.name))));
      section.hidden = aliases.length === 0;
      listError.hidden = true;
    } catch (error) {
      listError.textContent = `Could not refresh the aliases (${error.message}); reload the page to see them.`;
      listError.hidden = false;
    }
  }

  // ---- following new versions (events from model_page.js) ----

  // Newest first; an older version the user picked stays picked.
  function setVersionChoices(select, numbers) {
    const current = [...select.options].map((option) => Number(option.value));
    if (current.join() === numbers.join()) return;
    const picked = select.selectedIndex > 0 ? select.value : null;
    select.replaceChildren(...numbers.map((number) => h("option", { value: String(number) }, String(number))));
    if (picked && numbers.map(String).includes(picked)) select.value = picked;
  }

  page.addEventListener("modelport:versions", (event) => {
    const ready = event.detail
      .filter((version) => version.status === "ready")
      .map((version) => version.number)
      .sort((a, b) => b - a);
    if (!ready.length) return;
    if (form) setVersionChoices(form.elements.version, ready);
    const latest = table.querySelector("tbody[data-automatic]");
    if (!latest || Number(latest.dataset.version) !== ready[0]) refresh();
  });

  if (!form) return;

  // ---- owner: set, move, roll back, remove ----

  const errorBox = form.querySelector("[data-alias-error]");
  const doneBox = form.querySelector("[data-alias-done]");

  function report(message, { failed = false } = {}) {
    errorBox.hidden = !failed;
    doneBox.hidden = failed;
    (failed ? errorBox : doneBox).textContent = message;
  }

  async function change(button, request, message) {
    button.disabled = true;
    try {
      const { response, body } = await request();
      await refresh(); // the table first, so what the message says is what the table shows
      report(message(response, body));
    } catch (error) {
      report(error.message, { failed: true });
    } finally {
      button.disabled = false;
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = form.elements.name.value.trim();
    if (!name) {
      report("Enter a name for the alias, such as production.", { failed: true });
      form.elements.name.focus();
      return;
    }
    const number = Number(form.elements.version.value);
    const row = table.querySelector(`tbody[data-alias="${CSS.escape(name)}"]:not([data-automatic])`);
    const before = row ? Number(row.dataset.version) : null;
    const button = form.querySelector("button[type=submit]");
    change(
      button,
      () => send("PUT", aliasUrl(name), { version: number }),
      (response, body) => {
        if (response.status === 201) return `Created ${body.name}, pointing at version ${body.version}.`;
        if (before === body.version) return `${body.name} already points at version ${body.version}.`;
        return `Moved ${body.name} from version ${before} to ${body.version}.`;
      },
    );
  });

  table.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-alias-move], button[data-alias-rollback], button[data-alias-remove]");
    if (!button) return;
    const row = button.closest("tbody");
    const name = row.dataset.alias;
    if ("aliasMove" in button.dataset) {
      form.elements.name.value = name;
      form.scrollIntoView({ block: "nearest" });
      form.elements.version.focus();
    } else if ("aliasRollback" in button.dataset) {
      change(
        button,
        () => send("POST", `${aliasUrl(name)}rollback/`),
        (response, body) => `Rolled ${body.name} back to version ${body.version}.`,
      );
    } else if (window.confirm(`Remove the alias "${name}"? Loads of its URL will fail until it is set again.`)) {
      change(
        button,
        () => send("DELETE", aliasUrl(name)),
        () => `Removed ${name}; it pointed at version ${row.dataset.version}.`,
      );
    }
  });
})();

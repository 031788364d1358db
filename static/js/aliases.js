// Aliases: the table of movable names (with the automatic `latest`), and for
// the owner setting, moving, rolling back and removing them through the
// REST API. The server renders the rows (registry/alias_rows.html), first
// and after each change (the page's alias-rows/ URL): this script swaps them in.
(() => {
  "use strict";

  const { h, fetchRows, send } = window.modelport;
  const section = document.getElementById("aliases");
  if (!section) return;

  const page = document.getElementById("model-page");
  const aliasesUrl = section.dataset.aliasesUrl;
  const table = document.getElementById("aliases-table");
  const listError = section.querySelector("[data-aliases-error]");
  const form = document.getElementById("alias-form");

  const aliasUrl = (name) => `${aliasesUrl}${encodeURIComponent(name)}/`;

  // ---- fetching: the server renders the rows (registry/alias_rows.html) ----

  async function refresh() {
    try {
      const rows = await fetchRows(section.dataset.rowsUrl, "tbody.alias");
      const open = new Set(
        [...table.querySelectorAll("details.alias-history[open]")].map((node) => node.closest("tbody").dataset.alias),
      );
      for (const body of [...table.tBodies]) body.remove();
      for (const body of rows) {
        const history = body.querySelector("details.alias-history");
        if (history && open.has(body.dataset.alias)) history.open = true;
        table.append(body);
      }
      section.hidden = table.tBodies.length === 0;
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

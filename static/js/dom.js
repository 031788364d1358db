// Helpers the model page's scripts share (model_page.js, aliases.js,
// layers.js): building elements, fetching the rows the server renders
// (rows/ and alias-rows/) and requests that change things.
window.modelport = (() => {
  "use strict";

  function h(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === "class") node.className = value;
      else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role") node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) {
      if (child !== null && child !== undefined && child !== "") node.append(child);
    }
    return node;
  }

  // The elements matching `selector` (table rows: tbody) of the HTML partial
  // at `url`, rendered by the server, for the caller to put in place. Throws
  // an Error whose message says what went wrong.
  async function fetchRows(url, selector) {
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) throw new Error(`the server answered ${response.status}`);
    const template = document.createElement("template");
    template.innerHTML = await response.text();
    return [...template.content.querySelectorAll(selector)];
  }

  function csrfToken() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  // A JSON request with the session cookie and CSRF token. Resolves to
  // {response, body}; throws an Error whose message is fit to show: the
  // API's `detail`, or what went wrong on the way.
  async function send(method, url, data) {
    const headers = { Accept: "application/json", "X-CSRFToken": csrfToken() };
    if (data !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(url, {
        method,
        credentials: "same-origin",
        headers,
        body: data === undefined ? undefined : JSON.stringify(data),
      });
    } catch {
      throw new Error("The request did not reach the server. Check your connection and try again.");
    }
    const body = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) {
      throw new Error(body && body.detail ? body.detail : `The request failed: the server answered ${response.status}.`);
    }
    return { response, body };
  }

  return { h, fetchRows, csrfToken, send };
})();

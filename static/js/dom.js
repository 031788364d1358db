// Helpers the model page's scripts share (model_page.js, aliases.js,
// layers.js): building elements, the texts the server renders too, and
// requests that change things.
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

  // Same text as the templates' {{ …|date:"Y-m-d H:i" }} UTC.
  function formatTime(iso) {
    return `${new Date(iso).toISOString().slice(0, 16).replace("T", " ")} UTC`;
  }

  function timeTag(iso) {
    return h("time", { dateTime: iso }, formatTime(iso));
  }

  // Same text as load_snippet() in registry/api/serializers.py.
  function loadSnippet(format, url) {
    const loader = format === "graph-model" ? "loadGraphModel" : "loadLayersModel";
    return `const model = await tf.${loader}('${url}');`;
  }

  // Mirrors registry/snippet.html.
  function snippetBlock(text) {
    return h(
      "div",
      { class: "snippet" },
      h("code", { "data-snippet": "" }, text),
      h("button", { type: "button", class: "button button-small copy-button" }, "Copy"),
    );
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

  return { h, formatTime, timeTag, loadSnippet, snippetBlock, csrfToken, send };
})();

// Load a Modelport model and let the browser check every byte of it.
//
//   import {verifiedFetch} from 'https://modelport.example/m/-/verify.mjs';
//   const model = await tf.loadLayersModel(url, {fetchFunc: verifiedFetch({integrity: 'sha256-…'})});
//
// model.json lists the integrity (sha256-<base64>) of each weight file it
// names; each weight file is then fetched with fetch(url, {integrity}), so
// the browser itself refuses a file whose bytes differ (Subresource
// Integrity) and the load fails. `integrity` pins model.json too: a numbered
// version's model.json never changes, and the version API gives its value
// (model_json_integrity). Without it, model.json is trusted as served (an
// alias moves, so it cannot be pinned) and the weights are still checked.
//
// A URL the loader asks for that model.json does not cover is refused:
// nothing is fetched unchecked.

const BLOB = /\/blobs\/([0-9a-f]{64})$/;

function withoutQuery(url) {
  const parsed = new URL(url, globalThis.location?.href);
  parsed.search = '';
  parsed.hash = '';
  return parsed.href;
}

function hexToBase64(hex) {
  const bytes = hex.match(/../g).map((pair) => parseInt(pair, 16));
  return btoa(String.fromCharCode(...bytes));
}

export function verifiedFetch({integrity = '', fetch: baseFetch = globalThis.fetch.bind(globalThis)} = {}) {
  const known = new Map();
  let modelJson = null;

  async function fetchModelJson(url, init) {
    const response = await baseFetch(url, {...init, ...(integrity ? {integrity} : {})});
    if (!response.ok) return response;
    const document = await response.clone().json();
    const listed = document.integrity || {};
    for (const group of document.weightsManifest || []) {
      for (const path of group.paths) {
        const absolute = withoutQuery(new URL(path, withoutQuery(url)).href);
        const content = BLOB.exec(new URL(absolute).pathname);
        const value = listed[path] || (content ? `sha256-${hexToBase64(content[1])}` : '');
        if (!value) throw new Error(`Modelport: model.json gives no integrity for ${path}; refusing to load it.`);
        known.set(absolute, value);
      }
    }
    modelJson = withoutQuery(url);
    return response;
  }

  return async function fetchFunc(input, init = {}) {
    const url = typeof input === 'string' ? input : input.url;
    const key = withoutQuery(url);
    if (modelJson === null || key === modelJson) return fetchModelJson(url, init);
    const value = known.get(key);
    if (!value) throw new Error(`Modelport: ${key} is not listed in model.json; refusing to load it unchecked.`);
    return baseFetch(url, {...init, integrity: value});
  };
}

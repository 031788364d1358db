// Run a converted TF.js model in headless Chromium on the backends browsers
// use (wasm, webgl through SwiftShader), with the inputs of the parity check.
//
//   node browsers.mjs --dir DIR --kind layers|graph --inputs FILE --backends wasm,webgl
//                     --chromium /usr/bin/chromium
//
// FILE is predict.mjs' input spec (raw little-endian input files; the
// reference.json converter/browsers.py keeps). Nothing
// reaches the network: every request of the page is answered from DIR,
// the inputs and TF.js' own files. Prints {"backends": {"wasm": {"outputs":
// [{"shape", "data"}], "load_ms", "first_predict_ms"} | {"error"}, ...}}.
import { readFile, realpath } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const ORIGIN = 'http://modelport.verify';
const TFJS = path.dirname(require.resolve('@tensorflow/tfjs/package.json'));
const WASM = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
const STATIC = {
  '/tfjs/tf.min.js': path.join(TFJS, 'dist', 'tf.min.js'),
  '/tfjs/tf-backend-wasm.min.js': path.join(WASM, 'dist', 'tf-backend-wasm.min.js'),
  '/wasm/tfjs-backend-wasm.wasm': path.join(WASM, 'dist', 'tfjs-backend-wasm.wasm'),
  '/wasm/tfjs-backend-wasm-simd.wasm': path.join(WASM, 'dist', 'tfjs-backend-wasm-simd.wasm'),
  '/wasm/tfjs-backend-wasm-threaded-simd.wasm': path.join(WASM, 'dist', 'tfjs-backend-wasm-threaded-simd.wasm'),
};
const PAGE = `<!doctype html><meta charset="utf-8"><title>Modelport backend check</title>
<script src="/tfjs/tf.min.js"></script><script src="/tfjs/tf-backend-wasm.min.js"></script>`;
const TYPES = { '.js': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) args[argv[i].replace(/^--/, '')] = argv[i + 1];
  return args;
}

// Only files below `root`, by a path relative to it, links resolved.
async function inside(root, relative) {
  try {
    const base = await realpath(root);
    const full = await realpath(path.resolve(base, decodeURIComponent(relative)));
    return full.startsWith(base + path.sep) ? full : null;
  } catch {
    return null; // a malformed %-escape, or no such file
  }
}

async function answer(route, args, spec) {
  const url = new URL(route.request().url());
  let file = null;
  if (url.origin !== ORIGIN) return route.abort();
  if (url.pathname === '/') return route.fulfill({ contentType: 'text/html', body: PAGE });
  if (STATIC[url.pathname]) file = STATIC[url.pathname];
  else if (url.pathname.startsWith('/model/')) file = await inside(args.dir, url.pathname.slice('/model/'.length));
  else if (url.pathname.startsWith('/inputs/')) file = spec.inputs[Number(url.pathname.slice(8))]?.file ?? null;
  if (!file) return route.fulfill({ status: 404, body: 'not found' });
  try {
    const body = await readFile(file);
    return route.fulfill({ body, contentType: TYPES[path.extname(file)] || 'application/octet-stream' });
  } catch {
    return route.fulfill({ status: 404, body: 'not found' });
  }
}

// Runs in the page: load, predict once, return the outputs and timings.
async function runOnBackend({ backend, kind, inputs, outputs }) {
  /* global tf */
  try {
    if (backend === 'wasm') tf.wasm.setWasmPaths('/wasm/');
    if (!(await tf.setBackend(backend))) return { error: `TF.js could not start the ${backend} backend here.` };
    await tf.ready();
    const typed = { float32: Float32Array, int32: Int32Array, bool: Uint8Array };
    const tensors = [];
    for (const [index, input] of inputs.entries()) {
      const bytes = await (await fetch(`/inputs/${index}`)).arrayBuffer();
      tensors.push(tf.tensor(new typed[input.dtype](bytes), input.shape, input.dtype));
    }
    const started = performance.now();
    const model = kind === 'graph' ? await tf.loadGraphModel('/model/model.json') : await tf.loadLayersModel('/model/model.json');
    const loaded = performance.now();
    let feed = tensors.length === 1 ? tensors[0] : tensors;
    if (inputs.every((input) => input.name)) feed = Object.fromEntries(inputs.map((input, i) => [input.name, tensors[i]]));
    let result = kind === 'graph' ? await model.executeAsync(feed, outputs) : model.predict(feed);
    if (!Array.isArray(result)) result = result instanceof tf.Tensor ? [result] : Object.keys(result).sort().map((k) => result[k]);
    const values = [];
    for (const tensor of result) values.push({ shape: tensor.shape, data: Array.from(await tensor.data()) });
    const predicted = performance.now();
    return { outputs: values, load_ms: loaded - started, first_predict_ms: predicted - loaded, backend: tf.getBackend() };
  } catch (error) {
    return { error: String((error && error.message) || error).slice(0, 500) };
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const spec = JSON.parse(await readFile(args.inputs, 'utf8'));
  const browser = await chromium.launch({
    executablePath: args.chromium,
    args: [
      '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--no-first-run', '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--ignore-gpu-blocklist',
      '--renderer-process-limit=1',
    ],  // Playwright gives the browser a fresh profile in TMPDIR
  });
  const report = {};
  try {
    for (const backend of args.backends.split(',').filter(Boolean)) {
      // A fresh page per backend: one backend's failure cannot leak into the next.
      const page = await browser.newPage();
      await page.route('**/*', (route) => answer(route, args, spec));
      await page.goto(`${ORIGIN}/`);
      const inputs = spec.inputs.map(({ shape, dtype, name }) => ({ shape, dtype, name }));
      report[backend] = await page.evaluate(runOnBackend, { backend, kind: args.kind, inputs, outputs: spec.outputs });
      await page.close();
    }
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify({ backends: report }));
}

main().catch((err) => {
  process.stderr.write(`${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});

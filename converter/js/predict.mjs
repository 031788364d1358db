// Load a TF.js model (by URL or from a directory) and run it on given inputs.
//
//   node predict.mjs --url URL | --dir DIR  --kind layers|graph  --inputs FILE
//                    [--header "Name: value"]
//
// FILE holds {"inputs": [{"dtype": "float32", "shape": [...], "data": [...] or
// "file": "raw little-endian values.bin",
// "name": "x:0" (optional, graph models)}], "outputs": ["Identity:0", ...]
// (optional, graph models: which nodes to return, in that order)}.
// Prints {"outputs": [{"shape": [...], "data": [...]}], "backend": "cpu"}.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';

function parseArgs(argv) {
  const args = { headers: {} };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    const value = argv[i + 1];
    if (key === 'header') {
      const at = value.indexOf(':');
      args.headers[value.slice(0, at).trim()] = value.slice(at + 1).trim();
    } else {
      args[key] = value;
    }
  }
  return args;
}

// An IOHandler that reads model.json and its shards from a directory,
// resolving paths exactly as tfjs's HTTP loader does.
function directoryHandler(dir) {
  return {
    async load() {
      const modelJson = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8'));
      const weightSpecs = [];
      const buffers = [];
      for (const group of modelJson.weightsManifest) {
        weightSpecs.push(...group.weights);
        for (const p of group.paths) {
          const bytes = await readFile(path.join(dir, p));
          buffers.push(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
        }
      }
      return {
        modelTopology: modelJson.modelTopology,
        format: modelJson.format,
        generatedBy: modelJson.generatedBy,
        convertedBy: modelJson.convertedBy,
        signature: modelJson.signature,
        userDefinedMetadata: modelJson.userDefinedMetadata,
        modelInitializer: modelJson.modelInitializer,
        trainingConfig: modelJson.trainingConfig,
        weightSpecs,
        weightData: tf.io.concatenateArrayBuffers(buffers),
      };
    },
  };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  await tf.setBackend('cpu');
  const source = args.dir ? directoryHandler(args.dir) : args.url;
  const options = { requestInit: { headers: args.headers } };
  const model = args.kind === 'graph'
    ? await tf.loadGraphModel(source, options)
    : await tf.loadLayersModel(source, options);
  const spec = JSON.parse(await readFile(args.inputs, 'utf8'));
  const typed = { float32: Float32Array, int32: Int32Array, bool: Uint8Array };
  const inputs = await Promise.all(spec.inputs.map(async (t) => {
    if (!t.file) return tf.tensor(t.data, t.shape, t.dtype || 'float32');
    // Raw little-endian values: large image batches as JSON cost seconds to parse.
    const bytes = await readFile(t.file);
    const Typed = typed[t.dtype || 'float32'];
    const values = new Typed(bytes.buffer, bytes.byteOffset, bytes.byteLength / Typed.BYTES_PER_ELEMENT);
    return tf.tensor(values, t.shape, t.dtype || 'float32');
  }));
  let feed = inputs.length === 1 ? inputs[0] : inputs;
  if (spec.inputs.every((t) => t.name)) {
    feed = Object.fromEntries(spec.inputs.map((t, i) => [t.name, inputs[i]]));
  }
  let result = args.kind === 'graph'
    ? await model.executeAsync(feed, spec.outputs)
    : model.predict(feed);
  if (!Array.isArray(result)) {
    result = result instanceof tf.Tensor ? [result] : Object.keys(result).sort().map((k) => result[k]);
  }
  const outputs = [];
  for (const t of result) {
    outputs.push({ shape: t.shape, data: Array.from(await t.data()) });
  }
  process.stdout.write(JSON.stringify({ outputs, backend: tf.getBackend() }));
}

main().catch((err) => {
  process.stderr.write(`${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});

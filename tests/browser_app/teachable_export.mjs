// Writes a Teachable Machine image-project export, as its "Download my
// model" button does: model.json, weights.bin and metadata.json (labels).
//
//   node tests/browser_app/teachable_export.mjs OUT_DIR
//
// The model has Teachable Machine's shape: a truncated MobileNet-style
// functional model with global pooling (sequential_1), then the head it
// trains (sequential_3: Dense 100 relu, Dense softmax without bias), inside
// one Sequential. Its weights are set, not trained, so what it says is
// known: a red picture is "Red", a blue one "Blue", whichever of the usual
// normalisations ([-1, 1] or [0, 1]) a library applies.
import fs from 'node:fs';
import path from 'node:path';

import * as tf from '@tensorflow/tfjs';

const LABELS = ['Red', 'Blue'];
const out = process.argv[2];
fs.mkdirSync(out, {recursive: true});

const input = tf.input({shape: [224, 224, 3], name: 'input_1'});
const conv = tf.layers.conv2d({filters: 4, kernelSize: 8, strides: 8, useBias: false, name: 'Conv1'});
const features = tf.layers.reLU({maxValue: 6, name: 'out_relu'}).apply(conv.apply(input));
const mobilenet = tf.model({inputs: input, outputs: features, name: 'model1'});
const truncated = tf.sequential({
  name: 'sequential_1',
  layers: [mobilenet, tf.layers.globalAveragePooling2d({name: 'global_average_pooling2d_GlobalAveragePooling2D1'})],
});
const hidden = tf.layers.dense({units: 100, activation: 'relu', inputShape: [4], name: 'dense_Dense1'});
const classes = tf.layers.dense({units: LABELS.length, activation: 'softmax', useBias: false, name: 'dense_Dense2'});
const head = tf.sequential({name: 'sequential_3', layers: [hidden, classes]});
const model = tf.sequential({name: 'sequential_4', layers: [truncated, head]});

// Conv1: filter 0 averages the red channel of each 8x8 patch, filter 1 the blue one.
const kernel = new Float32Array(8 * 8 * 3 * 4);
for (let i = 0; i < 64; i++) {
  kernel[i * 12 + 0 * 4 + 0] = 1 / 64;
  kernel[i * 12 + 2 * 4 + 1] = 1 / 64;
  kernel[i * 12 + 1 * 4 + 2] = 1 / 64;
}
conv.setWeights([tf.tensor4d(kernel, [8, 8, 3, 4])]);
const pass = new Float32Array(4 * 100);
pass[0 * 100 + 0] = 1;
pass[1 * 100 + 1] = 1;
hidden.setWeights([tf.tensor2d(pass, [4, 100]), tf.zeros([100])]);
const logits = new Float32Array(100 * 2);
logits.set([10, -10], 0);
logits.set([-10, 10], 2);
classes.setWeights([tf.tensor2d(logits, [100, 2])]);

await model.save(
  tf.io.withSaveHandler(async (artifacts) => {
    const modelJson = {
      modelTopology: artifacts.modelTopology,
      weightsManifest: [{paths: ['weights.bin'], weights: artifacts.weightSpecs}],
      format: artifacts.format,
      generatedBy: artifacts.generatedBy,
      convertedBy: artifacts.convertedBy,
    };
    fs.writeFileSync(path.join(out, 'model.json'), JSON.stringify(modelJson));
    fs.writeFileSync(path.join(out, 'weights.bin'), Buffer.from(artifacts.weightData));
    return {modelArtifactsInfo: {dateSaved: new Date(), modelTopologyType: 'JSON'}};
  }),
);
const metadata = {
  tfjsVersion: tf.version.tfjs,
  tmVersion: '2.4.10',
  packageVersion: '0.8.5',
  packageName: '@teachablemachine/image',
  timeStamp: new Date(0).toISOString(),
  userMetadata: {},
  modelName: 'tm-my-image-model',
  labels: LABELS,
  imageSize: 224,
};
fs.writeFileSync(path.join(out, 'metadata.json'), JSON.stringify(metadata));

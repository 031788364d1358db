// Train a small model in Node and save it to Modelport with tf.io.http, as
// a training script would:
//
//   node tests/browser_app/save_http.mjs UPLOAD_URL TOKEN
//
// Prints {status, version, inputs, outputs}: what Modelport answered and
// what the trained model predicts, to compare with the served model.
import * as tf from '@tensorflow/tfjs';

const [uploadUrl, token] = process.argv.slice(2);
tf.util.seedrandom?.('modelport');
const model = tf.sequential({
  layers: [
    tf.layers.dense({units: 8, activation: 'relu', inputShape: [4], name: 'hidden'}),
    tf.layers.dense({units: 2, activation: 'softmax', name: 'scores'}),
  ],
});
model.compile({optimizer: tf.train.adam(0.05), loss: 'categoricalCrossentropy'});
const xs = tf.tensor2d([[0, 0, 1, 1], [1, 1, 0, 0], [0.5, 0, 1, 0], [1, 0.5, 0, 0.2]]);
const ys = tf.oneHot(tf.tensor1d([0, 1, 0, 1], 'int32'), 2);
await model.fit(xs, ys, {epochs: 20, verbose: 0});
const outputs = await model.predict(xs).array();

const saved = await model.save(tf.io.http(uploadUrl, {requestInit: {headers: {Authorization: `Token ${token}`}}}));
const response = saved.responses[0];
console.log(JSON.stringify({status: response.status, version: await response.json(), inputs: await xs.array(), outputs}));

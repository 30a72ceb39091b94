/**
 * The released objective on the four captioned images: ε prediction with learned-range variance
 * (improved-DDPM hybrid loss, MSE + VLB term) on the 1000-step linear schedule, tiny hybrid Dimba
 * (hidden 32, one Transformer and one Mamba block) and a jointly trained text encoder.
 *
 * Only the loss is asserted. ε at small t is (x_t - √ᾱ_t x_0) / √(1 - ᾱ_t), a gain of up to 100 on
 * the input that a network this small learns slowly, and x̂_0 = (x_t - σ_t ε̂) / α_t magnifies ε̂
 * errors by up to 150 at t = 999, so sampling ε models needs far more training than the flow test
 * (test/pipeline/overfit.test.ts) spends.
 *
 * Tolerances, measured over 6 model/noise seed pairs (400 steps, lr 1e-2, gradient norm clipped
 * at 0.5): the mean loss of the last 10 steps is 11.6-14.2x below the first 10 (asserted >= 10x);
 * on fixed draws (8 noises and timesteps per image, eval mode) the loss falls 8.7-9.6x (asserted
 * >= 6x) and the VLB term 3.1-3.9x (asserted >= 2x).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cat, noGrad, Generator, type Tensor } from '../../src/index.js';
import type { TextToImage } from '../../src/pipeline/index.js';
import { CAPTIONS, shapeImages, tinyTextToImage, trainSteps, mean } from './fixtures.js';

function fixedDrawLoss(pipe: TextToImage, images: Tensor): { loss: number; vb: number } {
  const batch = cat(new Array<Tensor>(8).fill(images), 0);
  const captions = new Array<string[]>(8).fill(CAPTIONS).flat();
  pipe.eval();
  const { loss, terms } = noGrad(() => pipe.loss(batch, captions, { generator: new Generator(1234) }));
  pipe.train();
  return { loss: loss.item(), vb: terms['vb']!.item() };
}

test('epsilon + learned variance: the hybrid loss of a tiny hybrid Dimba falls tenfold', async (t) => {
  const images = shapeImages(8);
  const pipe = tinyTextToImage({ objective: 'epsilon', hidden: 32, seed: 2 });
  assert.equal(pipe.model.outChannels, 6, 'learned variance: 2x channels');
  const before = fixedDrawLoss(pipe, images);
  const losses = await trainSteps(pipe, images, CAPTIONS, { steps: 400, lr: 1e-2, seed: 7, repeats: 2 });
  const after = fixedDrawLoss(pipe, images);
  assert.ok(losses.every(Number.isFinite), 'non-finite training loss');
  const first = mean(losses.slice(0, 10));
  const last = mean(losses.slice(-10));
  t.diagnostic(`training loss: first 10 steps ${first.toFixed(4)}, last 10 ${last.toFixed(4)} (${(first / last).toFixed(1)}x)`);
  t.diagnostic(`fixed draws: loss ${before.loss.toFixed(4)} -> ${after.loss.toFixed(4)}, vb ${before.vb.toFixed(4)} -> ${after.vb.toFixed(4)}`);
  assert.ok(first / last >= 10, `training loss fell only ${(first / last).toFixed(1)}x`);
  assert.ok(before.loss / after.loss >= 6, `fixed-draw loss fell only ${(before.loss / after.loss).toFixed(1)}x`);
  assert.ok(before.vb / after.vb >= 2, `VLB term fell only ${(before.vb / after.vb).toFixed(1)}x`);
});

/**
 * Which trained timesteps a sampler visits (diffusers' `timestep_spacing`; Lin et al. 2023, "Common
 * Diffusion Noise Schedules and Sample Steps are Flawed", Table 2). Values are computed with the same
 * float64 arithmetic and round-half-to-even as diffusers' numpy code, so they match it exactly.
 *
 * PixArt-alpha and Dimba use 'linspace': their DDIM/IDDPM respacing (`space_timesteps(1000, "N")`)
 * keeps N evenly spaced timesteps including 0 and 999, and their DPM-Solver steps uniformly in time
 * from t = 999 to t = 0, which in diffusers is DPMSolverMultistepScheduler's default 'linspace'.
 */
import { DiffusionError } from './errors.js';
import { linspace64 } from './schedule.js';

export type TimestepSpacing = 'linspace' | 'leading' | 'trailing';

/** numpy.round: halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * The first `count` elements of numpy.arange(start, stop, step): start + i * delta with numpy's
 * delta = (start + step) - start. (numpy's own length, ceil((stop - start) / step), is sometimes one
 * more from rounding, e.g. 62 for 'trailing' with 61 steps, which would add a timestep -1.)
 */
function arangeHead(start: number, step: number, count: number): number[] {
  const delta = start + step - start;
  return Array.from({ length: count }, (_, i) => start + i * delta);
}

/**
 * `count` decreasing timesteps of a `numTrainTimesteps`-step schedule (diffusers' DDIMScheduler):
 *   linspace: round(linspace(0, T - 1, count)) reversed: includes both 0 and T - 1
 *   leading:  (0, 1, ..., count - 1) * floor(T / count) reversed: never reaches T - 1
 *   trailing: round(arange(T, 0, -T / count)) - 1: starts at T - 1, never reaches 0 (exactly `count` values)
 */
export function spacedTimesteps(spacing: TimestepSpacing, numTrainTimesteps: number, count: number): number[] {
  if (!Number.isInteger(count) || count < 1 || count > numTrainTimesteps) {
    throw new DiffusionError(`spacedTimesteps: count must be an integer in [1, ${numTrainTimesteps}], got ${count}`);
  }
  const T = numTrainTimesteps;
  let ts: number[];
  switch (spacing) {
    case 'linspace':
      ts = Array.from(linspace64(0, T - 1, count), roundHalfEven).reverse();
      break;
    case 'leading': {
      const ratio = Math.floor(T / count);
      ts = Array.from({ length: count }, (_, i) => i * ratio).reverse();
      break;
    }
    case 'trailing':
      ts = arangeHead(T, -T / count, count).map((v) => roundHalfEven(v) - 1);
      break;
    default:
      throw new DiffusionError(`spacedTimesteps: unknown spacing '${String(spacing)}' (use 'linspace', 'leading' or 'trailing')`);
  }
  for (let i = 1; i < ts.length; i++) {
    if (!(ts[i]! < ts[i - 1]!)) {
      throw new DiffusionError(`spacedTimesteps: ${count} '${spacing}' steps of ${T} give repeated timestep ${ts[i]}; use fewer steps`);
    }
  }
  return ts;
}

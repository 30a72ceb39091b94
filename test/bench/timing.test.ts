/**
 * bench/cuda/timing.ts's host-side parts (the timers themselves need a GPU: every per-kernel
 * bench run exercises them): the median, the round sizing, and the shared options' checks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseArgs } from 'node:util';
import {
  JSON_OPTION, ROUNDS_OPTION, activationOptions, callsPerRound, median, parseActivation, parseReps, parseRounds, repsOptions,
} from '../../bench/cuda/timing.js';

test('median: the middle value of an odd count, the upper middle of an even one, input untouched', () => {
  const xs = [5, 1, 4, 2, 3];
  assert.equal(median(xs), 3);
  assert.deepEqual(xs, [5, 1, 4, 2, 3]);
  assert.equal(median([4, 1, 3, 2]), 3);
  assert.equal(median([0.25]), 0.25);
  assert.throws(() => median([]), /median of no values/);
});

test('callsPerRound: ~30 ms of calls, at least 2 and at most 100', () => {
  assert.equal(callsPerRound(1), 30);
  assert.equal(callsPerRound(0.7), 43);
  assert.equal(callsPerRound(20), 2);
  assert.equal(callsPerRound(100), 2);
  assert.equal(callsPerRound(0.01), 100);
  assert.equal(callsPerRound(0), 100, 'a probe below event resolution');
});

test('repsOptions/parseReps: defaults per bench, overrides, bad values named', () => {
  const parse = (argv: string[]) => parseArgs({ args: argv, options: { ...repsOptions(30, 5), ...JSON_OPTION } }).values;
  const d = parse([]);
  assert.deepEqual(parseReps(d), { reps: 30, warmup: 5 });
  assert.equal(d.json, false);
  const o = parse(['--reps', '64', '--warmup', '0', '--json']);
  assert.deepEqual(parseReps(o), { reps: 64, warmup: 0 });
  assert.equal(o.json, true);
  assert.throws(() => parseReps(parse(['--reps', '19'])), /--reps must be a whole number of at least 20, got 19/);
  assert.throws(() => parseReps(parse(['--reps', 'many'])), /--reps .* got many/);
  assert.throws(() => parseReps(parse(['--warmup=-1'])), /--warmup must be a whole number >= 0, got -1/);
  assert.throws(() => parseReps(parse(['--warmup', '2.5'])), /--warmup .* got 2\.5/);
});

test('ROUNDS_OPTION/parseRounds: 7 by default, positive integers only', () => {
  const parse = (argv: string[]) => parseArgs({ args: argv, options: { ...ROUNDS_OPTION } }).values;
  assert.equal(parseRounds(parse([]).rounds), 7);
  assert.equal(parseRounds(parse(['--rounds', '3']).rounds), 3);
  assert.throws(() => parseRounds(parse(['--rounds', '0']).rounds), /--rounds must be a positive integer, got 0/);
  assert.throws(() => parseRounds(parse(['--rounds', '1.5']).rounds), /got 1\.5/);
  assert.throws(() => parseRounds(undefined), /got undefined/);
});

test('activationOptions/parseActivation: [B, N, C] defaults per bench, bf16 or float32, bad values named', () => {
  const parse = (argv: string[]) => parseArgs({ args: argv, options: { ...activationOptions(16, 1024) } }).values;
  assert.deepEqual(parseActivation(parse([])), { B: 16, N: 1024, C: 1152, dtype: 'bfloat16', bytes: 2 });
  assert.deepEqual(parseActivation(parse(['--batch', '2', '--tokens', '8', '--channels', '64', '--dtype', 'float32'])),
    { B: 2, N: 8, C: 64, dtype: 'float32', bytes: 4 });
  assert.throws(() => parseActivation(parse(['--dtype', 'fp16'])), /--dtype must be bf16 or float32, got fp16/);
  assert.throws(() => parseActivation(parse(['--tokens', '0'])), /--tokens must be a positive integer, got 0/);
  assert.throws(() => parseActivation(parse(['--channels', 'wide'])), /--channels must be a positive integer, got wide/);
});

/**
 * Data loading throughput: images/s read, decoded, resized (and center-cropped or bucketed)
 * and turned into float32 batches by DataLoader, plus decode-only rates with 1 and several
 * images in flight (how much sharp's off-main-thread decoding buys).
 *
 *   npm run bench:data [-- --json] [-- --quick]
 *
 * Meant for 2 cores (the figure BENCHMARKS.md records): run it under `taskset -c 0,1` on a
 * larger machine. sharp is set to one libvips thread per image, so parallelism comes from
 * images in flight (prefetch) on libuv's threadpool (UV_THREADPOOL_SIZE, default 4).
 *
 * Inputs: Noto PNGs (64 px) and OpenMoji SVGs from the emoji packages, and synthetic
 * 1024x768 "photos" (blurred noise, JPEG q85, about 200 kB each) made in a temp folder.
 */
import fs from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { ASPECT_RATIO_256, ASPECT_RATIO_512, type AspectRatioTable } from '../../src/data/buckets.js';
import { locatePackages } from '../../src/data/emoji/catalog.js';
import { FolderDataset } from '../../src/data/folder-dataset.js';
import { decodeImage } from '../../src/data/image-decode.js';
import { DataLoader, type LoaderResolution } from '../../src/data/loader.js';
import type { SampleSource } from '../../src/data/source.js';
import { TarShardDataset } from '../../src/data/tar-dataset.js';
import { tarOf } from './tar.js';

interface Result {
  name: string;
  key: string;
  images: number;
  imagesPerSecond: number;
  /** Process CPU time (all threads) per image: load-independent, so 2000 / cpuMs is the rate 2 idle cores could reach. */
  cpuMsPerImage: number;
}

interface Run {
  images: number;
  seconds: number;
  cpuMs: number;
}

async function measure(body: () => Promise<number>): Promise<Run> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const images = await body();
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { images, seconds, cpuMs: (cpu.user + cpu.system) / 1000 };
}

function summarize(name: string, key: string, runs: readonly Run[]): Result {
  return {
    name,
    key,
    images: runs[0]!.images,
    imagesPerSecond: median(runs.map((r) => r.images / r.seconds)),
    cpuMsPerImage: median(runs.map((r) => r.cpuMs / r.images)),
  };
}

const argv = process.argv.slice(2);
const json = argv.includes('--json');
const quick = argv.includes('--quick');
const REPEATS = quick ? 1 : 3;

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function timeLoader(name: string, key: string, open: () => Promise<SampleSource>, resolution: LoaderResolution, prefetch: number): Promise<Result> {
  const run = async (): Promise<Run> => {
    const loader = new DataLoader({ source: await open(), batchSize: 32, resolution, prefetch, seed: 1, log: null });
    return measure(async () => {
      let images = 0;
      for await (const batch of loader.epoch()) {
        images += batch.keys.length;
        batch.images.dispose();
      }
      if (loader.report.total > 0) throw new Error(`${name}: ${loader.summary()}`);
      return images;
    });
  };
  await run(); // warm-up: file cache, sharp start
  const runs: Run[] = [];
  for (let r = 0; r < REPEATS; r++) runs.push(await run());
  return summarize(name, key, runs);
}

async function timeDecode(name: string, key: string, inputs: readonly Uint8Array[], size: number, inFlight: number): Promise<Result> {
  const run = (): Promise<Run> =>
    measure(async () => {
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < inputs.length) {
          const i = next++;
          await decodeImage(inputs[i]!, `#${i}`, () => ({ width: size, height: size }));
        }
      };
      await Promise.all(Array.from({ length: inFlight }, worker));
      return inputs.length;
    });
  await run();
  const runs: Run[] = [];
  for (let r = 0; r < REPEATS; r++) runs.push(await run());
  return summarize(name, key, runs);
}

/** A folder of `files` with a caption each (links to the originals, no copies). */
function captionedFolder(dir: string, files: readonly string[]): string {
  fs.mkdirSync(dir, { recursive: true });
  files.forEach((file, i) => {
    const ext = file.slice(file.lastIndexOf('.'));
    fs.symlinkSync(file, join(dir, `${String(i).padStart(5, '0')}${ext}`));
    fs.writeFileSync(join(dir, `${String(i).padStart(5, '0')}.txt`), `image ${i}`);
  });
  return dir;
}

async function syntheticPhotos(dir: string, count: number): Promise<string[]> {
  fs.mkdirSync(dir, { recursive: true });
  const paths: string[] = [];
  for (let i = 0; i < count; i++) {
    const path = join(dir, `photo${i}.jpg`);
    const [width, height] = i % 4 === 3 ? [768, 1024] : [1024, 768];
    await sharp({ create: { width, height, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 50 } } })
      .blur(1.2)
      .jpeg({ quality: 85 })
      .toFile(path);
    paths.push(path);
  }
  return paths;
}

async function main(): Promise<void> {
  sharp.concurrency(1);
  const tmp = fs.mkdtempSync(join(os.tmpdir(), 'dimba-bench-data-'));
  try {
    const packages = locatePackages();
    const notoDir = join(packages.google.dir, 'img', 'google', '64');
    const noto = fs.readdirSync(notoDir).sort().slice(0, quick ? 256 : 1024).map((f) => join(notoDir, f));
    const svgDir = join(packages.openmoji.dir, 'color', 'svg');
    const svgs = fs.readdirSync(svgDir).sort().slice(0, quick ? 128 : 512).map((f) => join(svgDir, f));
    const photos = await syntheticPhotos(join(tmp, 'photos'), quick ? 32 : 128);
    const notoFolder = captionedFolder(join(tmp, 'noto'), noto);
    const svgFolder = captionedFolder(join(tmp, 'svg'), svgs);
    const photoFolder = captionedFolder(join(tmp, 'photo-folder'), photos);
    const shard = join(tmp, 'photos.tar');
    await tarOf(shard, photos.map((p, i) => [`${String(i).padStart(5, '0')}.jpg`, fs.readFileSync(p)] as const), (i) => `image ${i}`);
    const photoBytes = photos.map((p) => new Uint8Array(fs.readFileSync(p)));
    const avgKb = photoBytes.reduce((n, b) => n + b.length, 0) / photoBytes.length / 1024;

    const folder = (dir: string) => () => FolderDataset.open(dir);
    const buckets = (table: AspectRatioTable): LoaderResolution => ({ buckets: table });
    const results: Result[] = [];
    const add = (r: Result): void => {
      results.push(r);
      if (!json) process.stderr.write(`${r.name}: ${r.imagesPerSecond.toFixed(0)} images/s, ${r.cpuMsPerImage.toFixed(2)} CPU ms/image\n`);
    };
    add(await timeLoader('loader: Noto PNG 64 px → 64x64', 'loader_png64_to_64', folder(notoFolder), { size: 64 }, 8));
    add(await timeLoader('loader: OpenMoji SVG → 64x64', 'loader_svg_to_64', folder(svgFolder), { size: 64 }, 8));
    add(await timeLoader('loader: OpenMoji SVG → 256x256', 'loader_svg_to_256', folder(svgFolder), { size: 256 }, 8));
    add(await timeLoader(`loader: JPEG 1024x768 (${avgKb.toFixed(0)} kB) → 256 buckets`, 'loader_jpeg_to_256_buckets', folder(photoFolder), buckets(ASPECT_RATIO_256), 8));
    add(await timeLoader(`loader: JPEG 1024x768 → 512 buckets`, 'loader_jpeg_to_512_buckets', folder(photoFolder), buckets(ASPECT_RATIO_512), 8));
    add(await timeLoader('loader: tar shard of the JPEGs → 256 buckets', 'loader_tar_jpeg_to_256_buckets', () => TarShardDataset.open([shard]), buckets(ASPECT_RATIO_256), 8));
    add(await timeDecode('decode only: JPEG → 256x256, 1 in flight', 'decode_jpeg_256_inflight1', photoBytes, 256, 1));
    add(await timeDecode('decode only: JPEG → 256x256, 4 in flight', 'decode_jpeg_256_inflight4', photoBytes, 256, 4));

    const load = os.loadavg()[0]!;
    const machine = { load1: Number(load.toFixed(2)), cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.availableParallelism(), node: process.version, sharp: sharp.versions.sharp, vips: sharp.versions.vips };
    if (json) {
      const out: Record<string, unknown> = { machine };
      for (const r of results) {
        out[r.key] = Number(r.imagesPerSecond.toFixed(1));
        out[`${r.key}_cpu_ms`] = Number(r.cpuMsPerImage.toFixed(3));
      }
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    } else {
      const width = Math.max(...results.map((r) => r.name.length));
      const warn = machine.cores !== 2 ? ` (not 2: use taskset -c 0,1 for the recorded figure)` : '';
      process.stdout.write(`${machine.cpu}, ${machine.cores} cores${warn}, load ${machine.load1}, node ${machine.node}, sharp ${machine.sharp} / libvips ${machine.vips}\n\n`);
      process.stdout.write(`${'case'.padEnd(width)}  images  images/s  CPU ms/image\n`);
      for (const r of results) {
        process.stdout.write(`${r.name.padEnd(width)}  ${String(r.images).padStart(6)}  ${r.imagesPerSecond.toFixed(0).padStart(8)}  ${r.cpuMsPerImage.toFixed(2).padStart(12)}\n`);
      }
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

await main();

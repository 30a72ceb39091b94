/** Writes a WebDataset shard for the benchmark: each image with a .txt caption. */
import fs from 'node:fs';
import tar from 'tar-stream';

export async function tarOf(path: string, images: readonly (readonly [string, Uint8Array])[], caption: (i: number) => string): Promise<void> {
  const pack = tar.pack();
  const out = fs.createWriteStream(path);
  const finished = new Promise<void>((resolve, reject) => {
    out.on('finish', () => resolve());
    out.on('error', reject);
  });
  pack.pipe(out);
  for (let i = 0; i < images.length; i++) {
    const [name, bytes] = images[i]!;
    const stem = name.slice(0, name.indexOf('.'));
    pack.entry({ name }, Buffer.from(bytes));
    pack.entry({ name: `${stem}.txt` }, caption(i));
  }
  pack.finalize();
  await finished;
}

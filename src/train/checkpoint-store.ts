/**
 * Checkpoint folders on disk: `<stageDir>/step-N/`, each written whole or not at all.
 *
 * A checkpoint is assembled in a hidden temporary folder beside its final place; every file is
 * fsynced, then the folder is renamed to `step-N` and the parent folder fsynced. A crash, a full
 * disk or an unwritable folder at any point leaves the earlier checkpoints as they were and at
 * most a `.tmp-step-*` folder, which listings ignore and the next save removes. `trainer.json`
 * is written last, so a folder without it (copied by hand, say) is not taken for a checkpoint.
 */
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, join } from 'node:path';
import { CheckpointError, errorCode, messageOf } from './errors.js';
import { syncDirectory } from '../io/safetensors/fileio.js';

export const TRAINER_STATE_FILE = 'trainer.json';
const STEP_DIR = /^step-(\d+)$/;
const TEMP_PREFIX = '.tmp-step-';

export interface CheckpointFile {
  name: string;
  /** Writes the file at `path` (inside the temporary folder) and fsyncs it. */
  write(path: string): Promise<void>;
}

export interface WriteHooks {
  /** Called before each file is written; tests throw here (or exit) to stand for a crash or a full disk. */
  beforeFile?: (name: string) => void | Promise<void>;
}

export interface CheckpointEntry {
  step: number;
  path: string;
}

/** Writes bytes or text to `path` and fsyncs it before returning. */
export async function writeFileSynced(path: string, data: string | Uint8Array): Promise<void> {
  const handle = await fs.promises.open(path, 'wx');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export function jsonFile(name: string, value: unknown): CheckpointFile {
  return { name, write: (path) => writeFileSynced(path, `${JSON.stringify(value, null, 1)}\n`) };
}

/** The first errno code along an error's cause chain. */
function rootCode(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e !== undefined && depth < 8; depth++) {
    const code = errorCode(e);
    if (code !== undefined) return code;
    e = typeof e === 'object' && e !== null ? Reflect.get(e, 'cause') : undefined;
  }
  return undefined;
}

/** What a user can do about a failed write, by errno code. */
export function writeFailureHint(error: unknown): string {
  switch (rootCode(error)) {
    case 'ENOSPC': case 'EDQUOT': return ' (the disk is full: free space or choose another outputDir)';
    case 'EACCES': case 'EPERM': case 'EROFS': return ' (the folder is not writable: fix its permissions or choose another outputDir)';
    case 'ENOTDIR': case 'EEXIST': return ' (a file is in the way of the output folder)';
    default: return '';
  }
}

/** Complete checkpoints of a stage folder, oldest first. */
export function listCheckpoints(stageDir: string): CheckpointEntry[] {
  let names: string[];
  try {
    names = fs.readdirSync(stageDir);
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return [];
    throw new CheckpointError(`cannot list checkpoints in ${stageDir}: ${messageOf(error)}`, { cause: error });
  }
  const out: CheckpointEntry[] = [];
  for (const name of names) {
    const m = STEP_DIR.exec(name);
    if (m && fs.existsSync(join(stageDir, name, TRAINER_STATE_FILE))) out.push({ step: Number(m[1]), path: join(stageDir, name) });
  }
  return out.sort((a, b) => a.step - b.step);
}

export function isCheckpointDir(path: string): boolean {
  return STEP_DIR.test(basename(path)) && fs.existsSync(join(path, TRAINER_STATE_FILE));
}

/** Removes temporary folders that an interrupted save left behind. */
async function removeLeftovers(stageDir: string): Promise<void> {
  for (const name of await fs.promises.readdir(stageDir)) {
    if (name.startsWith(TEMP_PREFIX)) await fs.promises.rm(join(stageDir, name), { recursive: true, force: true });
  }
}

/**
 * Writes `files` as `<stageDir>/step-<step>` atomically and returns its path. A checkpoint of
 * that step that already exists is kept as it is (a run saves its state at a step once; a second
 * save of the same step, say on a signal right after a scheduled save, would write the same).
 */
export async function writeCheckpoint(stageDir: string, step: number, files: readonly CheckpointFile[], hooks: WriteHooks = {}): Promise<string> {
  const finalPath = join(stageDir, `step-${step}`);
  const previous = listCheckpoints(stageDir).at(-1);
  const intact = previous ? ` The previous checkpoint ${previous.path} is intact.` : '';
  let temp: string | undefined;
  try {
    await fs.promises.mkdir(stageDir, { recursive: true });
    if (isCheckpointDir(finalPath)) return finalPath;
    await removeLeftovers(stageDir);
    temp = join(stageDir, `${TEMP_PREFIX}${step}-${process.pid}-${randomBytes(4).toString('hex')}`);
    await fs.promises.mkdir(temp);
    const ordered = [...files.filter((f) => f.name !== TRAINER_STATE_FILE), ...files.filter((f) => f.name === TRAINER_STATE_FILE)];
    for (const file of ordered) {
      await hooks.beforeFile?.(file.name);
      await file.write(join(temp, file.name));
    }
    await syncDirectory(temp);
    await fs.promises.rm(finalPath, { recursive: true, force: true }); // an incomplete step-N (no trainer.json)
    await fs.promises.rename(temp, finalPath);
    temp = undefined;
    await syncDirectory(stageDir);
    return finalPath;
  } catch (error) {
    if (temp !== undefined) await fs.promises.rm(temp, { recursive: true, force: true }).catch(() => undefined);
    throw new CheckpointError(`cannot save checkpoint step-${step} in ${stageDir}: ${messageOf(error)}${writeFailureHint(error)}.${intact}`, { cause: error });
  }
}

/** Deletes all but the newest `keepLast` complete checkpoints of a stage folder. */
export async function pruneCheckpoints(stageDir: string, keepLast: number): Promise<string[]> {
  const all = listCheckpoints(stageDir);
  const doomed = all.slice(0, Math.max(0, all.length - keepLast));
  for (const entry of doomed) {
    // Rename first, so a crash mid-delete leaves a temporary folder rather than a torn step-N.
    const trash = join(stageDir, `${TEMP_PREFIX}deleted-${entry.step}-${randomBytes(4).toString('hex')}`);
    await fs.promises.rename(entry.path, trash);
    await fs.promises.rm(trash, { recursive: true, force: true });
  }
  return doomed.map((e) => e.path);
}

/**
 * Checks early that `dir` can be created and written, so a run does not train for an hour and
 * then fail at its first checkpoint.
 */
export async function checkWritable(dir: string): Promise<void> {
  const probe = join(dir, `.write-test-${process.pid}`);
  try {
    await fs.promises.mkdir(dir, { recursive: true });
    await writeFileSynced(probe, 'ok');
    await fs.promises.rm(probe);
  } catch (error) {
    throw new CheckpointError(`output folder ${dir} is not usable: ${messageOf(error)}${writeFailureHint(error)}`, { cause: error });
  }
}


/**
 * Test helper run as a child process by checkpoint.test.ts: starts a checkpoint write in the
 * folder given as argument and exits the process half way through it. Without an argument (the
 * test runner picks up every file under test/) it does nothing.
 */
import { jsonFile, writeCheckpoint } from '../../src/train/checkpoint-store.js';

const stageDir = process.argv[2];
if (stageDir !== undefined && stageDir.length > 0 && !stageDir.startsWith('-')) {
  await writeCheckpoint(stageDir, 5, [jsonFile('model.json', { a: 1 }), jsonFile('optimizer.json', { b: 2 }), jsonFile('trainer.json', { c: 3 })], {
    beforeFile: (name) => { if (name === 'optimizer.json') process.exit(7); },
  });
}

// Loading a model directory for a command that needs the engine (eval, profile): the addon is
// imported lazily, so argument errors and --help work without it, and a failure is one line.
import type { NativeEngineModel } from '../../native/index';

/** The model in `dir`, or null after printing `sparse-studio COMMAND: reason` (the caller exits 2). */
export async function loadModelForCommand(command: string, dir: string): Promise<NativeEngineModel | null> {
  const { engine, ADDON_MISSING } = await import('../../native/index');
  try {
    return await engine.loadModel(dir);
  } catch (e) {
    const message = (e as Error).message;
    console.error(`sparse-studio ${command}: ${message === ADDON_MISSING ? message : message.split('\n')[0]}`);
    return null;
  }
}

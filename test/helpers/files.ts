import { stat } from 'node:fs/promises';

/** Whether anything exists at `p`. */
export const exists = (p: string): Promise<boolean> => stat(p).then(() => true, () => false);

/** A thread of the token pool (see tokens.ts): piscina calls these by name. */
import { threadTasks } from './token-counting.js';

export const { count, countAll, countEach, cut, pieces } = threadTasks;

/** The thread of the scripted model's schema pool (see schema-answer.ts): piscina calls `answer` by name. */
import { generateValid, warmUp } from './schema-answer.js';

export const answer = generateValid;
export { warmUp };

/**
 * The offline, deterministic model: it follows directives written in the last user
 * message, one per line, so demos and tests script a run's path without a network.
 *
 *   call <function-name> <json-arguments>   a tool call (several lines: parallel calls)
 *   sleep <ms>                              work that long; a cancel aborts it promptly
 *   pace <ms>                               speak the answer one token every <ms>; a
 *                                           cancel aborts it promptly (default 0: at once)
 *   fail <server_error|rate_limit_exceeded|invalid_prompt>
 *
 * Otherwise it answers `echo: <the last user message>`; once tool outputs are in, it
 * answers with them, one `<function-name>: <output>` per line. With a JSON_OBJECT response
 * format that answer comes as `{"answer": ...}`; with JSON_SCHEMA, as a value generated
 * from the schema that validates against it (schema-answer.ts). Tokens are counted as
 * engine/tokens counts them (o200k_base, the encoding of current OpenAI models), and the
 * answer is streamed as a model streams it: a piece per token, a character whose bytes
 * span tokens whole in the piece of the token that completes it.
 */
import { randomUUID } from 'node:crypto';
import type { RunErrorCode, ToolCall } from '../../domain/run.js';
import { countTokens, promptTokens, tokenPieces, type TokenPieces } from '../tokens.js';
import { schemaAnswer } from './schema-answer.js';
import { ModelError, type ModelProvider, type ModelRequest, type ModelResult, type OnText } from './provider.js';

const ERROR_CODES: readonly RunErrorCode[] = ['server_error', 'rate_limit_exceeded', 'invalid_prompt'];

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

export const scriptedProvider: ModelProvider = {
  name: 'scripted',
  handles: (model) => model === 'scripted' || model.startsWith('scripted-'),

  async complete(request: ModelRequest, signal: AbortSignal, onText?: OnText): Promise<ModelResult> {
    const prompt = await promptTokens(request.messages);
    const lastUser = [...request.messages].reverse().find((m) => m.role === 'user')?.content ?? '';
    // Tool outputs that arrived after the last assistant turn that called tools.
    const lastCallIndex = request.messages.findLastIndex((m) => m.role === 'assistant' && m.toolCalls?.length);
    const outputs = lastCallIndex >= 0 ? request.messages.slice(lastCallIndex + 1).filter((m) => m.role === 'tool') : [];

    const calls: ToolCall[] = [];
    let pace = 0;
    for (const line of lastUser.split('\n').map((l) => l.trim())) {
      const [directive, arg = '', ...rest] = line.split(/\s+/);
      if (directive === 'sleep' && outputs.length === 0) await sleep(Number(arg) || 0, signal);
      // How the model speaks, on every turn (sleep and fail are about its first).
      if (directive === 'pace') pace = Math.max(0, Number(arg) || 0);
      if (directive === 'fail' && outputs.length === 0) {
        const code = ERROR_CODES.includes(arg as RunErrorCode) ? (arg as RunErrorCode) : 'server_error';
        throw new ModelError(code, `Scripted failure: ${code}`);
      }
      if (directive === 'call' && request.tools.some((t) => t.function.name === arg)) {
        calls.push(toolCall(arg, rest.join(' ') || '{}'));
      }
    }

    const choice = request.toolChoice;
    const mustCall = choice && ('function' in choice || choice.mode === 'required');
    const mayCall = !(choice && 'mode' in choice && choice.mode === 'none');
    if (outputs.length === 0 && mayCall) {
      let chosen = calls;
      if (choice && 'function' in choice) chosen = calls.filter((c) => c.function.name === choice.function.name);
      if (chosen.length === 0 && mustCall) {
        const name = choice && 'function' in choice ? choice.function.name : request.tools[0]?.function.name;
        if (name) chosen = [toolCall(name, '{}')];
      }
      if (!request.parallelToolCalls) chosen = chosen.slice(0, 1);
      if (chosen.length > 0) {
        const completion = await countTokens(chosen.map((c) => c.function.name + c.function.arguments).join(''));
        return { type: 'tool_calls', toolCalls: chosen, usage: usage(prompt, completion) };
      }
    }

    let text = outputs.length > 0 ? outputs.map((o) => `${o.name ?? 'tool'}: ${o.content}`).join('\n') : `echo: ${lastUser}`;
    const format = request.responseFormat;
    if (format?.type === 'json_schema' && format.jsonSchema.schema) {
      // An answer that validates against the schema, as a model with structured outputs gives.
      text = await schemaAnswer(format.jsonSchema.schema, signal);
    } else if (format?.type === 'json_object' || format?.type === 'json_schema') {
      text = JSON.stringify({ answer: text });
    }
    // An answer longer than maxCompletionTokens is cut there, as a real model's would be.
    const answer = await tokenPieces(text, request.maxCompletionTokens);
    await speak(answer, pace, signal, onText);
    return { type: 'message', text: answer.text, usage: usage(prompt, answer.tokens), truncated: answer.truncated };
  },
};

/** Gives the listener a long answer's pieces in runs of about this long, then lets the event loop turn. */
const SPEAK_SLICE_MS = 10;

/**
 * Hands the answer's pieces to `onText`: `pace` ms after each token but the first (so a
 * piece of three tokens waits three times), or all at once without a pace. Until the
 * last piece the answer is not given: a cancel meanwhile rejects, as it does a sleep.
 */
async function speak(answer: TokenPieces, pace: number, signal: AbortSignal, onText: OnText | undefined): Promise<void> {
  if (!onText && pace === 0) return;
  const { text, ends, tokenEnds } = answer;
  let start = 0;
  let spoken = 1; // tokens out so far: the first comes with the answer
  let slice = performance.now();
  for (const [i, end] of ends.entries()) {
    const tokens = tokenEnds[i] ?? spoken;
    if (pace > 0 && tokens > spoken) {
      await sleep(pace * (tokens - spoken), signal);
      slice = performance.now();
    } else if (performance.now() - slice > SPEAK_SLICE_MS) {
      // Tens of thousands of pieces, or a slow listener: other callbacks get their turn.
      await new Promise((resolve) => setImmediate(resolve));
      signal.throwIfAborted();
      slice = performance.now();
    }
    spoken = tokens;
    onText?.(text.slice(start, end));
    start = end;
  }
}

function toolCall(name: string, args: string): ToolCall {
  return { id: `call_${randomUUID().replace(/-/g, '').slice(0, 24)}`, type: 'function', function: { name, arguments: args } };
}

function usage(promptTokens: number, completionTokens: number) {
  return { promptTokens, completionTokens, totalTokens: promptTokens + completionTokens };
}

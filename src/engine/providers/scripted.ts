/**
 * The offline, deterministic model: it follows directives written in the last user
 * message, one per line, so demos and tests script a run's path without a network.
 *
 *   call <function-name> <json-arguments>   a tool call (several lines: parallel calls)
 *   sleep <ms>                              work that long; a cancel aborts it promptly
 *   fail <server_error|rate_limit_exceeded|invalid_prompt>
 *
 * Otherwise it answers `echo: <the last user message>`; once tool outputs are in, it
 * answers with them, one `<function-name>: <output>` per line. Tokens are counted as
 * engine/tokens counts them (o200k_base, the encoding of current OpenAI models).
 */
import { randomUUID } from 'node:crypto';
import type { RunErrorCode, ToolCall } from '../../domain/run.js';
import { countTokens, cutAtTokens, promptTokens } from '../tokens.js';
import { ModelError, type ModelProvider, type ModelRequest, type ModelResult } from './provider.js';

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

  async complete(request: ModelRequest, signal: AbortSignal): Promise<ModelResult> {
    const prompt = await promptTokens(request.messages);
    const lastUser = [...request.messages].reverse().find((m) => m.role === 'user')?.content ?? '';
    // Tool outputs that arrived after the last assistant turn that called tools.
    const lastCallIndex = request.messages.findLastIndex((m) => m.role === 'assistant' && m.toolCalls?.length);
    const outputs = lastCallIndex >= 0 ? request.messages.slice(lastCallIndex + 1).filter((m) => m.role === 'tool') : [];

    const calls: ToolCall[] = [];
    for (const line of lastUser.split('\n').map((l) => l.trim())) {
      const [directive, arg = '', ...rest] = line.split(/\s+/);
      if (directive === 'sleep' && outputs.length === 0) await sleep(Number(arg) || 0, signal);
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
    if (request.responseFormat?.type === 'json_object' || request.responseFormat?.type === 'json_schema') {
      text = JSON.stringify({ answer: text });
    }
    // An answer longer than maxCompletionTokens is cut there, as a real model's would be.
    const answer = await cutAtTokens(text, request.maxCompletionTokens);
    return { type: 'message', text: answer.text, usage: usage(prompt, answer.tokens), truncated: answer.truncated };
  },
};

function toolCall(name: string, args: string): ToolCall {
  return { id: `call_${randomUUID().replace(/-/g, '').slice(0, 24)}`, type: 'function', function: { name, arguments: args } };
}

function usage(promptTokens: number, completionTokens: number) {
  return { promptTokens, completionTokens, totalTokens: promptTokens + completionTokens };
}

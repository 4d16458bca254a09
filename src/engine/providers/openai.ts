/**
 * Any OpenAI-compatible Chat Completions endpoint, through the official `openai` client
 * (it owns the wire format, SSE parsing, retries with backoff and typed HTTP errors).
 * Streams the completion, passes its text on as it arrives, and folds the deltas into one
 * answer or one set of tool calls. A stream that stops before the endpoint said why the
 * answer ended (a finish_reason) was cut, whatever the connection did: a server_error.
 */
import OpenAI from 'openai';
import type { ChatCompletionCreateParamsStreaming, ChatCompletionMessageParam } from 'openai/resources/chat/completions';
import type { RunErrorCode, ToolCall } from '../../domain/run.js';
import { isScriptedModel } from './routes.js';
import { ModelError, type ModelProvider, type ModelRequest, type ModelResult, type OnText } from './provider.js';

export interface OpenAIProviderOptions {
  baseURL?: string | undefined;
  apiKey?: string | undefined;
  /** Retries of 429, 5xx and network errors, with the client's backoff (OPENAI_MAX_RETRIES). */
  maxRetries: number;
  /** @default 600000 (10 minutes, the client's default) */
  timeoutMs?: number | undefined;
  /**
   * The models this endpoint serves (a model route's patterns).
   * @default every model not named `scripted`/`scripted-*`: the endpoint decides what it serves
   */
  handles?: (model: string) => boolean;
  /** Tokens its models take in a prompt, when known (see {@link ModelProvider.contextWindow}). */
  contextWindow?: number | undefined;
}

export function createOpenAIProvider(options: OpenAIProviderOptions): ModelProvider {
  const client = new OpenAI({
    baseURL: options.baseURL,
    // Local OpenAI-compatible servers often want no key; the client insists on one.
    apiKey: options.apiKey || 'unused',
    maxRetries: options.maxRetries,
    timeout: options.timeoutMs ?? 600_000,
  });

  return {
    name: 'openai',
    handles: options.handles ?? ((model) => !isScriptedModel(model)),
    contextWindow: options.contextWindow,

    async complete(request, signal, onText) {
      let stream;
      try {
        stream = await client.chat.completions.create(toParams(request), { signal });
      } catch (error) {
        signal.throwIfAborted(); // the caller knows why
        throw toModelError(error, 'Model endpoint failed');
      }
      try {
        return await collect(stream, signal, onText);
      } catch (error) {
        signal.throwIfAborted();
        throw toModelError(error, 'The model endpoint broke off the stream');
      }
    },
  };
}

export function toParams(request: ModelRequest): ChatCompletionCreateParamsStreaming {
  const params: ChatCompletionCreateParamsStreaming = {
    model: request.model,
    stream: true,
    stream_options: { include_usage: true },
    messages: request.messages.map(toMessage),
  };
  if (request.temperature != null) params.temperature = request.temperature;
  if (request.topP != null) params.top_p = request.topP;
  if (request.maxCompletionTokens != null) params.max_completion_tokens = request.maxCompletionTokens;
  if (request.tools.length > 0) {
    params.tools = request.tools.map((t) => ({
      type: 'function',
      function: {
        name: t.function.name,
        ...(t.function.description != null ? { description: t.function.description } : {}),
        ...(t.function.parameters != null ? { parameters: t.function.parameters } : {}),
        ...(t.function.strict != null ? { strict: t.function.strict } : {}),
      },
    }));
    params.parallel_tool_calls = request.parallelToolCalls;
    const choice = request.toolChoice;
    if (choice) {
      params.tool_choice = 'mode' in choice ? choice.mode : { type: 'function', function: { name: choice.function.name } };
    }
  }
  const format = request.responseFormat;
  if (format && format.type !== 'auto') {
    params.response_format =
      format.type === 'json_schema'
        ? {
            type: 'json_schema',
            json_schema: {
              name: format.jsonSchema.name,
              ...(format.jsonSchema.description != null ? { description: format.jsonSchema.description } : {}),
              ...(format.jsonSchema.schema != null ? { schema: format.jsonSchema.schema } : {}),
              ...(format.jsonSchema.strict != null ? { strict: format.jsonSchema.strict } : {}),
            },
          }
        : { type: format.type };
  }
  return params;
}

function toMessage(m: ModelRequest['messages'][number]): ChatCompletionMessageParam {
  switch (m.role) {
    case 'system':
      return { role: 'system', content: m.content };
    case 'user':
      return { role: 'user', content: m.content };
    case 'tool':
      return { role: 'tool', content: m.content, tool_call_id: m.toolCallId ?? '' };
    case 'assistant':
      return m.toolCalls?.length
        ? { role: 'assistant', content: m.content || null, tool_calls: m.toolCalls }
        : { role: 'assistant', content: m.content };
  }
}

/**
 * Folds a completion stream: text deltas appended (and passed to `onText` as they come),
 * tool calls assembled by index.
 */
async function collect(
  stream: AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>,
  signal: AbortSignal,
  onText: OnText | undefined,
): Promise<ModelResult> {
  let text = '';
  let finishReason: string | null = null;
  const calls: ToolCall[] = [];
  let usage = { promptTokens: 0, completionTokens: 0, totalTokens: 0 };
  // The SDK hands over whole strings, but a delta is JSON: an endpoint may end one with
  // the first half of a surrogate pair (`"\ud83d"`) and begin the next with the second.
  // That half waits for its pair, so no piece splits a character.
  let half = '';
  const pass = (content: string) => {
    let piece = half + content;
    half = '';
    if (isHighSurrogate(piece.charCodeAt(piece.length - 1))) {
      half = piece.slice(-1);
      piece = piece.slice(0, -1);
    }
    if (piece) onText?.(piece);
  };
  for await (const chunk of stream) {
    if (chunk.usage) {
      usage = {
        promptTokens: chunk.usage.prompt_tokens,
        completionTokens: chunk.usage.completion_tokens,
        totalTokens: chunk.usage.total_tokens,
      };
    }
    const choice = chunk.choices[0];
    if (!choice) continue;
    if (choice.delta.content) {
      text += choice.delta.content;
      pass(choice.delta.content);
    }
    for (const delta of choice.delta.tool_calls ?? []) {
      const call = (calls[delta.index] ??= { id: '', type: 'function', function: { name: '', arguments: '' } });
      if (delta.id) call.id = delta.id;
      if (delta.function?.name) call.function.name += delta.function.name;
      if (delta.function?.arguments) call.function.arguments += delta.function.arguments;
    }
    if (choice.finish_reason) finishReason = choice.finish_reason;
  }
  // An aborted stream ends quietly: a cut answer is not a finished one.
  signal.throwIfAborted();
  // So does one whose connection closed in good order before the answer was done (the
  // SDK reads the end of the body as the end of the stream, [DONE] or not).
  if (finishReason == null) throw new ModelError('server_error', 'The model endpoint ended the stream before the answer was finished.');
  if (half) onText?.(half); // a lone half it is, then: the text has it too
  const toolCalls = calls.filter(Boolean);
  if (toolCalls.length > 0 && finishReason !== 'length') return { type: 'tool_calls', toolCalls, usage };
  return { type: 'message', text, usage, truncated: finishReason === 'length' };
}

/**
 * HTTP 429 -> rate_limit_exceeded; 400 -> invalid_prompt; 5xx, an error event in the
 * stream, network, a cut stream, the rest -> server_error. `failed` opens the message of
 * an error that is not the endpoint's own.
 */
function toModelError(error: unknown, failed: string): unknown {
  if (error instanceof ModelError) return error;
  if (error instanceof OpenAI.APIError) {
    const code: RunErrorCode = error.status === 429 ? 'rate_limit_exceeded' : error.status === 400 ? 'invalid_prompt' : 'server_error';
    return new ModelError(code, upstreamMessage(error));
  }
  if (error instanceof Error) {
    // fetch says only "terminated" of a connection cut mid-body; its cause says how.
    const cause = error.cause instanceof Error && error.cause.message ? ` (${error.cause.message})` : '';
    return new ModelError('server_error', `${failed}: ${error.message}${cause}`);
  }
  return new ModelError('server_error', `${failed}.`);
}

function upstreamMessage(error: InstanceType<typeof OpenAI.APIError>): string {
  const body = error.error as { message?: unknown } | undefined;
  if (body && typeof body.message === 'string') return body.message;
  return error.message;
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

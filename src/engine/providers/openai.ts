/**
 * Any OpenAI-compatible Chat Completions endpoint, through the official `openai` client
 * (it owns the wire format, SSE parsing, retries with backoff and typed HTTP errors).
 * Streams the completion and folds the deltas into one answer or one set of tool calls.
 */
import OpenAI from 'openai';
import type { ChatCompletionCreateParamsStreaming, ChatCompletionMessageParam } from 'openai/resources/chat/completions';
import type { RunErrorCode, ToolCall } from '../../domain/run.js';
import { ModelError, type ModelProvider, type ModelRequest, type ModelResult } from './provider.js';

export interface OpenAIProviderOptions {
  baseURL?: string | undefined;
  apiKey?: string | undefined;
  /** Retries of 429, 5xx and network errors, with the client's backoff (OPENAI_MAX_RETRIES). */
  maxRetries: number;
  /** @default 600000 (10 minutes, the client's default) */
  timeoutMs?: number;
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
    // Whatever the scripted model does not take: the endpoint decides what it serves.
    handles: (model) => !(model === 'scripted' || model.startsWith('scripted-')),

    async complete(request, signal) {
      try {
        const stream = await client.chat.completions.create(toParams(request), { signal });
        const result = await collect(stream);
        // An aborted stream can end quietly: a cut answer is not a finished one.
        signal.throwIfAborted();
        return result;
      } catch (error) {
        throw toModelError(error, signal);
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

/** Folds a completion stream: text deltas appended, tool calls assembled by index. */
async function collect(stream: AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>): Promise<ModelResult> {
  let text = '';
  let finishReason: string | null = null;
  const calls: ToolCall[] = [];
  let usage = { promptTokens: 0, completionTokens: 0, totalTokens: 0 };
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
    if (choice.delta.content) text += choice.delta.content;
    for (const delta of choice.delta.tool_calls ?? []) {
      const call = (calls[delta.index] ??= { id: '', type: 'function', function: { name: '', arguments: '' } });
      if (delta.id) call.id = delta.id;
      if (delta.function?.name) call.function.name += delta.function.name;
      if (delta.function?.arguments) call.function.arguments += delta.function.arguments;
    }
    if (choice.finish_reason) finishReason = choice.finish_reason;
  }
  const toolCalls = calls.filter(Boolean);
  if (toolCalls.length > 0 && finishReason !== 'length') return { type: 'tool_calls', toolCalls, usage };
  return { type: 'message', text, usage, truncated: finishReason === 'length' };
}

/** HTTP 429 -> rate_limit_exceeded; 400 -> invalid_prompt; 5xx, network, the rest -> server_error. */
function toModelError(error: unknown, signal: AbortSignal): unknown {
  if (signal.aborted) return error; // the caller knows why
  if (error instanceof OpenAI.APIError) {
    const code: RunErrorCode = error.status === 429 ? 'rate_limit_exceeded' : error.status === 400 ? 'invalid_prompt' : 'server_error';
    return new ModelError(code, upstreamMessage(error));
  }
  if (error instanceof Error) return new ModelError('server_error', `Model endpoint failed: ${error.message}`);
  return new ModelError('server_error', 'Model endpoint failed.');
}

function upstreamMessage(error: InstanceType<typeof OpenAI.APIError>): string {
  const body = error.error as { message?: unknown } | undefined;
  if (body && typeof body.message === 'string') return body.message;
  return error.message;
}

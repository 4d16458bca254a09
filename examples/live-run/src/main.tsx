/**
 * A run, live: the page creates an assistant (the offline `scripted` model), a thread and a
 * run in one mutation, then follows the run over graphql-ws: its status, and its answer
 * token by token (each MessageDeltaEvent's text goes at its index of the message's text).
 */
import { StrictMode, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { Client, fetchExchange, Provider, subscriptionExchange, useMutation, useSubscription } from 'urql';
import { createClient as createWsClient } from 'graphql-ws';

// Same origin as the page: vite passes /graphql (and its websockets) on to Runway.
const ws = createWsClient({ url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql` });
const client = new Client({
  url: '/graphql',
  exchanges: [
    fetchExchange,
    subscriptionExchange({
      forwardSubscription: (request) => ({
        subscribe: (sink) => ({ unsubscribe: ws.subscribe({ ...request, query: request.query ?? '' }, sink) }),
      }),
    }),
  ],
});

const CREATE_ASSISTANT = `mutation { createAssistant(input: { model: "scripted", name: "Storyteller" }) { id } }`;

const START_RUN = `mutation Start($assistantId: ID!, $content: String!) {
  createThreadAndRun(input: { assistantId: $assistantId, thread: { messages: [{ role: USER, content: $content }] } }) {
    id threadId status
  }
}`;

const RUN_EVENTS = `subscription Follow($threadId: ID!, $runId: ID!) {
  runEvents(threadId: $threadId, runId: $runId) {
    __typename
    ... on RunStatusEvent { status }
    ... on MessageDeltaEvent { index text }
  }
}`;

interface RunEvent {
  __typename: string;
  status?: string;
  index?: number;
  text?: string;
}

interface Live {
  status: string;
  text: string;
}

/** The run's status and text so far, from its events. */
function follow(live: Live | undefined, data: { runEvents: RunEvent }): Live {
  const event = data.runEvents;
  const now = live ?? { status: 'QUEUED', text: '' };
  if (event.__typename === 'RunStatusEvent' && event.status) return { ...now, status: event.status };
  if (event.__typename === 'MessageDeltaEvent' && event.text !== undefined)
    return { ...now, text: now.text.slice(0, event.index ?? now.text.length) + event.text };
  return now;
}

function LiveRun({ threadId, runId }: { threadId: string; runId: string }) {
  const [{ data, error }] = useSubscription({ query: RUN_EVENTS, variables: { threadId, runId } }, follow);
  return (
    <section>
      <p>
        Run <code>{runId}</code>: <strong data-testid="status">{data?.status ?? 'QUEUED'}</strong>
      </p>
      <pre data-testid="text" style={{ whiteSpace: 'pre-wrap', minHeight: '4em', padding: '1em', background: '#f4f4f5' }}>
        {data?.text}
      </pre>
      {error && <p role="alert">{error.message}</p>}
    </section>
  );
}

function App() {
  const [content, setContent] = useState('pace 40\nTell me a story about octopuses.');
  const [run, setRun] = useState<{ threadId: string; runId: string }>();
  const [, createAssistant] = useMutation<{ createAssistant: { id: string } }>(CREATE_ASSISTANT);
  const [started, startRun] = useMutation<{ createThreadAndRun: { id: string; threadId: string } }>(START_RUN);
  const [failure, setFailure] = useState<string>();

  async function start() {
    setFailure(undefined);
    const assistant = await createAssistant({});
    if (!assistant.data) return setFailure(assistant.error?.message);
    const created = await startRun({ assistantId: assistant.data.createAssistant.id, content });
    if (!created.data) return setFailure(created.error?.message);
    setRun({ threadId: created.data.createThreadAndRun.threadId, runId: created.data.createThreadAndRun.id });
  }

  return (
    <main style={{ fontFamily: 'system-ui, sans-serif', maxWidth: '48em', margin: '2em auto' }}>
      <h1>A run, live</h1>
      <p>
        The <code>scripted</code> model answers <code>echo: </code> and your message; <code>pace 40</code> makes it write one token every 40
        ms.
      </p>
      <textarea value={content} onChange={(e) => setContent(e.target.value)} rows={3} cols={60} aria-label="Message" />
      <p>
        <button onClick={() => void start()} disabled={started.fetching}>
          Start a run
        </button>
      </p>
      {failure && <p role="alert">{failure}</p>}
      {run && <LiveRun key={run.runId} {...run} />}
    </main>
  );
}

const root = document.getElementById('root');
if (!root) throw new Error('index.html has no #root');
createRoot(root).render(
  <StrictMode>
    <Provider value={client}>
      <App />
    </Provider>
  </StrictMode>,
);

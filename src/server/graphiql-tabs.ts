/**
 * The tabs GraphiQL opens with the first time (it keeps a person's own tabs afterwards):
 * the README's first run, with the scripted model, ready to run tab after tab. Each tab
 * holds the operations of one step; its Variables pane says which ids to paste from the
 * earlier tabs' answers.
 */
export interface GraphiqlTab {
  query: string;
  variables?: string;
}

const ids = (...names: ('assistantId' | 'threadId' | 'runId' | 'callId')[]) => {
  const shown = { assistantId: 'asst_...', threadId: 'thread_...', runId: 'run_...', callId: 'call_...' };
  return JSON.stringify(Object.fromEntries(names.map((name) => [name, shown[name]])), null, 2);
};

export const GRAPHIQL_TABS: GraphiqlTab[] = [
  {
    query: `# Runway's first run, one tab per step. Run this one (the ▶
# button): an assistant with one function tool, and a thread
# whose message asks the scripted model to call it. Paste
# the ids it answers into the Variables of the next tabs.
#
# A subscription (tabs 3 and 4) ends when you switch
# GraphiQL tabs: open this page a second time, in another
# browser tab, and run the subscription there.
mutation Start {
  createAssistant(input: {
    model: "scripted"
    name: "Weather bot"
    instructions: "Answer briefly."
    tools: [{
      type: FUNCTION
      function: {
        name: "get_weather"
        parameters: { type: "object", properties: { city: { type: "string" } } }
      }
    }]
  }) { id model }
  createThread(input: {
    messages: [{ role: USER, content: "call get_weather {\\"city\\": \\"Paris\\"}" }]
  }) { id }
}
`,
  },
  {
    query: `# A run, step by step: pick the operation to run from the ▶
# button's menu, in order. CreateRun goes QUEUED ->
# IN_PROGRESS -> REQUIRES_ACTION within milliseconds;
# WhatItNeeds shows the tool call (its id is the callId);
# SubmitToolOutputs sends the tool's answer and the run goes
# on to COMPLETED; ReadAnswer shows the answer and usage.
mutation CreateRun($threadId: ID!, $assistantId: ID!) {
  createRun(threadId: $threadId, input: { assistantId: $assistantId, metadata: { demo: "yes" } }) { id status expiresAt }
}

query WhatItNeeds($threadId: ID!, $runId: ID!) {
  run(threadId: $threadId, runId: $runId) {
    status
    requiredAction { submitToolOutputs { toolCalls { id function { name arguments } } } }
  }
}

mutation SubmitToolOutputs($threadId: ID!, $runId: ID!, $callId: ID!) {
  submitToolOutputs(threadId: $threadId, runId: $runId, toolOutputs: [{ toolCallId: $callId, output: "22°C and sunny" }]) { status }
}

query ReadAnswer($threadId: ID!) {
  thread(id: $threadId) { messages(order: ASC) { nodes { role text runId } } }
  runs(threadId: $threadId, first: 5) { nodes { id status usage { promptTokens completionTokens totalTokens } } }
}
`,
    variables: ids('assistantId', 'threadId', 'runId', 'callId'),
  },
  {
    query: `# Every status change of the thread's runs, as it happens.
# Run it in a browser tab of its own (GraphiQL ends a
# subscription when you switch its tabs), then start runs
# from the other browser tab.
subscription WatchRuns($threadId: ID!) {
  threadRunsChanged(threadId: $threadId) { runId version previousStatus status at }
}
`,
    variables: ids('threadId'),
  },
  {
    query: `# An answer being written, token by token: each
# MessageDeltaEvent says where its text goes (index). In a
# browser tab of its own, like tab 3; then run tab 5.
# WatchRun follows one run (its runId) instead of the whole
# thread.
subscription WatchThread($threadId: ID!) {
  threadEvents(threadId: $threadId) {
    __typename
    ... on RunStatusEvent { status }
    ... on MessageEvent { kind message { id status } }
    ... on MessageDeltaEvent { index text }
  }
}

subscription WatchRun($threadId: ID!, $runId: ID!) {
  runEvents(threadId: $threadId, runId: $runId) {
    __typename
    ... on RunStatusEvent { status }
    ... on MessageDeltaEvent { index text }
  }
}
`,
    variables: ids('threadId', 'runId'),
  },
  {
    query: `# More runs. AddPacedMessage asks the model to write one
# token every 50 ms (watch them in tab 4); AddSlowMessage
# makes it work for a minute, long enough to CancelRun while
# it is IN_PROGRESS. After adding a message, StartRun (its
# id is the new runId).
mutation AddPacedMessage($threadId: ID!) {
  createMessage(threadId: $threadId, input: { role: USER, content: "pace 50\\nTell me a story about 🐙 octopuses." }) { id }
}

mutation AddSlowMessage($threadId: ID!) {
  createMessage(threadId: $threadId, input: { role: USER, content: "sleep 60000" }) { id }
}

mutation StartRun($threadId: ID!, $assistantId: ID!) {
  createRun(threadId: $threadId, input: { assistantId: $assistantId }) { id status }
}

mutation CancelRun($threadId: ID!, $runId: ID!) {
  cancelRun(threadId: $threadId, runId: $runId) { status }
}
`,
    variables: ids('assistantId', 'threadId', 'runId'),
  },
];

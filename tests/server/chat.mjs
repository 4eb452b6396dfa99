// fastdllm serve through the official openai client: chat and completions, with and without
// streaming, the usage chunk, the AR baseline by name, and an error as the client sees it.
// Usage: node chat.mjs http://127.0.0.1:PORT/v1   (prints one FAIL line per failure, exits 1)
import OpenAI from "openai";

const baseURL = process.argv[2];
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0, timeout: 60_000 });
let failed = 0;
function check(name, ok, detail = "") {
  if (!ok) {
    console.log(`FAIL: openai client: ${name}${detail ? ": " + detail : ""}`);
    failed = 1;
  }
}
const ask = (content) => [{ role: "user", content }];

// Non-streaming chat.
{
  const r = await client.chat.completions.create({ model: "demo-dllm", messages: ask("What is 12 + 30?") });
  check("chat answer", r.choices[0].message.content === "12 + 30 = 42.", JSON.stringify(r.choices[0]));
  check("chat role", r.choices[0].message.role === "assistant");
  check("chat finish_reason", r.choices[0].finish_reason === "stop", r.choices[0].finish_reason);
  check("chat object", r.object === "chat.completion" && r.id.startsWith("chatcmpl-"), `${r.object} ${r.id}`);
  check("chat usage", r.usage.completion_tokens > 0 && r.usage.total_tokens === r.usage.prompt_tokens + r.usage.completion_tokens,
        JSON.stringify(r.usage));
}

// A system message, and max_completion_tokens.
{
  const r = await client.chat.completions.create({
    model: "demo-dllm",
    messages: [{ role: "system", content: "You are a helpful assistant." }, { role: "user", content: "Spell the word garden." }],
    max_completion_tokens: 64,
  });
  check("system message", r.choices[0].message.content === "g-a-r-d-e-n", JSON.stringify(r.choices[0].message));
}

// Streaming chat with the usage chunk: the deltas make the answer.
{
  const stream = await client.chat.completions.create({
    model: "demo-dllm",
    messages: ask("What is 12 + 30?"),
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = "", role = null, finish = null, usage = null, chunks = 0, afterUsage = 0;
  for await (const chunk of stream) {
    chunks++;
    if (usage) afterUsage++;
    for (const c of chunk.choices) {
      if (c.delta?.role) role = c.delta.role;
      if (c.delta?.content) text += c.delta.content;
      if (c.finish_reason) finish = c.finish_reason;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  check("stream text", text === "12 + 30 = 42.", JSON.stringify(text));
  check("stream role", role === "assistant", role);
  check("stream finish_reason", finish === "stop", finish);
  check("stream usage chunk", usage && usage.completion_tokens > 0 && usage.prompt_tokens > 0, JSON.stringify(usage));
  check("usage chunk is the last", afterUsage === 0 && chunks >= 4, `${afterUsage} chunks after it, ${chunks} in all`);
}

// Streaming without include_usage: no usage chunk.
{
  const stream = await client.chat.completions.create({ model: "demo-dllm", messages: ask("Spell the word river."), stream: true });
  let text = "", usage = false;
  for await (const chunk of stream) {
    for (const c of chunk.choices) text += c.delta?.content ?? "";
    if (chunk.usage) usage = true;
  }
  check("stream without usage", text === "r-i-v-e-r" && !usage, JSON.stringify(text));
}

// Decoding settings as more fields of the request: the client sends them as they are.
{
  const r = await client.chat.completions.create({ model: "demo-dllm", messages: ask("What is 12 + 30?"), threshold: 1, cache: "prefix" });
  check("extra fields: answer", r.choices[0].message.content === "12 + 30 = 42.", JSON.stringify(r.choices[0]));
  check("extra fields: threshold 1 decides one cell per pass", r.timings?.tokens_per_forward <= 1, JSON.stringify(r.timings));
}

// The AR baseline, by name.
{
  const r = await client.chat.completions.create({ model: "demo-ar", messages: ask("Spell the word garden.") });
  check("demo-ar answer", r.choices[0].message.content === "g-a-r-d-e-n" && r.model === "demo-ar", JSON.stringify(r.choices[0]));
  check("demo-ar decoder", r.timings?.decoder === "ar", JSON.stringify(r.timings));
}

// Completions, plain and streamed.
{
  const r = await client.completions.create({ model: "demo-dllm", prompt: "The", max_tokens: 16 });
  check("completion text", typeof r.choices[0].text === "string" && r.choices[0].text.length > 0, JSON.stringify(r.choices[0]));
  check("completion object", r.object === "text_completion");
  const stream = await client.completions.create({ model: "demo-dllm", prompt: "The", max_tokens: 16, stream: true });
  let text = "";
  for await (const chunk of stream) for (const c of chunk.choices) text += c.text;
  check("streamed completion = completion", text === r.choices[0].text, `${JSON.stringify(text)} vs ${JSON.stringify(r.choices[0].text)}`);
}

// Models.
{
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  check("models", ids.includes("demo-dllm") && ids.includes("demo-ar"), JSON.stringify(ids));
}

// Errors reach the client as APIError with the status and message.
try {
  await client.chat.completions.create({ model: "demo-dllm", messages: ask("hi"), temperature: 5 });
  check("bad temperature throws", false);
} catch (e) {
  check("bad temperature: status 400", e instanceof OpenAI.APIError && e.status === 400, `${e.status} ${e.message}`);
  check("bad temperature: message", /temperature/.test(e.message), e.message);
}

console.log(failed ? "openai client: failures" : "openai client: all checks passed");
process.exit(failed);

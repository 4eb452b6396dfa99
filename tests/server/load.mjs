// A bounded load test of fastdllm serve through the official openai client: CLIENTS concurrent
// clients send REQUESTS requests each, a mix of plain answers, streamed answers, streams with the
// decoding steps, answers by the AR baseline and streams aborted after their first piece of text.
// Every request that is not aborted must get its whole, correct answer; nothing may fail.
// Usage: node load.mjs http://127.0.0.1:PORT/v1 [CLIENTS] [REQUESTS] [DEADLINE_S]
// Prints one summary line, one FAIL line per failure (at most 20), exits 1 on any failure.
import OpenAI from "openai";

const [baseURL, clientsArg = "8", requestsArg = "20", deadlineArg = "90"] = process.argv.slice(2);
const CLIENTS = Number(clientsArg), REQUESTS = Number(requestsArg), DEADLINE_S = Number(deadlineArg);

// Questions the demo models answer exactly (both of them, greedy).
const QA = [
  ["What is 12 + 30?", "12 + 30 = 42."],
  ["What is 7 * 8?", "7 * 8 = 56."],
  ["What is 345 - 123?", "345 - 123 = 222."],
  ["Spell the word garden.", "g-a-r-d-e-n"],
  ["Reverse the word river.", "The reverse of river is revir."],
  ["Sort these numbers: 42, 7, 19", "7, 19, 42"],
  ["Compute 25 + 17.", "25 + 17 = 42."],
  ["Spell the word apple.", "a-p-p-l-e"],
];
const KINDS = ["plain", "stream", "abort", "steps", "baseline", "stream"];

const failures = [];
const fail = (msg) => failures.push(msg);
const counts = { plain: 0, stream: 0, abort: 0, steps: 0, baseline: 0, aborted_early: 0 };

async function one(client, c, i) {
  const kind = KINDS[(c + i) % KINDS.length];
  const [q, want] = QA[(c * 3 + i) % QA.length];
  const tag = `client ${c} request ${i} (${kind}, ${JSON.stringify(q)})`;
  const base = { model: kind === "baseline" ? "demo-ar" : "demo-dllm", messages: [{ role: "user", content: q }], max_tokens: 64 };
  counts[kind]++;
  if (kind === "plain" || kind === "baseline") {
    const r = await client.chat.completions.create(base);
    const got = r.choices[0].message.content;
    if (got !== want || r.choices[0].finish_reason !== "stop") fail(`${tag}: got ${JSON.stringify(got)} (${r.choices[0].finish_reason})`);
    const decoder = kind === "baseline" ? "ar" : "diffusion";
    if (r.timings?.decoder !== decoder) fail(`${tag}: decoder ${r.timings?.decoder}, want ${decoder}`);
    return;
  }
  const ac = new AbortController();
  const stream_options = { include_usage: true, ...(kind === "steps" ? { include_steps: true } : {}) };
  const stream = await client.chat.completions.create({ ...base, stream: true, stream_options }, { signal: ac.signal });
  let text = "", finish = null, usage = null, steps = 0;
  try {
    for await (const chunk of stream) {
      if (chunk.step) steps++;
      for (const ch of chunk.choices) {
        text += ch.delta?.content ?? "";
        if (ch.finish_reason) finish = ch.finish_reason;
      }
      if (chunk.usage) usage = chunk.usage;
      if (kind === "abort" && text.length > 0) {
        ac.abort();
        break;
      }
    }
  } catch (e) {
    if (!(kind === "abort" && ac.signal.aborted)) throw e;
  }
  if (kind === "abort") {
    if (!text) counts.aborted_early++;  // the answer ended before any text: nothing to abort
    return;
  }
  if (text !== want || finish !== "stop") fail(`${tag}: streamed ${JSON.stringify(text)} (${finish})`);
  if (!usage || usage.completion_tokens <= 0) fail(`${tag}: no usage chunk`);
  if (kind === "steps" && steps === 0) fail(`${tag}: no step chunks`);
}

async function runClient(c) {
  // Each client its own connection pool, as separate programs would have.
  const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0, timeout: DEADLINE_S * 1000 });
  for (let i = 0; i < REQUESTS; i++) {
    try {
      await one(client, c, i);
    } catch (e) {
      fail(`client ${c} request ${i}: ${e.status ?? ""} ${e.message}`);
    }
  }
}

const timer = setTimeout(() => {
  console.log(`FAIL: load: not done within ${DEADLINE_S} s`);
  process.exit(1);
}, DEADLINE_S * 1000);
const t0 = Date.now();
await Promise.all(Array.from({ length: CLIENTS }, (_, c) => runClient(c)));
clearTimeout(timer);
const seconds = (Date.now() - t0) / 1000;
console.log(`load: ${CLIENTS} clients x ${REQUESTS} requests in ${seconds.toFixed(1)} s: ` +
            `${counts.plain} plain, ${counts.stream} streamed, ${counts.steps} with steps, ${counts.baseline} by the AR baseline, ` +
            `${counts.abort} aborted mid-stream; ${failures.length} failures`);
for (const f of failures.slice(0, 20)) console.log(`FAIL: load: ${f}`);
process.exit(failures.length ? 1 : 0);

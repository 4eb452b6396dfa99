// Time llama.cpp (through node-llama-cpp's prebuilt CPU binaries) on one GGUF file, so that the
// reference figures come from the same machine and run as fastdllm's own (bench/run_all.sh).
// Normally started by bench/llama_cpp_reference.sh, which installs node-llama-cpp into
// bench/.llama_cpp/ and writes the random-weight GGUF files (bench/make_gguf.py).
//
//   node bench/llama_cpp_reference.mjs --model FILE [--shape NAME --dtype NAME] [--threads 2]
//        [--reps 5] [--decode 128] [--prompt 512] [--csv FILE] [--log FILE] [--verbose]
//        [--prefix DIR]   (where node-llama-cpp is installed; default bench/.llama_cpp,
//                          env LLAMA_CPP_PREFIX)
//
// Measures, after one untimed warm-up of each:
//   decode: a 16-token prompt, then --decode tokens generated one per forward pass (greedy; the
//           content is meaningless with random weights). Wall time of the generation loop divided
//           by the number of generated tokens; each pass computes the full logits (lm_head) and
//           samples, as real decoding does.
//   prompt: one batch of --prompt tokens in a single llama_decode (batch size = prompt length).
// Both are the median over --reps repetitions (the CSV also has the best repetition of each). llama.cpp's own perf counters are printed too as
// a cross-check of the JS-side wall clock.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));

function parseArgs(argv) {
    const a = { model: null, shape: "", dtype: "", threads: 2, reps: 5, decode: 128, prompt: 512,
                csv: null, log: null, verbose: false,
                prefix: process.env.LLAMA_CPP_PREFIX || path.join(here, ".llama_cpp") };
    for (let i = 0; i < argv.length; i++) {
        const k = argv[i];
        const next = () => {
            if (i + 1 >= argv.length) throw new Error(`${k} needs a value`);
            return argv[++i];
        };
        switch (k) {
            case "--model": a.model = next(); break;
            case "--shape": a.shape = next(); break;
            case "--dtype": a.dtype = next(); break;
            case "--threads": a.threads = parseInt(next(), 10); break;
            case "--reps": a.reps = parseInt(next(), 10); break;
            case "--decode": a.decode = parseInt(next(), 10); break;
            case "--prompt": a.prompt = parseInt(next(), 10); break;
            case "--csv": a.csv = next(); break;
            case "--log": a.log = next(); break;
            case "--prefix": a.prefix = next(); break;
            case "--verbose": a.verbose = true; break;
            case "-h": case "--help":
                { // the comment block at the top of this file
                    const lines = fs.readFileSync(fileURLToPath(import.meta.url), "utf8").split("\n");
                    const end = lines.findIndex((l) => !l.startsWith("//"));
                    console.log(lines.slice(0, end).map((l) => l.slice(3)).join("\n"));
                }
                process.exit(0);
            default: throw new Error(`unknown argument ${k}`);
        }
    }
    if (!a.model) throw new Error("--model FILE is required");
    for (const k of ["threads", "reps", "decode", "prompt"])
        if (!(a[k] > 0)) throw new Error(`--${k} must be a positive integer`);
    return a;
}

const median = (xs) => {
    const s = [...xs].sort((x, y) => x - y);
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// Deterministic token ids below Qwen2's first special token (151643), so no EOG token is fed.
function tokenIds(n, seed) {
    let x = seed >>> 0;
    const out = [];
    for (let i = 0; i < n; i++) {
        x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
        out.push(256 + (x % 150000));
    }
    return out;
}

// The ggml CPU variant (libggml-cpu-zen4.so, -haswell, ...) that ggml picked for this CPU: read
// from the shared objects mapped into this process, which does not depend on log wording.
function loadedCpuVariant() {
    try {
        const maps = fs.readFileSync("/proc/self/maps", "utf8");
        const m = maps.match(/libggml-cpu-([A-Za-z0-9_]+)\.so/);
        return m ? m[1] : "unknown";
    } catch {
        return "unknown";
    }
}

async function main() {
    const args = parseArgs(process.argv.slice(2));
    const pkgDir = path.join(args.prefix, "node_modules", "node-llama-cpp");
    if (!fs.existsSync(path.join(pkgDir, "package.json")))
        throw new Error(`node-llama-cpp is not installed in ${args.prefix}; run bench/llama_cpp_reference.sh`);
    const pkgVersion = JSON.parse(fs.readFileSync(path.join(pkgDir, "package.json"), "utf8")).version;
    // The package lives in bench/.llama_cpp/, not in a node_modules above this script, so it is
    // imported by path.
    const { getLlama, LlamaLogLevel } = await import(pathToFileURL(path.join(pkgDir, "dist", "index.js")).href);

    // Keep every llama.cpp log line (to --log and for the checks below); show the ones that say
    // what was loaded.
    const logLines = [];
    const shown = /^load_backend|^print_info: +(arch|file type|file size|n_embd|n_layer|n_head|n_head_kv|n_ff|n_vocab|model params) |^load_tensors: +CPU model buffer|^llama_context: +(n_ctx|n_batch|n_ubatch) |Flash Attention (enabled|disabled)|error|failed/i;
    const logger = (level, message) => {
        for (const line of String(message).split("\n")) {
            if (!/[^.\s]/.test(line)) continue; // blank lines and the load progress dots
            logLines.push(line);
            if (args.verbose || shown.test(line)) console.log(`  [llama.cpp] ${line}`);
        }
    };

    // gpu: false and build: "never": use the prebuilt CPU binaries only; never download sources,
    // never compile. Debug log level so llama.cpp's load report and perf counters come through.
    const llama = await getLlama({
        gpu: false, build: "never", usePrebuiltBinaries: true, skipDownload: true,
        progressLogs: false, maxThreads: args.threads,
        logLevel: LlamaLogLevel.debug, logger,
    });
    const variant = loadedCpuVariant();
    const release = llama.llamaCppRelease ? `${llama.llamaCppRelease.repo}@${llama.llamaCppRelease.release}` : "?";
    console.log(`node-llama-cpp ${pkgVersion}, llama.cpp ${release}, ${llama.buildType} binary, gpu=${llama.gpu}, ` +
                `ggml CPU backend variant: ${variant}`);
    if (args.verbose) console.log(`system info: ${llama.systemInfo}`);

    const fileGB = fs.statSync(args.model).size / 1e9;
    const t0 = performance.now();
    // useMmap: false reads the weights into anonymous memory: an mmapped model that sits idle is
    // paged out on this VM and the first passes would then time disk reads.
    const model = await llama.loadModel({ modelPath: args.model, gpuLayers: 0, useMmap: false });
    console.log(`loaded ${args.model} (${fileGB.toFixed(3)} GB) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    const decodePrompt = 16;
    const contextSize = Math.max(args.prompt, decodePrompt + args.decode) + 64;
    const context = await model.createContext({
        contextSize, batchSize: args.prompt, sequences: 1, threads: args.threads,
        performanceTracking: true,
    });
    const seq = context.getSequence();
    // flashAttention "auto" is resolved inside llama.cpp; its log says what it chose.
    const fa = logLines.some((l) => /Flash Attention enabled/.test(l)) ? "on"
        : logLines.some((l) => /Flash Attention disabled/.test(l)) ? "off" : String(context.flashAttention);
    console.log(`context: ${context.contextSize} tokens, batch ${context.batchSize}, threads ${context.currentThreads}, ` +
                `flash attention ${fa}`);

    // llama.cpp's own perf counters, as a cross-check of the wall clock measured here.
    // printTimings prints the counts since the previous print and then resets them. llama.cpp
    // counts a llama_decode of one token as "eval" and of more tokens as "prompt eval"; with no
    // runs it prints 0 ms / 1 run.
    async function perfSinceLastPrint() {
        const mark = logLines.length;
        await context.printTimings();
        const d = { pMs: 0, pN: 0, eMs: 0, eN: 0 };
        for (const l of logLines.slice(mark)) {
            const m = l.match(/(prompt eval|eval) time\s*=\s*([\d.]+) ms\s*\/\s*(\d+)/);
            if (!m || +m[2] === 0) continue;
            if (m[1] === "prompt eval") { d.pMs = +m[2]; d.pN = +m[3]; } else { d.eMs = +m[2]; d.eN = +m[3]; }
        }
        return d;
    }
    const perfText = (ms, n, unit) => n > 0 ? `${n} ${unit} in ${ms.toFixed(0)} ms = ${(1000 * n / ms).toFixed(2)} tok/s` : `no ${unit}`;

    // ---- decode: one token per forward pass ----
    const dPrompt = tokenIds(decodePrompt, 1);
    async function decodeOnce() {
        await seq.clearHistory();
        await seq.evaluateWithoutGeneratingNewTokens(dPrompt.slice(0, -1));
        let n = 0;
        const start = performance.now();
        // Each iteration evaluates the previous token (one pass, logits of that token) and samples
        // the next greedily. yieldEogToken: random weights may well pick an end-of-text token;
        // it must not end the loop.
        for await (const _tok of seq.evaluate(dPrompt.slice(-1), { temperature: 0, yieldEogToken: true })) {
            if (++n >= args.decode) break;
        }
        return (performance.now() - start) / n;
    }
    await decodeOnce(); // warm-up: first-touch of buffers, thread start
    await perfSinceLastPrint();
    const decodeMs = [];
    for (let r = 0; r < args.reps; r++) decodeMs.push(await decodeOnce());
    const decodePerf = await perfSinceLastPrint();
    const decodeTokS = 1000 / median(decodeMs);
    console.log(`decode: ${decodeTokS.toFixed(2)} tok/s (median of ${args.reps}; ms/token per rep: ` +
                `${decodeMs.map((x) => x.toFixed(1)).join(" ")})`);
    console.log(`  llama.cpp's counters over the timed reps: single-token evals: ${perfText(decodePerf.eMs, decodePerf.eN, "runs")}` +
                `; short-prompt batches: ${perfText(decodePerf.pMs, decodePerf.pN, "tokens")}`);

    // ---- prompt: one batch of args.prompt tokens ----
    const pTokens = tokenIds(args.prompt, 2);
    async function promptOnce() {
        await seq.clearHistory();
        const start = performance.now();
        await seq.evaluateWithoutGeneratingNewTokens(pTokens);
        return performance.now() - start;
    }
    await promptOnce();
    await perfSinceLastPrint();
    const promptMs = [];
    for (let r = 0; r < args.reps; r++) promptMs.push(await promptOnce());
    const promptPerf = await perfSinceLastPrint();
    const promptTokS = args.prompt / (median(promptMs) / 1000);
    console.log(`prompt: ${promptTokS.toFixed(1)} tok/s (${args.prompt} tokens in one batch, median of ${args.reps}; ` +
                `ms per rep: ${promptMs.map((x) => x.toFixed(0)).join(" ")})`);
    console.log(`  llama.cpp's counters over the timed reps: ${perfText(promptPerf.pMs, promptPerf.pN, "prompt tokens")}`);

    if (args.csv) {
        const header = "shape,dtype,file_gb,threads,decode_tok_s,prompt_tok_s,decode_tokens,prompt_tokens,reps," +
                       "node_llama_cpp,llama_cpp,cpu_variant,flash_attn,decode_best_tok_s,prompt_best_tok_s\n";
        const row = [args.shape || path.basename(args.model), args.dtype, fileGB.toFixed(3), args.threads,
                     decodeTokS.toFixed(2), promptTokS.toFixed(1), args.decode, args.prompt, args.reps,
                     pkgVersion, release, variant, fa, (1000 / Math.min(...decodeMs)).toFixed(2),
                     (args.prompt / (Math.min(...promptMs) / 1000)).toFixed(1)].join(",") + "\n";
        if (!fs.existsSync(args.csv) || fs.statSync(args.csv).size === 0) fs.writeFileSync(args.csv, header);
        fs.appendFileSync(args.csv, row);
    }
    if (args.log) fs.writeFileSync(args.log, logLines.join("\n") + "\n");

    await context.dispose();
    await model.dispose();
    await llama.dispose();
}

main().catch((e) => {
    console.error(`llama_cpp_reference: ${e && e.message ? e.message : e}`);
    process.exit(1);
});

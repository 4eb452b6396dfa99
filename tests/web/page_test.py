#!/usr/bin/env python3
"""Drives the page of `fastdllm serve` in headless Chromium and checks what it shows.

Chromium is controlled over the DevTools protocol on a pipe (--remote-debugging-pipe: commands
on its fd 3, replies on fd 4, each a JSON text ended by a NUL byte), so nothing beyond Python's
standard library is needed. The page streams its answers, so the checks wait for the page's own
status (body[data-status]) instead of a load event or a virtual-time budget.

usage: page_test.py --chrome PATH --url URL [--keyed-url URL --key KEY] [--screenshot FILE]
Prints one FAIL line per failed check; exits 1 when any failed.
"""
import argparse, base64, fcntl, json, os, re, select, shutil, subprocess, sys, tempfile, time

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--no-proxy-server", "--hide-scrollbars", "--mute-audio",
         "--remote-debugging-pipe"]
GARDEN = "Spell the word garden."
ANSWER = "g-a-r-d-e-n"


class Browser:
    def __init__(self, chrome):
        self.profile = tempfile.mkdtemp(prefix="fastdllm-web-")
        to_child_r, self.to_child = os.pipe()
        self.from_child, from_child_w = os.pipe()
        # The child's ends become its fd 3 and 4; first moved above 9, so that they are neither.
        to_child_r, from_child_w = (self._high(fd) for fd in (to_child_r, from_child_w))
        cmd = 'exec "$0" "$@" 3<&%d 4>&%d %d<&- %d>&-' % (to_child_r, from_child_w, to_child_r, from_child_w)
        self.log = open(os.path.join(self.profile, "chrome.log"), "w+")
        self.proc = subprocess.Popen(["bash", "-c", cmd, chrome, *FLAGS, "--user-data-dir=" + self.profile, "about:blank"],
                                     pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log)
        os.close(to_child_r)
        os.close(from_child_w)
        self.buf = b""
        self.next_id = 0
        self.session = None
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride", width=1280, height=800, deviceScaleFactor=1, mobile=False)
        self.call("Page.enable")

    @staticmethod
    def _high(fd):
        high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
        os.close(fd)
        return high

    def call(self, method, timeout=30, **params):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if self.session and not method.startswith(("Target.", "Browser.")):
            msg["sessionId"] = self.session
        os.write(self.to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.time() + timeout
        while True:
            while b"\0" in self.buf:
                raw, self.buf = self.buf.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self.next_id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error'].get('message')}")
                    return reply.get("result", {})
            left = deadline - time.time()
            if left <= 0 or not select.select([self.from_child], [], [], left)[0]:
                raise TimeoutError(f"{method}: no reply from Chromium in {timeout} s")
            chunk = os.read(self.from_child, 1 << 20)
            if not chunk:
                raise RuntimeError(f"{method}: Chromium exited: {self.tail()}")
            self.buf += chunk

    def tail(self):
        self.log.flush(); self.log.seek(0)
        lines = [l for l in self.log.read().splitlines() if l.strip() and "dbus" not in l and "unexpected operator" not in l]
        return " | ".join(lines[-3:])

    def js(self, expr, timeout=30):
        r = self.call("Runtime.evaluate", timeout=timeout, expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"script error: {r['exceptionDetails'].get('exception', {}).get('description') or r['exceptionDetails']}")
        return r["result"].get("value")

    def open(self, url):
        self.call("Page.navigate", url=url)
        self.wait("document.readyState === 'complete' && document.body.dataset.status !== 'loading'", 30, "the page to load")

    def wait(self, cond, timeout, what):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.js(f"!!({cond})"):
                return True
            time.sleep(0.05)
        raise TimeoutError(f"timed out after {timeout} s waiting for {what}")

    def wait_answer(self, timeout=90):
        self.wait("['done', 'error', 'stopped'].includes(document.body.dataset.status)", timeout, "the answer to finish")

    def key(self, key, shift=False):
        mods = 8 if shift else 0
        for t in ("keyDown", "keyUp"):
            ev = dict(type=t, key=key, code=key, modifiers=mods)
            if key == "Enter":
                ev.update(windowsVirtualKeyCode=13, nativeVirtualKeyCode=13)
                if t == "keyDown": ev["text"] = "\r"
            self.call("Input.dispatchKeyEvent", **ev)

    def type(self, selector, text):
        self.js(f"document.querySelector({json.dumps(selector)}).focus()")
        self.call("Input.insertText", text=text)

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill(); self.proc.wait()
        os.close(self.to_child); os.close(self.from_child)
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


# What the page shows, read through its stable ids and classes.
FACTS = r"""(() => {
  const q = (s) => document.querySelector(s);
  const cells = (id) => [...document.querySelectorAll('#' + id + ' .cell')].map((c) => ({
    state: c.dataset.state, step: c.dataset.step === undefined ? null : c.dataset.step,
    text: c.textContent, latest: c.classList.contains('latest'), active: c.classList.contains('active') }));
  const stats = (id) => Object.fromEntries([...document.querySelectorAll('#' + id + ' .stat')].map((s) => [s.dataset.key, s.textContent]));
  return {
    status: document.body.dataset.status, title: document.title,
    messages: [...document.querySelectorAll('#transcript .msg')].map((m) => ({
      kind: ['user', 'assistant', 'error', 'meta'].find((k) => m.classList.contains(k)) || m.className,
      lane: m.dataset.lane || null, status: m.dataset.status || null,
      text: (m.querySelector('.text') || {}).textContent || '' })),
    markup: document.querySelectorAll('#transcript img, #transcript script, #transcript b').length,
    cells: cells('blockview'), cellsAr: cells('blockview-ar'),
    blockTitle: q('#blocktitle').textContent, blockTitleAr: q('#blocktitle-ar').textContent,
    stats: stats('stats'), statsAr: stats('stats-ar'), statsText: q('#stats').textContent,
    speedup: q('#speedup').textContent, arPanelHidden: q('#panel-ar').hidden,
    modelInfo: q('#model-info').textContent, conversation: state.messages.length,
    sendDisabled: q('#send').disabled, stopDisabled: q('#stop').disabled, input: q('#input').value,
  };
})()"""

failures = []


def need(cond, what):
    if not cond:
        failures.append(what)
    return cond


def check_block(name, cells, title, ar):
    need(len(cells) == 32, f"{name}: {len(cells)} cells, want 32")
    decided = [c for c in cells if c["state"] == "decided"]
    steps = [c["step"] for c in decided]
    need(all(s is not None and s.isdigit() for s in steps), f"{name}: a decided cell has no data-step: {steps}")
    steps = [int(s) for s in steps if s and s.isdigit()]
    need(len(set(steps)) > 1, f"{name}: the decided cells come from {len(set(steps))} step(s), want more than one")
    need(any(c["latest"] for c in decided), f"{name}: no cell of the latest step is marked")
    read = "".join(c["text"] for c in decided)
    need(read.startswith(ANSWER), f"{name}: the decided cells read {read!r}")
    states = {c["state"] for c in cells}
    if ar:
        need(len(set(steps)) == len(steps), f"{name}: AR cells should each come from their own pass: {steps}")
        need(states <= {"decided", "empty"}, f"{name}: cell states {sorted(states)} in the AR window")
        pat = r"^AR · tokens 0–31 · step \d+: (prefill|decode) pass, 1 token"
    else:
        need("prompt" in states, f"{name}: no prompt cells at the head of the first block")
        need(len(set(steps)) < len(steps), f"{name}: no pass decided more than one cell: {steps}")
        need(not any(c["active"] for c in cells), f"{name}: a sub-block is still marked as being decoded")
        pat = r"^block 0 · step \d+: (block|subblock|commit) pass, \d+ tokens?( \(p≥[0-9.]+\))? · done$"
    need(re.match(pat, title), f"{name}: the block title {title!r} does not match {pat!r}")


def check_stats(name, stats):
    for key in ("tokens", "tokens_per_second", "tokens_per_forward", "nfe", "prefill_ms", "cached", "request_tokens_per_second"):
        need(key in stats, f"{name}: no {key} figure: {stats}")
    m = re.match(r"^(\d+\.\d) tok/s$", stats.get("tokens_per_second", ""))
    need(m and float(m.group(1)) > 0, f"{name}: the tok/s figure reads {stats.get('tokens_per_second')!r}")
    need(re.match(r"^\d+ tokens?$", stats.get("tokens", "")), f"{name}: the token count reads {stats.get('tokens')!r}")
    need(re.match(r"^\d+ forward passes", stats.get("nfe", "")), f"{name}: NFE reads {stats.get('nfe')!r}")
    need(re.match(r"^\d+\.\d+ tok/forward$", stats.get("tokens_per_forward", "")), f"{name}: tok/forward reads {stats.get('tokens_per_forward')!r}")


def answers(f):
    return [m for m in f["messages"] if m["kind"] == "assistant"]


def scenario(name, fn, *args):
    before = len(failures)
    try:
        fn(*args)
    except Exception as e:  # a timeout or a script error is a failed check, and the next scenario still runs
        failures.append(f"{e}")
    for f in failures[before:]:
        print(f"FAIL: {name}: {f}")
    print(f"{name}: {'ok' if len(failures) == before else 'FAILED'}")


def diffusion(b, url):
    b.open(url + "?prompt=" + GARDEN.replace(" ", "%20") + "&send=1")
    b.wait_answer()
    f = b.js(FACTS)
    need(f["status"] == "done", f"status {f['status']!r}, want done")
    need([a["text"] for a in answers(f)] == [ANSWER], f"the answers are {[a['text'] for a in answers(f)]}")
    need(f["arPanelHidden"] and f["speedup"] == "", "the AR panel or a speedup line outside compare mode")
    check_block("#blockview", f["cells"], f["blockTitle"], ar=False)
    check_stats("#stats", f["stats"])
    need(f["conversation"] == 2 and f["sendDisabled"] is False and f["stopDisabled"] is True,
         f"after the answer: {f['conversation']} messages kept, send disabled {f['sendDisabled']}, stop disabled {f['stopDisabled']}")

    # The keyboard: Shift+Enter is a new line, Enter sends; the second turn keeps both exchanges.
    b.type("#input", GARDEN)
    b.key("Enter", shift=True)
    f = b.js(FACTS)
    need(f["input"] == GARDEN + "\n" and f["status"] == "done", f"Shift+Enter: input {f['input']!r}, status {f['status']!r}")
    b.js(f"document.querySelector('#input').value = {json.dumps(GARDEN)}")
    # Record what the page sends: the demo model's history_turns is 0, so the question alone.
    b.js("window.sentBodies = []; window.realFetch = window.realFetch || window.fetch;"
         "window.fetch = (u, o) => { if (o && o.body) window.sentBodies.push(JSON.parse(o.body)); return window.realFetch(u, o); }; 0")
    b.key("Enter")
    b.wait_answer()
    f = b.js(FACTS)
    need([a["text"] for a in answers(f)] == [ANSWER, ANSWER], f"after Enter the answers are {[a['text'] for a in answers(f)]}")
    need(f["conversation"] == 4 and f["input"] == "", f"after two turns: {f['conversation']} messages kept, input {f['input']!r}")
    sent = b.js("window.sentBodies.map((x) => x.messages)")
    need(sent == [[{"role": "user", "content": GARDEN}]],
         f"the second turn sent {sent}, want the question alone (history_turns 0)")

    # Clear forgets the conversation and empties the views.
    b.js("document.querySelector('#clear').click()")
    f = b.js(FACTS)
    need(f["conversation"] == 0 and not answers(f) and not f["cells"] and f["status"] == "ready",
         f"after Clear: {f['conversation']} messages kept, {len(answers(f))} answers, {len(f['cells'])} cells, status {f['status']!r}")


def compare(b, url, shot):
    b.open(url + "?prompt=" + GARDEN.replace(" ", "%20") + "&send=1&mode=compare")
    b.wait_answer()
    f = b.js(FACTS)
    need(f["status"] == "done", f"status {f['status']!r}, want done")
    lanes = [(a["lane"], a["text"]) for a in answers(f)]
    need(lanes == [("ar", ANSWER), ("main", ANSWER)], f"the answers are {lanes}, want the AR baseline's, then the dLLM's")
    need(not f["arPanelHidden"], "the AR panel is hidden")
    check_block("#blockview-ar", f["cellsAr"], f["blockTitleAr"], ar=True)
    check_stats("#stats-ar", f["statsAr"])
    check_block("#blockview", f["cells"], f["blockTitle"], ar=False)
    check_stats("#stats", f["stats"])
    pat = r"^speedup \d+\.\d\dx: diffusion \d+\.\d tok/s vs AR \d+\.\d tok/s$"
    need(re.match(pat, f["speedup"]), f"the speedup line {f['speedup']!r} does not match {pat!r}")
    need(f["conversation"] == 2, f"compare kept {f['conversation']} messages, want 2 (the prompt and the dLLM's answer)")
    if shot:
        b.screenshot(shot)


def escaping(b, url):
    typed = '<img src=x onerror="document.title=1"><script>document.title=2</script> &amp; <b>bold</b>'
    b.open(url)
    b.type("#input", typed)
    b.key("Enter")
    b.wait_answer()
    f = b.js(FACTS)
    users = [m["text"] for m in f["messages"] if m["kind"] == "user"]
    need(users == [typed], f"the user message reads {users}, want the typed text")
    need(f["markup"] == 0 and f["title"] == "fastdllm", f"typed markup became elements ({f['markup']}; title {f['title']!r})")


def press_at_first_pass(b, button):
    """Sends GARDEN and clicks `button` as soon as the first decided cell is drawn."""
    b.js("""{ const view = document.querySelector('#blockview');
      const obs = new MutationObserver(() => {
        if (view.querySelector('.cell[data-state=decided]')) { obs.disconnect(); document.querySelector(%s).click(); }
      });
      obs.observe(view, { childList: true });
      document.querySelector('#input').value = %s;
      submitInput(); }""" % (json.dumps(button), json.dumps(GARDEN)))


def stop(b, url):
    b.open(url)
    press_at_first_pass(b, "#stop")
    b.wait_answer()
    f = b.js(FACTS)
    need(f["status"] == "stopped", f"status {f['status']!r} after Stop, want stopped")
    got = answers(f)
    need([a["status"] for a in got] == ["stopped"] and ANSWER.startswith(got[0]["text"]),
         f"the stopped answer: {[(a['status'], a['text']) for a in got]}")
    need(f["blockTitle"].endswith(" · stopped") and f["stats"] and "stopped" in f["statsText"],
         f"the block view after Stop: {f['blockTitle']!r}, {f['statsText']!r}")
    need(f["sendDisabled"] is False and f["stopDisabled"] is True, "the buttons did not come back after Stop")
    b.type("#input", GARDEN)
    b.key("Enter")
    b.wait_answer()
    f = b.js(FACTS)
    need(f["status"] == "done" and answers(f)[-1]["text"] == ANSWER, f"after Stop the next answer is {answers(f)[-1]['text']!r} ({f['status']})")

    # Clear while an answer is decoding: the answer is dropped, the page is ready for the next one.
    press_at_first_pass(b, "#clear")
    time.sleep(0.3)
    f = b.js(FACTS)
    need(f["status"] == "ready" and not f["messages"] and f["conversation"] == 0 and not f["cells"],
         f"after Clear while decoding: status {f['status']!r}, {len(f['messages'])} messages shown, "
         f"{f['conversation']} kept, {len(f['cells'])} cells")
    b.type("#input", GARDEN)
    b.key("Enter")
    b.wait_answer()
    f = b.js(FACTS)
    need(f["status"] == "done" and [a["text"] for a in answers(f)] == [ANSWER] and f["conversation"] == 2,
         f"after Clear the next answer: {f['status']}, {[a['text'] for a in answers(f)]}, {f['conversation']} kept")


def keyed(b, url, key):
    b.open(url)
    f = b.js(FACTS)
    need("401" in f["modelInfo"] and "API key" in f["modelInfo"], f"without the key the page says {f['modelInfo']!r}")
    b.type("#apikey", key)
    b.js("document.querySelector('#apikey').dispatchEvent(new Event('change'))")
    b.wait("!document.querySelector('#model-info').textContent.includes('401')", 10, "the model list with the key")
    need(b.js("localStorage.getItem('fastdllm.apiKey')") == key, "the key is not kept in localStorage")
    b.type("#input", GARDEN)
    b.key("Enter")
    b.wait_answer()
    f = b.js(FACTS)
    need(f["status"] == "done" and [a["text"] for a in answers(f)] == [ANSWER], f"with the key: {f['status']}, answers {[a['text'] for a in answers(f)]}")
    b.js("localStorage.removeItem('fastdllm.apiKey')")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chrome", required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--keyed-url")
    ap.add_argument("--key")
    ap.add_argument("--screenshot")
    a = ap.parse_args()
    try:
        b = Browser(a.chrome)
    except Exception as e:
        print(f"FAIL: Chromium did not start: {e}")
        return 1
    try:
        scenario("diffusion", diffusion, b, a.url)
        scenario("compare", compare, b, a.url, a.screenshot)
        scenario("escaping", escaping, b, a.url)
        scenario("stop", stop, b, a.url)
        if a.keyed_url:
            scenario("api key", keyed, b, a.keyed_url, a.key)
    finally:
        tail = b.tail()
        b.close()
    if failures:
        print("chromium's log:", tail)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

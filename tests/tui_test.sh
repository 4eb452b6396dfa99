#!/usr/bin/env bash
# End-to-end test of the chat TUI: runs the real binary in a private tmux server, types prompts
# with send-keys and reads the screen with capture-pane.
#   bash tests/tui_test.sh <path-to-fastdllm> <source-dir>
# Checks: masked cells appear in the block view and then fill in, the answer lands in the
# transcript, the status bar shows a measured tokens/s, Esc cancels an answer, Left replays the
# last answer, the layout survives a resize to 80x24, /quit restores the terminal and saves the
# conversation, --resume brings it back, and Ctrl-Z stops the app until SIGCONT.
set -u

BIN=${1:?usage: tui_test.sh <fastdllm binary> <source dir>}
SRC=${2:?usage: tui_test.sh <fastdllm binary> <source dir>}
MODEL="$SRC/tests/fixtures/tiny/model"

fail() {
    echo "FAIL: $*" >&2
    if [ -n "${SOCK:-}" ] && tmux -L "$SOCK" has-session 2>/dev/null; then
        echo "---- screen at the failure ----" >&2
        tmux -L "$SOCK" capture-pane -p -t tui >&2 || true
        echo "-------------------------------" >&2
    fi
    exit 1
}

command -v tmux >/dev/null || fail "tmux is not installed (apt-get install tmux)"
[ -x "$BIN" ] || fail "no fastdllm binary at $BIN (build it first)"
[ -f "$MODEL/config.json" ] || fail "the tiny fixture model is missing at $MODEL"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/fastdllm-tui.XXXXXX")
SOCK="fdl-tui-$$-$RANDOM"
cleanup() {
    tmux -L "$SOCK" kill-server >/dev/null 2>&1 || true
    sleep 0.3  # the app saves its session when the server hangs up on it
    rm -rf "$TMP" 2>/dev/null || { sleep 1; rm -rf "$TMP"; }
}
trap cleanup EXIT

TERMINAL=tmux-256color
infocmp "$TERMINAL" >/dev/null 2>&1 || TERMINAL=screen-256color
printf 'set -g default-terminal %s\nset -g history-limit 100\n' "$TERMINAL" >"$TMP/tmux.conf"

screen() { tmux -L "$SOCK" capture-pane -p -t tui; }

# wait_for REGEX SECONDS WHAT: polls the screen until REGEX matches.
wait_for() {
    local re=$1 secs=$2 what=$3 i
    for ((i = 0; i < secs * 10; i++)); do
        if screen | grep -Eq -- "$re"; then return 0; fi
        sleep 0.1
    done
    fail "timed out after ${secs}s waiting for $what (/$re/)"
}

start_app() {
    tmux -L "$SOCK" -f "$TMP/tmux.conf" new-session -d -s tui -x 100 -y 30 \
        "env HOME='$TMP/home' XDG_DATA_HOME='$TMP/data' LANG=C.UTF-8 LC_ALL=C.UTF-8 NO_COLOR= \
         '$BIN' chat -m '$MODEL' -n 64 $*; echo \"APP EXITED rc=\$?\"; sleep 600" ||
        fail "could not start tmux"
}

mkdir -p "$TMP/home" "$TMP/data"

# ---- 1. start: the empty block view and the status bar ----
start_app
wait_for 'block view' 30 "the TUI to start"
wait_for '░' 5 "masked cells in the idle block view"
wait_for 'ready' 5 "the status bar"

# ---- 2. a prompt in slow motion: masked cells appear, then fill in ----
tmux -L "$SOCK" send-keys -t tui "/delay 60" Enter
wait_for 'slow motion: 60 ms' 5 "the /delay confirmation"
tmux -L "$SOCK" send-keys -t tui "hello there" Enter
wait_for 'decoding' 10 "decoding to start"

# Sample the block view while decoding: (block index, masked cells) pairs.
declare -a blocks=() masked=()
for ((i = 0; i < 300; i++)); do
    s=$(screen)
    b=$(grep -oE 'block [0-9]+ @' <<<"$s" | head -1 | grep -oE '[0-9]+' | head -1)
    if [ -n "$b" ]; then
        m=$(grep -E '^│.*│$' <<<"$s" | grep -oE '[░▒]+' | wc -l)
        blocks+=("$b")
        masked+=("$m")
    fi
    grep -q 'decoding…' <<<"$s" || break
    sleep 0.1
done
[ ${#blocks[@]} -ge 2 ] || fail "saw the block view fewer than twice while decoding"
filled=0
saw_masked=0
for ((i = 0; i < ${#blocks[@]}; i++)); do
    [ "${masked[$i]}" -gt 0 ] && saw_masked=1
    for ((j = i + 1; j < ${#blocks[@]}; j++)); do
        if [ "${blocks[$i]}" = "${blocks[$j]}" ] && [ "${masked[$j]}" -lt "${masked[$i]}" ]; then filled=1; fi
    done
done
[ $saw_masked = 1 ] || fail "no masked cells (░/▒) in the block view while decoding"
[ $filled = 1 ] || fail "masked cells never filled in within a block (samples: blocks ${blocks[*]}; masked ${masked[*]})"
echo "ok: masked cells appeared and filled in (${#blocks[@]} samples, blocks ${blocks[0]}..${blocks[-1]})"

# ---- 3. the answer lands in the transcript; the status bar shows measured speed ----
wait_for '[0-9]+ tokens · [0-9.]+ tok/s · [0-9.]+ tok/forward · NFE [0-9]+' 60 "the answer's statistics line"
s=$(screen)
grep -q '^you' <<<"$s" || fail "the user turn is not in the transcript"
grep -q '^│ hello there' <<<"$s" || fail "the prompt text is not in the transcript"
grep -Eq '^model · diffusion' <<<"$s" || fail "the assistant turn is not in the transcript"
answer=$(grep -A1 -E '^model · diffusion' <<<"$s" | tail -1)
[[ "$answer" =~ ^│\ .+ ]] || fail "the assistant turn has no text: '$answer'"
tps=$(grep -oE '[0-9]+ tokens · [0-9.]+ tok/s · [0-9.]+ tok/fwd' <<<"$s" | head -1 | grep -oE '[0-9.]+ tok/s' | grep -oE '^[0-9.]+')
[ -n "$tps" ] || fail "the status bar shows no tokens/s"
awk -v t="$tps" 'BEGIN { exit !(t > 0) }' || fail "the status bar shows $tps tok/s (not measured?)"
grep -Eq 'prefill [0-9.]+ ms' <<<"$s" || fail "the status bar shows no prefill time"
grep -Eq 'prefix cache [0-9]+' <<<"$s" || fail "the status bar shows no prefix cache length"
grep -Eq 'DualCache [0-9]+/[0-9]+' <<<"$s" || fail "the status bar shows no DualCache reuse"
echo "ok: answer in the transcript; status bar: $tps tok/s"
echo "---- screen after the first answer ----"
screen
echo "---------------------------------------"

# ---- 4. Left replays the last answer ----
tmux -L "$SOCK" send-keys -t tui Left
wait_for 'replay [0-9]+/[0-9]+' 5 "the replay after Left"
tmux -L "$SOCK" send-keys -t tui Home
wait_for 'replay 1/' 5 "the replay at its first event"
tmux -L "$SOCK" send-keys -t tui Escape
sleep 0.3
screen | grep -Eq 'replay [0-9]+/' && fail "Esc did not leave the replay"
echo "ok: replay"

# ---- 5. Esc cancels an answer without leaving ----
tmux -L "$SOCK" send-keys -t tui "/delay 200" Enter
wait_for 'slow motion: 200 ms' 5 "the /delay confirmation"
tmux -L "$SOCK" send-keys -t tui "another question" Enter
wait_for 'decoding…' 10 "the second answer to start"
sleep 0.5
tmux -L "$SOCK" send-keys -t tui Escape
wait_for 'cancelled' 10 "the cancelled answer"
wait_for 'Enter send' 10 "the idle hint after cancelling"
echo "ok: Esc cancelled the answer"

# ---- 6. a bad setting shows the validation message ----
tmux -L "$SOCK" send-keys -t tui "/sub 5" Enter
wait_for 'must divide the block size' 5 "the /sub validation error"
echo "ok: /sub 5 rejected"

# ---- 7. resize to 80x24 ----
tmux -L "$SOCK" resize-window -t tui -x 80 -y 24
sleep 0.5
tmux -L "$SOCK" send-keys -t tui C-l
sleep 0.3
s=$(screen)
grep -Eq '^┌─ ' <<<"$s" || fail "no block view box after resizing to 80x24"
grep -Eq '^└─' <<<"$s" || fail "the block view box is cut after resizing to 80x24"
[ "$(wc -l <<<"$s")" -le 24 ] || fail "more than 24 lines after resizing"
while IFS= read -r line; do
    [ "$(printf '%s' "$line" | LC_ALL=C.UTF-8 wc -m)" -le 80 ] || fail "a line is wider than 80 columns after resizing: '$line'"
done <<<"$s"
echo "ok: 80x24 layout"

# ---- 8. /quit restores the terminal and saves the conversation ----
tmux -L "$SOCK" send-keys -t tui "/quit" Enter
wait_for 'APP EXITED rc=0' 10 "the app to quit cleanly"
s=$(screen)
grep -q 'block view\|DualCache' <<<"$s" && fail "the TUI is still on the screen after /quit (terminal not restored)"
SESSION="$TMP/data/fastdllm/session.json"
[ -f "$SESSION" ] || fail "no session saved at $SESSION"
grep -q '"hello there"' "$SESSION" || fail "the saved session lacks the prompt"
[ -f "$TMP/data/fastdllm/history" ] || fail "no history file"
grep -q 'hello there' "$TMP/data/fastdllm/history" || fail "the prompt is not in the history file"
echo "ok: quit, session and history saved"

# ---- 9. --resume shows the conversation again; SIGTERM leaves cleanly ----
tmux -L "$SOCK" kill-session -t tui
start_app --resume
wait_for 'resumed [0-9]+ messages' 30 "the resumed conversation"
wait_for '^│ hello there' 5 "the resumed prompt in the transcript"
pid=$(pgrep -n -P "$(tmux -L "$SOCK" display-message -p -t tui '#{pane_pid}')" || true)
[ -n "$pid" ] || fail "cannot find the app's process"
# A SIGWINCH storm while an answer decodes: the app keeps running and still answers.
tmux -L "$SOCK" send-keys -t tui "storm test" Enter
for i in $(seq 1 300); do kill -WINCH "$pid" 2>/dev/null || fail "the app died during a SIGWINCH storm"; done
for sz in 100x30 81x25 120x40 80x24 100x30; do tmux -L "$SOCK" resize-window -t tui -x ${sz%x*} -y ${sz#*x}; done
kill -0 "$pid" 2>/dev/null || fail "the app died during a SIGWINCH storm"
wait_for '^│ storm test' 10 "the prompt sent during the SIGWINCH storm"
echo "ok: SIGWINCH storm"
kill -TERM "$pid"
wait_for 'APP EXITED rc=143' 10 "the app to leave on SIGTERM"
echo "ok: --resume and SIGTERM"

# ---- 10. Ctrl-Z (a key under raw mode) stops the app as a shell expects; `fg` brings it back ----
# (in an interactive shell: a program started by tmux alone is in an orphaned process group,
# where the kernel ignores SIGTSTP)
tmux -L "$SOCK" kill-session -t tui
tmux -L "$SOCK" -f "$TMP/tmux.conf" new-session -d -s tui -x 100 -y 30 \
    "env HOME='$TMP/home' XDG_DATA_HOME='$TMP/data' LANG=C.UTF-8 LC_ALL=C.UTF-8 PS1='shell\$ ' bash --norc -i" ||
    fail "could not start tmux"
wait_for 'shell\$' 10 "the shell prompt"
tmux -L "$SOCK" send-keys -t tui "'$BIN' chat -m '$MODEL' -n 64" Enter
wait_for 'Enter send' 30 "the TUI in the shell"
tmux -L "$SOCK" send-keys -t tui C-z
wait_for 'Stopped' 10 "the shell to report the stopped app"
tmux -L "$SOCK" send-keys -t tui "fg" Enter
wait_for 'Enter send' 10 "the TUI to draw itself again after fg"
screen | grep -q 'Stopped' && fail "the shell's lines are still on the screen after fg"
tmux -L "$SOCK" send-keys -t tui "/quit" Enter
wait_for '^shell\$ ?$' 10 "the shell prompt after /quit"
tmux -L "$SOCK" send-keys -t tui 'echo "APP EXITED rc=$?"' Enter
wait_for 'APP EXITED rc=0' 10 "the app to quit after fg with status 0"
echo "ok: Ctrl-Z and fg"

echo "PASS: tui_test"

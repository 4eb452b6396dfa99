#!/usr/bin/env bash
# The engine's layering, checked on the includes themselves:
#   - engine/ includes nothing from ui/, app/ or hub/ (the network client), and ui/ nothing from app/;
#   - client/ (the chat on a served model) includes of the engine only io/ and the chat's types;
#   - each engine folder includes only the folders engine/CMakeLists.txt lets it link
#     (io <- parallel <- kernels <- model <- decode <- chat; tokenizer on io, under model;
#     testing on model), so there is no cycle between them;
#   - no file includes itself through another (no include cycle between headers).
#   bash tests/layering_test.sh <fastdllm binary, unused> <source dir>
set -u
SRC=${2:?usage: layering_test.sh <fastdllm binary> <source dir>}
cd "$SRC"
fail=0

# What each engine folder may include (itself is always allowed).
declare -A ALLOWED=(
    [io]=""
    [parallel]="io"
    [tokenizer]="io"
    [kernels]="io parallel"
    [model]="io parallel tokenizer kernels"
    [decode]="io parallel tokenizer kernels model"
    [chat]="io parallel tokenizer kernels model decode"
    [testing]="io parallel tokenizer kernels model"
)

includes() {  # file -> the project headers it includes, one per line
    sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$1"
}

for dir in engine/*/; do
    layer=$(basename "$dir")
    if [ -z "${ALLOWED[$layer]+x}" ]; then
        echo "FAIL: engine/$layer is not in the layering table of tests/layering_test.sh"; fail=1; continue
    fi
    for f in "$dir"*.h "$dir"*.cpp; do
        [ -e "$f" ] || continue
        while read -r inc; do
            case "$inc" in
                ui/*|app/*|hub/*|client/*) echo "FAIL: $f includes $inc (the engine includes nothing from ui/, app/, hub/ or client/)"; fail=1 ;;
                engine/*/*)
                    dep=$(cut -d/ -f2 <<<"$inc")
                    if [ "$dep" != "$layer" ] && ! grep -qw "$dep" <<<"${ALLOWED[$layer]}"; then
                        echo "FAIL: $f includes $inc (engine/$layer may include: ${ALLOWED[$layer]:-nothing else})"; fail=1
                    fi ;;
                engine/*) echo "FAIL: $f includes $inc (headers live in engine/<folder>/)"; fail=1 ;;
            esac
        done < <(includes "$f")
    done
done
# hub/ (the network client) links only engine/io: it must not pull the engine in.
for f in hub/*.h hub/*.cpp; do
    [ -e "$f" ] || continue
    if includes "$f" | grep -E '^(engine/|ui/|app/)' | grep -qv '^engine/io/'; then
        echo "FAIL: $f includes $(includes "$f" | grep -E '^(engine/|ui/|app/)' | grep -v '^engine/io/' | head -1) (hub/ may include only engine/io/)"; fail=1
    fi
done
# client/ (the chat on a served model) links engine/io only: of the engine it may include io/ and
# the headers that define the chat's requests and events, whose code it does not call.
for f in client/*.h client/*.cpp; do
    [ -e "$f" ] || continue
    bad=$(includes "$f" | grep -E '^(engine/|ui/|app/|hub/|server/)' |
          grep -vE '^(engine/io/|engine/chat/chat_backend\.h$|engine/decode/decode_events\.h$)' | head -1)
    if [ -n "$bad" ]; then
        echo "FAIL: $f includes $bad (client/ may include only engine/io/, engine/chat/chat_backend.h and engine/decode/decode_events.h)"; fail=1
    fi
done
for f in ui/*.h ui/*.cpp; do
    [ -e "$f" ] || continue
    if includes "$f" | grep -q '^app/'; then echo "FAIL: $f includes app/ (ui/ is a library the app uses)"; fail=1; fi
    if includes "$f" | grep -q '^client/'; then echo "FAIL: $f includes client/ (ui/ sees a backend only through engine/chat/chat_backend.h)"; fail=1; fi
done

# Include cycles between project headers: a depth-first search over "header -> included header".
python3 - "$SRC" <<'PY' || fail=1
import os, re, sys
root = sys.argv[1]
inc = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)
graph = {}
for top in ("engine", "ui", "app", "hub", "client"):
    for d, _, files in os.walk(os.path.join(root, top)):
        for f in files:
            if f.endswith((".h", ".cpp")):
                rel = os.path.relpath(os.path.join(d, f), root)
                graph[rel] = [h for h in inc.findall(open(os.path.join(root, rel), encoding="utf-8", errors="replace").read())
                              if os.path.exists(os.path.join(root, h))]
state, bad = {}, []
def visit(n, path):
    state[n] = 1
    for m in graph.get(n, []):
        if state.get(m) == 1:
            bad.append(" -> ".join(path[path.index(m):] + [m]) if m in path else n + " -> " + m)
        elif m not in state:
            visit(m, path + [m])
    state[n] = 2
for n in sorted(graph):
    if n not in state:
        visit(n, [n])
for b in bad:
    print("FAIL: include cycle:", b)
sys.exit(1 if bad else 0)
PY

# The same rules hold in the build: each engine folder is a library linking only its allowed
# neighbours (engine/CMakeLists.txt), so a stray include would also fail to link.
if [ $fail -eq 0 ]; then echo "layering_test: engine layers and includes are clean"; fi
exit $fail

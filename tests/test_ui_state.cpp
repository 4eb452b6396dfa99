// The chat UI's view model without a terminal: block cells (masked, decoded, latest step, step
// colours), the streamed answer text, statistics text, replay, slash commands and text layout.
// Fed with synthetic events and with the real decoder running on fixtures/tiny.
#include <gtest/gtest.h>

#include <clocale>
#include <memory>

#include "engine/chat/chat_session.h"
#include "engine/io/error.h"
#include "engine/decode/generate.h"
#include "engine/model/model.h"
#include "engine/tokenizer/tokenizer.h"
#include "ui/commands.h"
#include "ui/renderer.h"
#include "ui/text.h"
#include "ui/view_model.h"

using namespace fdl;
using namespace fdl::ui;

namespace {

constexpr int32_t M = 99;  // mask id of the synthetic stream
constexpr int32_t STOP = 7;

std::unique_ptr<Model>& tiny() {
    static std::unique_ptr<Model> m = Model::load(FIXTURES_DIR "/tiny/model");
    return m;
}

DecodeEvent started(int prompt_len, int B = 8, int S = 4) {
    DecodeEvent e;
    e.type = DecodeEvent::Type::Started;
    e.decoder = S > 0 ? DecodeMode::Diffusion : DecodeMode::AR;
    e.prompt_len = prompt_len;
    e.block_size = B;
    e.sub_block_size = S;
    e.mask_token = M;
    return e;
}

DecodeEvent block_started(int index, int start, std::vector<int32_t> cells, int B = 8, int S = 4) {
    DecodeEvent e;
    e.type = DecodeEvent::Type::BlockStarted;
    e.block_index = index;
    e.block_start = start;
    e.block = std::move(cells);
    e.block_size = B;
    e.sub_block_size = S;
    e.mask_token = M;
    return e;
}

DecodeEvent step(StepKind k, int start, std::vector<int32_t> cells, std::vector<Unmasked> un, int nfe, int generated,
                 int B = 8, int S = 4) {
    DecodeEvent e;
    e.type = DecodeEvent::Type::Step;
    e.step = k;
    e.block_start = start;
    e.block = std::move(cells);
    e.unmasked = std::move(un);
    e.block_size = B;
    e.sub_block_size = S;
    e.mask_token = M;
    e.stats.nfe = nfe;
    e.stats.generated_tokens = generated;
    return e;
}

// A hand-made diffusion stream with blocks of 8: the prompt (6 tokens, ids 1..6) fills cells 0..5
// of block 0, whose cells 6 and 7 are masked; block 1 starts with the token the commit predicted.
std::vector<DecodeEvent> synthetic_stream() {
    std::vector<DecodeEvent> ev;
    ev.push_back(started(6));
    ev.push_back(block_started(0, 0, {1, 2, 3, 4, 5, 6, M, M}));
    // step 0: position 7 first (out of order): the text may not show it yet
    ev.push_back(step(StepKind::Block, 0, {1, 2, 3, 4, 5, 6, M, 11}, {{7, 11, 0.97f}}, 1, 1));
    // step 1: position 6
    ev.push_back(step(StepKind::SubBlock, 0, {1, 2, 3, 4, 5, 6, 10, 11}, {{6, 10, 0.6f}}, 2, 2));
    // step 2: commit, predicts position 8 (first cell of the next block)
    ev.push_back(step(StepKind::Commit, 0, {1, 2, 3, 4, 5, 6, 10, 11}, {{8, 12, 0.8f}}, 3, 3));
    ev.push_back(block_started(1, 8, {12, M, M, M, M, M, M, M}));
    // step 3: two cells at once, the stop token among them
    ev.push_back(step(StepKind::Block, 8, {12, 13, STOP, M, M, M, M, M}, {{9, 13, 0.95f}, {10, STOP, 0.93f}}, 4, 5));
    DecodeEvent fin;
    fin.type = DecodeEvent::Type::Finished;
    fin.block_start = 8;
    fin.block = {12, 13, STOP, M, M, M, M, M};
    fin.block_size = 8;
    fin.sub_block_size = 4;
    fin.mask_token = M;
    fin.stopped = true;
    fin.stats.nfe = 4;
    fin.stats.generated_tokens = 5;
    ev.push_back(fin);
    return ev;
}

}  // namespace

TEST(UiStateText, WidthsAndWrapping) {
    std::setlocale(LC_ALL, "C.UTF-8");
    EXPECT_EQ(utf8_to_wide("a\xC3\xA9"), L"a\u00e9");
    EXPECT_EQ(utf8_to_wide("\xE4\xBD"), L"\uFFFD");  // truncated sequence
    EXPECT_EQ(wide_to_utf8(L"你好🎉"), "你好🎉");
    EXPECT_EQ(display_width(std::wstring(L"abc")), 3);
    EXPECT_EQ(display_width(std::wstring(L"你好")), 4);
    EXPECT_EQ(display_width(std::wstring(L"🎉")), 2);
    EXPECT_EQ(display_width(std::wstring(L"e\u0301")), 1);  // combining accent takes no column

    // a wide character never straddles the cut: padded instead
    EXPECT_EQ(fit_width(L"a你好", 4, false, true), L"a你 ");
    EXPECT_EQ(fit_width(L"abcdef", 4, true), L"abc…");
    EXPECT_EQ(fit_width(L"ab", 4, false, true), L"ab  ");

    auto lines = wrap_text(L"the quick brown fox", 10);
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_EQ(lines[0], L"the quick");
    EXPECT_EQ(lines[1], L"brown fox");
    lines = wrap_text(L"你好你好你好", 5);  // 12 columns in lines of 5: 2 characters a line
    ASSERT_EQ(lines.size(), 3u);
    for (auto& l : lines) EXPECT_LE(display_width(l), 5);
    lines = wrap_text(L"a\nb", 10);
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_EQ(wrap_text(L"", 10).size(), 1u);

    EXPECT_EQ(token_cell_text(" the"), L"·the");
    EXPECT_EQ(token_cell_text("\n"), L"⏎");
    EXPECT_EQ(token_cell_text("\xE4"), L"<0xE4>");
    EXPECT_EQ(token_cell_text("\xC3\xA9"), L"é");               // a whole character stays one
    EXPECT_EQ(token_cell_text("a\xF0\x9F"), L"a<0xF0><0x9F>");  // the first half of an emoji
    EXPECT_EQ(token_cell_text("\xED\xA0\x80"), L"<0xED><0xA0><0x80>");  // a surrogate is not UTF-8
    EXPECT_EQ(token_cell_text("\xEF\xBF\xBD"), L"\uFFFD");        // a real U+FFFD
}

TEST(UiStateBlock, SyntheticStreamCellsStepsAndText) {
    const TokenText tt = TokenText::synthetic({STOP});
    const auto evs = synthetic_stream();
    AnswerView a;
    apply_event(a, evs[0], tt);
    EXPECT_TRUE(a.started);
    EXPECT_FALSE(a.ar);
    apply_event(a, evs[1], tt);
    ASSERT_EQ(a.block.cells.size(), 8u);
    EXPECT_EQ(a.block.index, 0);
    EXPECT_EQ(a.block.count(CellKind::Prompt), 6);
    EXPECT_EQ(a.block.count(CellKind::Masked), 2);
    EXPECT_EQ(a.block.cells[6].kind, CellKind::Masked);

    apply_event(a, evs[2], tt);  // step 0 decides position 7
    EXPECT_EQ(a.block.cells[7].kind, CellKind::Decoded);
    EXPECT_EQ(a.block.cells[7].step, 0);
    EXPECT_TRUE(a.block.cells[7].latest);
    EXPECT_FLOAT_EQ(a.block.cells[7].confidence, 0.97f);
    EXPECT_EQ(a.block.cells[7].text, L"t11·");
    EXPECT_EQ(a.block.cells[6].kind, CellKind::Masked);
    EXPECT_EQ(a.text, "");  // position 6 is undecided: nothing contiguous yet
    EXPECT_EQ(a.block.active_sub, 1);

    apply_event(a, evs[3], tt);  // step 1 decides position 6
    EXPECT_EQ(a.block.cells[6].step, 1);
    EXPECT_TRUE(a.block.cells[6].latest);
    EXPECT_FALSE(a.block.cells[7].latest);  // no longer the latest step
    EXPECT_EQ(a.block.latest_count(), 1);
    EXPECT_EQ(a.text, "t10 t11 ");
    EXPECT_EQ(step_colour(a.block.cells[6].step, 6), 1);
    EXPECT_EQ(step_colour(a.block.cells[7].step, 6), 0);
    EXPECT_NE(step_colour(a.block.cells[6].step, 6), step_colour(a.block.cells[7].step, 6));

    apply_event(a, evs[4], tt);  // commit: the next block's head, outside this block
    EXPECT_EQ(a.last_kind, StepKind::Commit);
    EXPECT_EQ(a.block.latest_count(), 0);
    EXPECT_EQ(a.text, "t10 t11 t12 ");

    apply_event(a, evs[5], tt);  // block 1: its head came from the commit (step 2)
    EXPECT_EQ(a.block.index, 1);
    EXPECT_EQ(a.block.start, 8);
    EXPECT_EQ(a.block.cells[0].kind, CellKind::Decoded);
    EXPECT_EQ(a.block.cells[0].step, 2);
    EXPECT_FALSE(a.block.cells[0].latest);
    EXPECT_EQ(a.block.count(CellKind::Masked), 7);

    apply_event(a, evs[6], tt);  // two cells in one step, one is the stop token
    EXPECT_EQ(a.block.latest_count(), 2);
    EXPECT_EQ(a.block.cells[1].step, 3);
    EXPECT_EQ(a.block.cells[2].step, 3);
    EXPECT_EQ(a.last_unmasked, 2);
    EXPECT_FLOAT_EQ(a.last_min_conf, 0.93f);
    EXPECT_EQ(a.text, "t10 t11 t12 t13 ");  // the stop token ends the text
    EXPECT_TRUE(a.stream_done);
    EXPECT_NE(block_title(a).find("block 1"), std::string::npos);
    EXPECT_NE(block_title(a).find("+2"), std::string::npos);

    apply_event(a, evs[7], tt);
    EXPECT_TRUE(a.finished);
    EXPECT_TRUE(a.stopped);
    EXPECT_EQ(a.block.count(CellKind::Masked), 5);  // cells after the stop stay undecided
    EXPECT_EQ(a.decided(), 5);
    EXPECT_NE(block_title(a).find("done"), std::string::npos);
}

TEST(UiStateBlock, RealDiffusionDecoderDrivesTheView) {
    Model& m = *tiny();
    const TokenText tt = TokenText::of(m.tokenizer(), m.config().eos_token_ids);
    const std::vector<int32_t> prompt = m.tokenizer().encode("hello there, how are you?", false);
    GenerateOptions o;
    o.mode = DecodeMode::Diffusion;
    o.max_new_tokens = 96;
    o.threshold = 0.5f;
    AnswerView a;
    int steps = 0, parallel_steps = 0, masked_seen = 0;
    std::vector<int> masked_per_step;
    int last_block = -2;
    KVCache cache = m.make_cache();
    GenerateResult r = generate(m, cache, prompt, o, [&](const DecodeEvent& ev) {
        apply_event(a, ev, tt);
        if (ev.type == DecodeEvent::Type::BlockStarted) {
            // a fresh block: every cell after the head is masked, and the sub-blocks are 8 wide
            EXPECT_EQ(a.block.index, ev.block_index);
            EXPECT_GT(a.block.count(CellKind::Masked), 0);
            EXPECT_EQ(a.block.sub_size, 8);
            last_block = ev.block_index;
            masked_per_step.clear();
            masked_per_step.push_back(a.block.count(CellKind::Masked));
            masked_seen += a.block.count(CellKind::Masked);
        }
        if (ev.type == DecodeEvent::Type::Step) {
            EXPECT_EQ(a.steps, steps + 1);
            // the cells this step decided (inside the block) are exactly the highlighted ones
            int inside = 0;
            for (auto& u : ev.unmasked) {
                const int i = u.position - a.block.start;
                if (i < 0 || i >= a.block.size) continue;
                inside++;
                const Cell& c = a.block.cells[size_t(i)];
                EXPECT_EQ(c.kind, CellKind::Decoded);
                EXPECT_EQ(c.token, u.token);
                EXPECT_EQ(c.step, steps);
                EXPECT_TRUE(c.latest);
                EXPECT_FLOAT_EQ(c.confidence, u.confidence);
            }
            EXPECT_EQ(a.block.latest_count(), inside);
            if (ev.step == StepKind::Block || ev.step == StepKind::SubBlock) {
                // masked cells only ever go down inside a block
                const int masked = a.block.count(CellKind::Masked);
                if (!masked_per_step.empty()) {
                    EXPECT_EQ(masked, masked_per_step.back() - inside);
                }
                masked_per_step.push_back(masked);
                if (inside > 1) parallel_steps++;
            }
            // every decoded cell keeps the step that decided it, and no cell claims a future step
            for (auto& c : a.block.cells)
                if (c.kind == CellKind::Decoded) {
                    EXPECT_LE(c.step, steps);
                }
            steps++;
        }
    });
    EXPECT_GT(masked_seen, 0);
    EXPECT_GE(last_block, 0);
    EXPECT_TRUE(a.finished);
    EXPECT_EQ(a.steps, r.stats.nfe);  // one Step event per forward pass
    EXPECT_GT(parallel_steps, 0) << "threshold 0.5 should unmask several cells at once on the tiny model";
    // the streamed text is the answer, cut at the stop token
    std::vector<int32_t> ids = r.tokens;
    if (r.stopped) ids.pop_back();
    EXPECT_EQ(a.text, m.tokenizer().decode(ids, true));
    EXPECT_EQ(a.stats.nfe, r.stats.nfe);
    const std::string speed = speed_text(a.stats, 1.5);
    EXPECT_NE(speed.find(std::to_string(r.stats.generated_tokens) + " tokens"), std::string::npos);
    EXPECT_NE(speed.find(fmt(r.stats.tokens_per_second(), 1) + " tok/s"), std::string::npos);
    EXPECT_NE(speed.find("NFE " + std::to_string(r.stats.nfe)), std::string::npos);
    EXPECT_NE(speed.find("1.5 s"), std::string::npos);
    const std::string caches = cache_text(a.stats, false);
    EXPECT_NE(caches.find("DualCache " + std::to_string(r.stats.subblock_passes) + "/" +
                          std::to_string(r.stats.block_passes + r.stats.subblock_passes)),
              std::string::npos);
    EXPECT_NE(caches.find("prefix cache " + std::to_string(r.stats.prefix_cache_len)), std::string::npos);
}

TEST(UiStateBlock, RealArDecoderFillsAWindow) {
    Model& m = *tiny();
    const TokenText tt = TokenText::of(m.tokenizer(), m.config().eos_token_ids);
    GenerateOptions o;
    o.mode = DecodeMode::AR;
    o.max_new_tokens = 40;
    o.stop_tokens = {-5};  // never stops early: fills more than one window
    KVCache cache = m.make_cache();
    AnswerView a;
    int steps = 0;
    GenerateResult r = generate(m, cache, m.tokenizer().encode("abc", false), o, [&](const DecodeEvent& ev) {
        apply_event(a, ev, tt);
        if (ev.type == DecodeEvent::Type::Step) {
            EXPECT_TRUE(a.ar);
            EXPECT_TRUE(a.block.ar);
            EXPECT_EQ(a.block.size, kArWindow);
            EXPECT_EQ(a.block.latest_count(), 1);  // one token per pass
            EXPECT_EQ(a.block.count(CellKind::Masked), 0);
            const int in_window = (steps % kArWindow) + 1;
            EXPECT_EQ(a.block.count(CellKind::Decoded), in_window);
            EXPECT_EQ(a.block.count(CellKind::Empty), kArWindow - in_window);
            steps++;
        }
    });
    EXPECT_EQ(int(r.tokens.size()), 40);
    EXPECT_EQ(steps, 40);
    EXPECT_EQ(a.block.index, 1);  // the second window
    EXPECT_EQ(cache_text(a.stats, true).find("DualCache"), std::string::npos);
    EXPECT_NE(block_title(a).find("AR"), std::string::npos);
}

TEST(UiStateReplay, StepsBackAndForwardThroughTheRecording) {
    const TokenText tt = TokenText::synthetic({STOP});
    const auto evs = synthetic_stream();
    Replay r;
    AnswerView live;
    for (auto& e : evs) {
        replay_record(r, e);
        apply_event(live, e, tt);
    }
    ASSERT_EQ(r.events.size(), evs.size());
    EXPECT_FALSE(r.active);

    // Left from the live view: enters the replay one event before the end
    ASSERT_TRUE(replay_step(r, -1, tt));
    EXPECT_TRUE(r.active);
    EXPECT_EQ(r.pos, int(evs.size()) - 2);
    EXPECT_FALSE(r.view.finished);
    EXPECT_EQ(r.view.block.latest_count(), 2);

    // back to the first step of block 0: one decided cell, masked position 6
    ASSERT_TRUE(replay_seek(r, 2, tt));
    EXPECT_EQ(r.view.block.index, 0);
    EXPECT_EQ(r.view.block.count(CellKind::Masked), 1);
    EXPECT_TRUE(r.view.block.cells[7].latest);
    EXPECT_EQ(r.view.text, "");
    ASSERT_TRUE(replay_step(r, +1, tt));
    EXPECT_EQ(r.view.block.count(CellKind::Masked), 0);
    EXPECT_EQ(r.view.text, "t10 t11 ");
    ASSERT_TRUE(replay_step(r, -100, tt));  // clamped to the start
    EXPECT_EQ(r.pos, 0);
    ASSERT_TRUE(replay_step(r, +100, tt));  // and to the end: the same state as live
    EXPECT_EQ(r.pos, int(evs.size()) - 1);
    EXPECT_EQ(r.view.text, live.text);
    EXPECT_EQ(r.view.block.count(CellKind::Masked), live.block.count(CellKind::Masked));

    // slow-motion play: 10 events per second
    replay_play(r, 10, 100.0, tt);
    EXPECT_TRUE(r.playing);
    EXPECT_EQ(r.pos, 0);
    EXPECT_FALSE(replay_tick(r, 100.05, tt));
    EXPECT_TRUE(replay_tick(r, 100.21, tt));
    EXPECT_EQ(r.pos, 2);
    EXPECT_TRUE(replay_tick(r, 110.0, tt));
    EXPECT_EQ(r.pos, int(evs.size()) - 1);
    EXPECT_FALSE(r.playing);
    replay_exit(r);
    EXPECT_FALSE(r.active);

    // a new answer starts a new recording
    replay_record(r, started(3));
    EXPECT_EQ(r.events.size(), 1u);
}

TEST(UiStateCommands, Parsing) {
    Command c = parse_command("/threshold 0.8");
    EXPECT_EQ(c.kind, CommandKind::Threshold);
    EXPECT_EQ(c.arg, "0.8");
    EXPECT_EQ(parse_command("  /block   32  ").arg, "32");
    EXPECT_EQ(parse_command("/sub 8").kind, CommandKind::Sub);
    EXPECT_EQ(parse_command("/cache dual").kind, CommandKind::Cache);
    EXPECT_EQ(parse_command("/mode compare").kind, CommandKind::Mode);
    c = parse_command("/system You are terse.");
    EXPECT_EQ(c.kind, CommandKind::System);
    EXPECT_EQ(c.arg, "You are terse.");
    EXPECT_EQ(parse_command("/clear").kind, CommandKind::Clear);
    c = parse_command("/history 2");
    EXPECT_EQ(c.kind, CommandKind::History);
    EXPECT_EQ(parse_history_turns(c.arg), 2);
    EXPECT_EQ(parse_history_turns("0"), 0);
    EXPECT_EQ(parse_history_turns("all"), -1);
    for (const char* bad : {"", "-1", "two", "1.5", "99999999", "3 4"}) EXPECT_EQ(parse_history_turns(bad), -2) << bad;
    EXPECT_EQ(parse_command("/save a.json").arg, "a.json");
    EXPECT_EQ(parse_command("/load a.json").kind, CommandKind::Load);
    EXPECT_EQ(parse_command("/help").kind, CommandKind::Help);
    EXPECT_EQ(parse_command("/quit").kind, CommandKind::Quit);
    EXPECT_EQ(parse_command("/replay 4").kind, CommandKind::Replay);
    EXPECT_EQ(parse_command("/frobnicate").kind, CommandKind::Unknown);
    c = parse_command("hello /threshold");
    EXPECT_EQ(c.kind, CommandKind::None);
    EXPECT_EQ(c.text, "hello /threshold");
    c = parse_command("//etc/passwd is a path");
    EXPECT_EQ(c.kind, CommandKind::None);
    EXPECT_EQ(c.text, "/etc/passwd is a path");
    EXPECT_FALSE(help_lines().empty());
}

// The help overlay draws its lines inside a box 4 columns wider: they must fit an 80x24 terminal
// whole (they are cut, not wrapped).
TEST(UiStateCommands, HelpFitsAnEightyByTwentyFourTerminal) {
    std::setlocale(LC_ALL, "C.UTF-8");
    const auto lines = help_lines();
    EXPECT_LE(lines.size() + 2, 24u);
    for (const auto& l : lines) EXPECT_LE(display_width(std::string_view(l)), 76) << l;
}

TEST(UiStateCommands, SettingsAreValidated) {
    Settings s;
    std::string msg;
    EXPECT_TRUE(apply_setting(s, parse_command("/threshold 0.8"), msg)) << msg;
    EXPECT_FLOAT_EQ(s.gen.threshold, 0.8f);
    EXPECT_FALSE(apply_setting(s, parse_command("/threshold 1.5"), msg));
    EXPECT_NE(msg.find("threshold"), std::string::npos);
    EXPECT_FLOAT_EQ(s.gen.threshold, 0.8f);  // unchanged
    EXPECT_FALSE(apply_setting(s, parse_command("/threshold abc"), msg));

    EXPECT_FALSE(apply_setting(s, parse_command("/sub 5"), msg));
    EXPECT_NE(msg.find("must divide the block size 32"), std::string::npos) << msg;
    EXPECT_EQ(s.gen.sub_block_size, 8);
    EXPECT_TRUE(apply_setting(s, parse_command("/sub 4"), msg)) << msg;
    EXPECT_EQ(s.gen.sub_block_size, 4);
    EXPECT_TRUE(apply_setting(s, parse_command("/block 64"), msg)) << msg;
    EXPECT_EQ(s.gen.block_size, 64);
    EXPECT_FALSE(apply_setting(s, parse_command("/block 6"), msg));  // the sub-block size 4 does not divide 6
    EXPECT_FALSE(apply_setting(s, parse_command("/block 512"), msg));  // more than max new tokens (256)
    EXPECT_NE(msg.find("max new tokens"), std::string::npos) << msg;

    EXPECT_TRUE(apply_setting(s, parse_command("/cache prefix"), msg));
    EXPECT_EQ(s.gen.cache, CacheMode::Prefix);
    EXPECT_FALSE(apply_setting(s, parse_command("/cache all"), msg));
    EXPECT_NE(msg.find("none, prefix, dual or dual-overlap"), std::string::npos);

    EXPECT_TRUE(apply_setting(s, parse_command("/mode ar"), msg));
    EXPECT_EQ(s.gen.mode, DecodeMode::AR);
    EXPECT_FALSE(s.compare());
    EXPECT_TRUE(apply_setting(s, parse_command("/mode compare"), msg));
    EXPECT_TRUE(s.compare());
    EXPECT_EQ(s.gen.mode, DecodeMode::Diffusion);
    EXPECT_NE(settings_text(s).find("compare"), std::string::npos);
    EXPECT_TRUE(apply_setting(s, parse_command("/mode diffusion"), msg));
    EXPECT_FALSE(s.compare());
    EXPECT_FALSE(apply_setting(s, parse_command("/mode fast"), msg));

    EXPECT_TRUE(apply_setting(s, parse_command("/n 128"), msg));
    EXPECT_EQ(s.gen.max_new_tokens, 128);
    EXPECT_FALSE(apply_setting(s, parse_command("/n 0"), msg));
    EXPECT_TRUE(apply_setting(s, parse_command("/delay 50"), msg));
    EXPECT_EQ(s.delay_ms, 50);
    EXPECT_FALSE(apply_setting(s, parse_command("/delay -1"), msg));
    EXPECT_FALSE(apply_setting(s, parse_command("/temp -1"), msg));
    EXPECT_FALSE(apply_setting(s, parse_command("/clear"), msg));  // not a setting

    s.model_name = "demo";
    s.weights = "int8";
    s.threads = 2;
    const std::string st = settings_text(s);
    EXPECT_NE(st.find("demo · diffusion τ=0.80 B=64 S=4 cache=prefix n=128"), std::string::npos) << st;
    EXPECT_NE(st.find(" · int8 · 2 threads"), std::string::npos) << st;
    s.threads = 1;
    const std::string one = settings_text(s);
    EXPECT_NE(one.find(" · 1 thread"), std::string::npos) << one;
    EXPECT_EQ(one.find("threads"), std::string::npos) << one;
}

TEST(UiStateViewModel, TranscriptAnswersAndComparison) {
    const TokenText tt = TokenText::synthetic({STOP});
    ViewModel vm;
    vm.settings.chat = ChatMode::Compare;
    begin_answer(vm, "hi", 1.0);
    EXPECT_TRUE(vm.busy);
    ASSERT_EQ(vm.transcript.size(), 1u);
    EXPECT_EQ(vm.transcript[0].kind, Entry::Kind::User);

    // lane 1 (AR) first
    begin_lane(vm, 1, "ar-model", 1.0);
    DecodeEvent s = started(2, 1, 0);
    on_decode_event(vm, s, tt, 1.0);
    DecodeEvent st = step(StepKind::Prefill, 2, {10}, {{2, 10, 0.9f}}, 1, 1, 1, 0);
    st.stats.decode_seconds = 0.5;
    st.stats.prefill_generated = 0;
    st.stats.decode_passes = 1;
    on_decode_event(vm, st, tt, 1.1);
    EXPECT_EQ(vm.transcript.back().text, "t10 ");
    EXPECT_TRUE(vm.transcript.back().live);
    const std::string ar_text = "t10 ";
    end_answer(vm, &ar_text, "", 1.2);
    EXPECT_FALSE(vm.transcript.back().live);
    EXPECT_NE(vm.transcript.back().meta.find("tok/s"), std::string::npos);
    EXPECT_TRUE(vm.compare.have_ar);

    // then lane 0 (diffusion)
    begin_lane(vm, 0, "dllm", 1.2);
    auto evs = synthetic_stream();
    for (auto& e : evs) {
        e.stats.decode_seconds = 0.1;
        on_decode_event(vm, e, tt, 1.3);
    }
    EXPECT_EQ(vm.transcript.back().text, "t10 t11 t12 t13 ");
    end_answer(vm, nullptr, "", 1.4);
    end_job(vm, 1.4);
    EXPECT_FALSE(vm.busy);
    ASSERT_EQ(vm.transcript.size(), 4u);
    EXPECT_EQ(vm.transcript.back().kind, Entry::Kind::Info);
    EXPECT_NE(vm.transcript.back().text.find("speedup"), std::string::npos) << vm.transcript.back().text;
    // the replay holds the last answer (the diffusion one)
    EXPECT_EQ(vm.replay.events.size(), evs.size());

    // an error ends an answer with a message
    begin_answer(vm, "again", 2.0);
    begin_lane(vm, 0, "dllm", 2.0);
    end_answer(vm, nullptr, "boom", 2.1);
    end_job(vm, 2.1);
    EXPECT_EQ(vm.transcript.back().kind, Entry::Kind::Error);
    EXPECT_EQ(vm.status, "boom");
    EXPECT_TRUE(vm.status_error);

    scroll_transcript(vm, 5);
    EXPECT_EQ(vm.scroll, 5);
    scroll_transcript(vm, -10);
    EXPECT_EQ(vm.scroll, 0);
}

TEST(UiStateStats, SummaryAndSpeedupText) {
    DecodeStats a;
    a.generated_tokens = 41;
    a.prefill_generated = 1;
    a.nfe = 41;
    a.prefill_passes = 1;
    a.decode_seconds = 4.0;
    a.prefill_seconds = 0.0123;
    DecodeStats d = a;
    d.nfe = 17;
    d.decode_seconds = 1.0;
    EXPECT_EQ(answer_summary(a), "41 tokens · 10.0 tok/s · 1.00 tok/forward · NFE 41 · prefill 12.3 ms");
    EXPECT_EQ(compare_summary(a, d).rfind("speedup 3.96x", 0), 0u) << compare_summary(a, d);  // 41/1.0123 over 41/4.0123
    EXPECT_EQ(speed_text(d, 2.0), "41 tokens · 40.0 tok/s · 2.50 tok/fwd · NFE 17 · 2.0 s");
    d.prefilled_tokens = 64;
    d.prefix_cache_len = 96;
    d.reused_tokens = 32;
    d.block_passes = 4;
    d.subblock_passes = 8;
    EXPECT_EQ(cache_text(d, false), "prefill 12 ms (64 tok) · prefix cache 96 (32 reused) · DualCache 8/12 passes");
    d.block_passes = 1;
    d.subblock_passes = 0;
    EXPECT_NE(cache_text(d, false).find("DualCache 0/1 pass"), std::string::npos);
    EXPECT_EQ(cache_text(d, false).find("passes"), std::string::npos);
}

// A block decided in one pass (the demo dLLM's short answers often are) says so in the singular.
TEST(UiStateStats, BlockTitleCountsPassesInTheSingular) {
    AnswerView a;
    a.started = true;
    a.block.index = 1;
    a.block.start = 32;
    a.block.size = 32;
    a.block.sub_size = 8;
    a.block.steps = 1;
    EXPECT_NE(block_title(a).find("· 1 pass"), std::string::npos) << block_title(a);
    EXPECT_EQ(block_title(a).find("passes"), std::string::npos) << block_title(a);
    a.block.steps = 2;
    EXPECT_NE(block_title(a).find("· 2 passes"), std::string::npos) << block_title(a);
}

TEST(UiStateLayout, CellsPerRowFollowSubBlocks) {
    CellLayout l = layout_cells(32, 8, 78);  // an 80-column terminal
    EXPECT_EQ(l.per_row, 8);
    EXPECT_EQ(l.rows, 4);
    EXPECT_EQ(l.group, 8);
    EXPECT_GE(l.cell_w, 7);
    l = layout_cells(32, 8, 198);
    EXPECT_EQ(l.per_row % 8, 0);
    EXPECT_LE(l.rows, 2);
    EXPECT_LE(l.per_row * l.cell_w + (l.per_row / 8 - 1), 198);
    l = layout_cells(32, 32, 78);  // a sub-block wider than the screen: no separators
    EXPECT_EQ(l.group, 0);
    EXPECT_EQ(l.rows * l.per_row >= 32, true);
}

// The comparison uses whole-request rates: a diffusion answer to a prompt shorter than a block
// has no separate prefill, so decode-only rates would charge the prompt to diffusion alone.
TEST(UiStateStats, CompareCountsThePromptOnBothSides) {
    DecodeStats ar;
    ar.generated_tokens = 20;
    ar.prefill_generated = 1;
    ar.nfe = 20;
    ar.prefill_passes = 1;
    ar.prefill_seconds = 1.0;
    ar.decode_seconds = 1.0;  // decode-only: 19 tok/s; whole request: 10 tok/s
    DecodeStats d;
    d.generated_tokens = 20;
    d.nfe = 5;
    d.decode_seconds = 1.0;  // no prefill pass: the prompt ran inside the first block pass
    EXPECT_DOUBLE_EQ(ar.request_tokens_per_second(), 10.0);
    EXPECT_EQ(compare_summary(ar, d),
              "speedup 2.00x: diffusion 20.0 tok/s (4.00 tok/fwd, NFE 5) vs AR 10.0 tok/s (NFE 20), prompt included");
}

TEST(UiStateStats, CompareKeepsRunningTotalsPerConfiguration) {
    Settings s;
    s.model_name = "m";
    s.chat = ChatMode::Compare;
    auto stats = [](int tokens, double seconds) {
        DecodeStats st;
        st.generated_tokens = tokens;
        st.nfe = tokens;
        st.decode_seconds = seconds;
        return st;
    };
    CompareState c;
    EXPECT_EQ(finish_compare(c), "");  // nothing answered
    c.record(1, stats(10, 1.0), false, s);
    c.record(0, stats(10, 0.5), false, s);
    const std::string first = finish_compare(c);
    EXPECT_EQ(first.rfind("speedup 2.00x", 0), 0u) << first;
    EXPECT_EQ(first.find("prompts"), std::string::npos) << first;  // one prompt: no totals yet
    EXPECT_FALSE(c.have_ar || c.have_diffusion);
    c.record(1, stats(30, 1.0), false, s);
    c.record(0, stats(30, 3.0), false, s);
    const std::string second = finish_compare(c);
    // per prompt 0.33x; over both: 40 / 3.5 s against 40 / 2 s
    EXPECT_EQ(second.rfind("speedup 0.33x", 0), 0u) << second;
    EXPECT_NE(second.find(" · 2 prompts: 0.57x"), std::string::npos) << second;

    // a cancelled answer is not compared and leaves the totals alone
    c.record(1, stats(30, 1.0), false, s);
    c.record(0, stats(3, 0.1), true, s);
    EXPECT_EQ(finish_compare(c), "");
    EXPECT_EQ(c.prompts, 2);

    // /delay pauses after every pass, so AR (more passes) would look slow: no speedup, no totals
    Settings slow = s;
    slow.delay_ms = 100;
    c.record(1, stats(30, 4.0), false, slow);
    c.record(0, stats(30, 1.0), false, slow);
    const std::string slowed = finish_compare(c);
    EXPECT_EQ(slowed, "slowed by /delay, speeds not compared: diffusion 1.00 tok/fwd, NFE 30 vs AR NFE 30");
    EXPECT_EQ(c.prompts, 2);

    // new settings start new totals
    Settings other = s;
    other.gen.threshold = 0.5;
    c.record(1, stats(10, 1.0), false, other);
    c.record(0, stats(10, 1.0), false, other);
    const std::string fresh = finish_compare(c);
    EXPECT_EQ(fresh.find("prompts"), std::string::npos) << fresh;
    EXPECT_EQ(c.prompts, 1);
}

// Draws a ViewModel with ncurses (wide-character build): transcript, live block view, status bar,
// input line and the help overlay. Windows are redrawn with werase + wnoutrefresh + one doupdate
// per frame, so nothing flickers. All terminal state lives here.
#pragma once
#include <string>

#include "ui/view_model.h"

namespace fdl::ui {

enum class ColorMode { None, Basic16, Full256 };

// What the input line shows (from readline's buffer).
struct InputView {
    std::string prompt = "› ";
    std::string line;  // UTF-8, may hold newlines
    int point = 0;     // cursor as a byte offset into `line`
    std::string hint;  // shown dimmed while the line is empty
};

// Layout of the block view: how many cells go in a row and how wide each is (exposed for tests).
struct CellLayout {
    int per_row = 0, rows = 0, cell_w = 0;
    int group = 0;  // cells between separators (the sub-block size, when it fits)
};
CellLayout layout_cells(int block_size, int sub_size, int avail_cols);

class Renderer {
public:
    // Starts curses on the terminal (after setlocale). Returns false when it cannot.
    bool start();
    void stop();  // restores the terminal (idempotent)
    ~Renderer() { stop(); }

    // Draws one frame. Returns the largest useful transcript scroll (the caller clamps vm.scroll).
    int draw(const ViewModel& vm, const InputView& in, double now);
    void resized();  // after KEY_RESIZE
    void suspend();  // Ctrl-Z: gives the terminal back and stops the process until `fg`
    ColorMode colors() const { return colors_; }

private:
    bool started_ = false;
    void* screen_ = nullptr;  // SCREEN*
    ColorMode colors_ = ColorMode::None;
    int palette_ = 0;  // colours available for steps
    void init_colors();
    int pair_for_step(int slot) const;
};

}  // namespace fdl::ui

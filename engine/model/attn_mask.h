// Which cache rows a query may attend to: the one piece of a forward pass that an architecture
// entry (architecture.h) also names, as the mask its family was trained with.
#pragma once

namespace fdl {

// Which cache rows a query at position p may attend to (rows are positions).
enum class AttnMask {
    Causal,       // j <= p
    BlockCausal,  // j / B <= p / B  (bidirectional inside a block, causal across blocks)
    Full,         // every row < attend_len
};

}  // namespace fdl

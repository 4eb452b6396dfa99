// fastdllm info: what a model folder holds.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "engine/model/load_progress.h"
#include "engine/model/model.h"
#include "engine/io/safetensors.h"

namespace fdl::cli {

int cmd_info(int argc, char** argv, int first) {
    std::string model_dir;
    bool as_json = false;
    std::optional<WeightType> load_type;
    ArgParser p("info", "[-m DIR] [--dtype T] [--json]");
    p.add({"-m", "--model", "DIR", "model folder, or ORG/NAME in the Hugging Face cache (default: the demo dLLM)", [&](const std::string& v) { model_dir = v; }});
    p.add({"", "--dtype", "T", "load the weights as: auto | f32 | bf16 | int8 | int4 (the memory they take is shown)",
           [&](const std::string& v) {
               if (!parse_weight_type(v, load_type))
                   throw UsageError{std::string("--dtype: expected ") + weight_type_choices() + ", got '" + v + "'"};
           }});
    p.add({"", "--json", "", "print JSON", [&](const std::string&) { as_json = true; }});
    std::vector<std::string> rest = p.parse(argc, argv, first);
    if (p.help_requested()) {
        std::cout << p.help();
        return 0;
    }
    if (!rest.empty()) throw UsageError{"unexpected argument '" + rest[0] + "'"};
    model_dir = resolve_model_dir(model_dir);
    LoadOptions lo;
    lo.weight_type = load_type;
    lo.progress = stderr_load_progress(model_dir);
    auto model = Model::load(model_dir, lo);
    const ModelConfig& c = model->config();
    SafeTensors st = SafeTensors::open_model_dir(model_dir);
    size_t file_bytes = 0;
    std::string dtype;
    for (auto& n : st.names()) {
        const TensorView& t = st.get(n);
        file_bytes += t.nbytes;
        if (dtype.empty()) dtype = dtype_name(t.dtype);
        else if (dtype != dtype_name(t.dtype) && dtype != "mixed") dtype = "mixed";
    }
    nlohmann::json j = {{"model", c.name},
                        {"dir", model_dir},
                        {"architecture", c.architecture},
                        {"diffusion", c.is_diffusion},
                        {"layers", c.num_layers},
                        {"hidden_size", c.hidden_size},
                        {"heads", c.num_heads},
                        {"kv_heads", c.num_kv_heads},
                        {"head_dim", c.head_dim},
                        {"intermediate_size", c.intermediate_size},
                        {"vocab_size", c.vocab_size},
                        {"tokenizer_size", model->tokenizer().size()},
                        {"tied_embeddings", c.tie_word_embeddings},
                        {"bd_size", c.bd_size},
                        {"rope_theta", c.rope_theta},
                        {"max_position_embeddings", c.max_position_embeddings},
                        {"parameters", c.parameter_count()},
                        {"tensors", st.names().size()},
                        {"file_dtype", dtype},
                        {"file_bytes", file_bytes},
                        {"loaded_bytes", model->weight_bytes()},
                        {"loaded_dtype", weight_type_name(model->weight_type())},
                        {"mask_token_id", model->mask_token_id()},
                        {"eos_token_ids", c.eos_token_ids}};
    if (as_json) {
        std::cout << j.dump(2) << "\n";
        return 0;
    }
    std::printf("model:        %s (%s)\n", c.name.c_str(), c.architecture.c_str());
    std::printf("shape:        %s\n", c.describe().c_str());
    std::printf("weights:      %zu tensors, %s, %.1f MB on disk, %.1f MB loaded (%s)\n", st.names().size(),
                dtype.c_str(), file_bytes / 1e6, model->weight_bytes() / 1e6, weight_type_name(model->weight_type()));
    std::printf("tokenizer:    %d tokens; mask token %d; stop tokens", model->tokenizer().size(), model->mask_token_id());
    for (auto e : c.eos_token_ids) std::printf(" %d", e);
    std::printf("\ncontext:      %d positions, rope theta %g%s\n", c.max_position_embeddings, c.rope_theta,
                c.is_diffusion ? (", block size " + std::to_string(c.bd_size)).c_str() : "");
    return 0;
}

}  // namespace fdl::cli

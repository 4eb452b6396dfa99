// The parts of the Hugging Face hub client that need no network: repository names, the
// environment, the cache layout (as huggingface_hub writes it), the file filter, checksums.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "engine/io/error.h"
#include "hub/cache.h"
#include "hub/digest.h"
#include "hub/repo.h"
#include "hub/settings.h"

using namespace fdl::hub;
namespace fs = std::filesystem;

TEST(HubRepo, ParsesNamesAndRevisions) {
    RepoRef r;
    ASSERT_TRUE(parse_repo_ref("Efficient-Large-Model/Fast_dLLM_v2_1.5B", r));
    EXPECT_EQ(r.repo, "Efficient-Large-Model/Fast_dLLM_v2_1.5B");
    EXPECT_EQ(r.revision, "main");
    EXPECT_FALSE(r.revision_given);
    ASSERT_TRUE(parse_repo_ref("org/name@v1.0", r));
    EXPECT_EQ(r.repo, "org/name");
    EXPECT_EQ(r.revision, "v1.0");
    EXPECT_EQ(r.text(), "org/name@v1.0");
    ASSERT_TRUE(parse_repo_ref("org/name@refs/pr/1", r));
    EXPECT_EQ(r.revision, "refs/pr/1");
    std::string why;
    for (const char* bad : {"name", "a/b/c", "/a/b", "a--b/c", "a/b..c", "-a/b", "a/b.", "a/b@", "a/b@../x", "a/b c",
                            "a/b@x y", "a/"}) {
        EXPECT_FALSE(parse_repo_ref(bad, r, &why)) << bad;
        EXPECT_FALSE(why.empty()) << bad;
    }
    EXPECT_FALSE(parse_repo_ref("a/" + std::string(95, 'x'), r));
}

TEST(HubRepo, TellsRepositoriesFromPaths) {
    EXPECT_TRUE(looks_like_repo_ref("org/name"));
    EXPECT_TRUE(looks_like_repo_ref("org/name@refs/pr/1"));
    for (const char* path : {"name", "./org/name", "../org/name", "/abs/name", "~/models", "a/b/c", ""})
        EXPECT_FALSE(looks_like_repo_ref(path)) << path;
    EXPECT_TRUE(is_commit_hash("0123456789abcdef0123456789abcdef01234567"));
    EXPECT_FALSE(is_commit_hash("0123456789ABCDEF0123456789abcdef01234567"));
    EXPECT_FALSE(is_commit_hash("main"));
}

TEST(HubRepo, SelectsConfigTokenizerAndSafetensorsOnly) {
    const FileSelection s = select_files("o/n", {"README.md", ".gitattributes", "config.json", "generation_config.json",
                                                 "model.safetensors", "pytorch_model.bin", "model.pth", "tokenizer.json",
                                                 "tokenizer_config.json", "vocab.json", "merges.txt", "added_tokens.json",
                                                 "special_tokens_map.json", "modeling.py", "onnx/model.onnx", "onnx/config.json"});
    EXPECT_EQ(s.small, (std::vector<std::string>{"added_tokens.json", "config.json", "generation_config.json", "merges.txt",
                                                  "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json",
                                                  "vocab.json"}));
    EXPECT_EQ(s.single, "model.safetensors");
    EXPECT_EQ(s.index, "");
    const FileSelection sh = select_files("o/n", {"config.json", "model.safetensors.index.json", "model-00001-of-00002.safetensors",
                                                  "model-00002-of-00002.safetensors", "pytorch_model.bin.index.json"});
    EXPECT_EQ(sh.index, "model.safetensors.index.json");
    EXPECT_EQ(sh.single, "");
    EXPECT_EQ(sh.small, std::vector<std::string>{"config.json"});
    try {
        select_files("o/n", {"config.json", "pytorch_model.bin"});
        FAIL() << "no safetensors accepted";
    } catch (const fdl::Error& e) {
        EXPECT_NE(std::string(e.what()).find("does not read .bin"), std::string::npos) << e.what();
    }
    EXPECT_THROW(select_files("o/n", {"model.safetensors"}), fdl::Error);
}

TEST(HubRepo, ReadsShardNamesFromTheIndex) {
    EXPECT_EQ(shards_from_index(R"({"metadata": {}, "weight_map": {"a": "m-2.safetensors", "b": "m-1.safetensors", "c": "m-2.safetensors"}})", "i"),
              (std::vector<std::string>{"m-1.safetensors", "m-2.safetensors"}));
    for (const char* bad : {R"({"weight_map": {"a": "../x.safetensors"}})", R"({"weight_map": {"a": "sub/x.safetensors"}})",
                            R"({"weight_map": {"a": 3}})", R"({"weight_map": {}})", R"({"nothing": 1})", "not json"})
        EXPECT_THROW(shards_from_index(bad, "i"), fdl::Error) << bad;
}

TEST(HubSettings, ReadsTheEnvironmentAsHuggingFaceToolsDo) {
    std::map<std::string, std::string> env = {{"HOME", "/h"}};
    auto get = [&](const char* k) -> const char* { return env.count(k) ? env[k].c_str() : nullptr; };
    HubSettings s = HubSettings::from_environment(get);
    EXPECT_EQ(s.endpoint, "https://huggingface.co");
    EXPECT_EQ(s.home, "/h/.cache/huggingface");
    EXPECT_EQ(s.cache_dir, "/h/.cache/huggingface/hub");
    EXPECT_EQ(s.token, "");
    EXPECT_FALSE(s.offline);
    env["XDG_CACHE_HOME"] = "/xdg";
    EXPECT_EQ(HubSettings::from_environment(get).cache_dir, "/xdg/huggingface/hub");
    env["HF_HOME"] = "~/hf";
    EXPECT_EQ(HubSettings::from_environment(get).cache_dir, "/h/hf/hub");
    env["HF_HUB_CACHE"] = "/cache";
    EXPECT_EQ(HubSettings::from_environment(get).cache_dir, "/cache");
    env["HF_ENDPOINT"] = "http://127.0.0.1:8080/";
    EXPECT_EQ(HubSettings::from_environment(get).endpoint, "http://127.0.0.1:8080");
    for (const auto& [v, on] : std::map<std::string, bool>{{"1", true}, {"true", true}, {"YES", true}, {"on", true}, {"0", false}, {"", false}}) {
        env["HF_HUB_OFFLINE"] = v;
        EXPECT_EQ(HubSettings::from_environment(get).offline, on) << v;
    }
    // The token: HF_TOKEN, else the file `huggingface-cli login` writes ($HF_HOME/token, or HF_TOKEN_PATH).
    const fs::path dir = fs::temp_directory_path() / ("fastdllm-hub-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::ofstream(dir / "token") << "hf_file\n";
    env["HF_HOME"] = dir.string();
    s = HubSettings::from_environment(get);
    EXPECT_EQ(s.token, "hf_file");
    EXPECT_EQ(s.token_source, (dir / "token").string());
    env["HF_TOKEN"] = "hf_env";
    s = HubSettings::from_environment(get);
    EXPECT_EQ(s.token, "hf_env");
    EXPECT_EQ(s.token_source, "HF_TOKEN");
    fs::remove_all(dir);
}

TEST(HubCache, LaysOutPathsAsHuggingfaceHub) {
    EXPECT_EQ(repo_folder_name("Efficient-Large-Model/Fast_dLLM_v2_1.5B"), "models--Efficient-Large-Model--Fast_dLLM_v2_1.5B");
    const CachePaths p = cache_paths("/c", "org/name");
    EXPECT_EQ(p.root, "/c/models--org--name");
    EXPECT_EQ(p.blob("abc"), "/c/models--org--name/blobs/abc");
    EXPECT_EQ(p.incomplete("abc"), "/c/models--org--name/blobs/abc.incomplete");
    EXPECT_EQ(p.ref("main"), "/c/models--org--name/refs/main");
    EXPECT_EQ(p.snapshot("c0ffee"), "/c/models--org--name/snapshots/c0ffee");
    EXPECT_EQ(p.lock("abc"), "/c/.locks/models--org--name/abc.lock");
    EXPECT_EQ(CachePaths::link_target("config.json", "abc"), "../../blobs/abc");
    EXPECT_EQ(CachePaths::link_target("sub/config.json", "abc"), "../../../blobs/abc");
}

TEST(HubCache, FindsListsAndRemovesSnapshots) {
    const fs::path cache = fs::temp_directory_path() / ("fastdllm-cache-" + std::to_string(::getpid()));
    fs::remove_all(cache);
    const CachePaths p = cache_paths(cache.string(), "org/name");
    const std::string commit = "0123456789abcdef0123456789abcdef01234567";
    fs::create_directories(p.root + "/blobs");
    fs::create_directories(p.snapshot(commit));
    fs::create_directories(p.root + "/refs");
    std::ofstream(p.blob("cfg")) << "{}";
    std::ofstream(p.blob("w")) << "weights";
    std::ofstream(p.incomplete("part")) << "par";
    std::ofstream(p.ref("main")) << commit;
    fs::create_symlink(CachePaths::link_target("config.json", "cfg"), p.snapshot(commit) + "/config.json");

    RepoRef ref;
    ASSERT_TRUE(parse_repo_ref("org/name", ref));
    std::string why;
    EXPECT_EQ(find_snapshot(cache.string(), ref, &why), "");  // no weights yet
    EXPECT_NE(why.find("has no model.safetensors"), std::string::npos) << why;
    fs::create_symlink(CachePaths::link_target("model.safetensors", "w"), p.snapshot(commit) + "/model.safetensors");
    EXPECT_EQ(find_snapshot(cache.string(), ref), p.snapshot(commit));
    ASSERT_TRUE(parse_repo_ref("org/name@" + commit, ref));
    EXPECT_EQ(find_snapshot(cache.string(), ref), p.snapshot(commit));
    ASSERT_TRUE(parse_repo_ref("org/name@v2", ref));
    EXPECT_EQ(find_snapshot(cache.string(), ref, &why), "");
    EXPECT_NE(why.find("revision v2 is not in the Hugging Face cache"), std::string::npos) << why;
    ASSERT_TRUE(parse_repo_ref("org/other", ref));
    EXPECT_EQ(find_snapshot(cache.string(), ref, &why), "");
    EXPECT_NE(why.find("not in the Hugging Face cache"), std::string::npos) << why;

    fs::create_directories(cache / "datasets--org--data");  // not a model: not listed
    const std::vector<CachedRepo> list = list_cached(cache.string());
    ASSERT_EQ(list.size(), 1u);
    EXPECT_EQ(list[0].repo, "org/name");
    EXPECT_EQ(list[0].bytes, 9u);  // "{}" and "weights"
    EXPECT_EQ(list[0].incomplete_bytes, 3u);
    EXPECT_EQ(list[0].refs.at("main"), commit);
    EXPECT_EQ(list[0].snapshots, std::vector<std::string>{commit});
    EXPECT_TRUE(list[0].complete);

    // A dangling link (its blob missing) is an unfinished download.
    fs::remove(p.blob("w"));
    ASSERT_TRUE(parse_repo_ref("org/name", ref));
    EXPECT_EQ(find_snapshot(cache.string(), ref), "");

    EXPECT_EQ(remove_cached(cache.string(), "org/name"), 45u);  // "{}", "par" and refs/main; not the links
    EXPECT_FALSE(fs::exists(p.root));
    EXPECT_TRUE(list_cached(cache.string()).empty());
    EXPECT_THROW(remove_cached(cache.string(), "org/name"), fdl::Error);
    fs::remove_all(cache);
}

TEST(HubDigest, Sha256AndGitBlobIds) {
    Digest s(Digest::Kind::Sha256, 3);
    s.update("a", 1);
    s.update("bc", 2);
    EXPECT_EQ(s.hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    s.reset();
    EXPECT_EQ(s.hex(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    Digest g(Digest::Kind::GitBlobSha1, 6);  // `echo hello | git hash-object --stdin`
    g.update("hello\n", 6);
    EXPECT_EQ(g.hex(), "ce013625030ba8dba906f756967f9e9ca394464a");
    Digest e(Digest::Kind::GitBlobSha1, 0);  // git's empty blob
    EXPECT_EQ(e.hex(), "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
}

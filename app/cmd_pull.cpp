// fastdllm pull: a model from the Hugging Face hub into the Hugging Face cache, where the
// Hugging Face tools keep theirs (hub/ does the work; this draws the progress).
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <iostream>

#include "app/commands.h"
#include "app/pull_progress.h"
#include "hub/cache.h"
#include "hub/pull.h"

#ifndef FASTDLLM_VERSION
#define FASTDLLM_VERSION "unknown"
#endif

namespace fdl::cli {

namespace {

std::atomic<bool> g_interrupted{false};

// The first Ctrl-C stops the download between two writes (partial files stay for a resume); a
// second one ends the process at once.
void on_sigint(int) {
    if (g_interrupted.exchange(true)) ::_exit(130);
}

hub::RepoRef repo_arg(const std::vector<std::string>& rest) {
    if (rest.size() != 1) throw UsageError{"give one model: ORG/NAME[@REVISION]"};
    hub::RepoRef ref;
    std::string why;
    if (!hub::parse_repo_ref(rest[0], ref, &why)) throw UsageError{"'" + rest[0] + "': " + why};
    return ref;
}

}  // namespace

int cmd_pull(int argc, char** argv, int first) {
    ArgParser p("pull", "ORG/NAME[@REVISION]");
    std::vector<std::string> rest = p.parse(argc, argv, first);
    if (p.help_requested()) {
        std::cout << p.help()
                  << "\nDownloads config, tokenizer and safetensors files of a model repository on the Hugging Face hub into\n"
                     "the Hugging Face cache ($HF_HOME/hub), resuming an unfinished download and checking every file's\n"
                     "checksum. Then: fastdllm -m ORG/NAME. Environment: HF_TOKEN, HF_ENDPOINT, HF_HOME, HF_HUB_CACHE,\n"
                     "HF_HUB_OFFLINE (docs/cli.md).\n";
        return 0;
    }
    const hub::RepoRef ref = repo_arg(rest);
    const hub::HubSettings settings = hub::HubSettings::from_environment();

    struct sigaction sa {}, old_int {}, old_xfsz {};
    sa.sa_handler = on_sigint;  // no SA_RESTART: a wait for another process's lock is interrupted too
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, nullptr, &old_int);
    if (old_int.sa_handler != SIG_IGN) ::sigaction(SIGINT, &sa, nullptr);  // a background job keeps ignoring it
    struct sigaction ign {};
    ign.sa_handler = SIG_IGN;
    ::sigaction(SIGXFSZ, &ign, &old_xfsz);  // a file-size limit is then a write error, reported as such
    ::signal(SIGPIPE, SIG_IGN);  // a connection closed under OpenSSL is an error to retry, not the end
    struct Restore {
        struct sigaction *i, *x;
        ~Restore() {
            ::sigaction(SIGINT, i, nullptr);
            ::sigaction(SIGXFSZ, x, nullptr);
        }
    } restore{&old_int, &old_xfsz};

    hub::PullOptions opts;
    opts.user_agent = std::string("fastdllm/") + FASTDLLM_VERSION;
    opts.abort = &g_interrupted;
    PullProgress progress(ref.text());
    hub::PullResult r;
    try {
        r = hub::pull(settings, ref, opts, progress);
    } catch (const hub::Interrupted&) {
        progress.clear();
        std::fprintf(stderr, "fastdllm: interrupted; unfinished files are kept in %s: run the same pull to resume\n",
                     hub::cache_paths(settings.cache_dir, ref.repo).root.c_str());
        return 130;
    } catch (...) {
        progress.clear();
        throw;
    }
    if (r.offline) {
        std::printf("%s: in the cache at %s (HF_HUB_OFFLINE is set: not checked against the hub)\n", ref.text().c_str(),
                    r.snapshot.c_str());
        return 0;
    }
    const std::string commit = r.commit.substr(0, 12);
    if (r.downloaded == 0)
        std::printf("%s is up to date in the cache (commit %s, %d files, %s)\n", ref.text().c_str(), commit.c_str(), r.files,
                    hub::human_bytes(r.bytes).c_str());
    else
        std::printf("pulled %s (commit %s): %d of %d files, %s received in %s\n", ref.text().c_str(), commit.c_str(),
                    r.downloaded, r.files, hub::human_bytes(r.transferred).c_str(), human_duration(progress.seconds()).c_str());
    std::printf("snapshot: %s\nrun it:   fastdllm -m %s\n", r.snapshot.c_str(), ref.text().c_str());
    return 0;
}

}  // namespace fdl::cli

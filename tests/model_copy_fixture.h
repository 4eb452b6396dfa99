// A writable copy of the tiny fixture model in a fresh temporary folder per test, for tests that
// damage model files on purpose (test_load_errors.cpp, test_faults.cpp).
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

class ModelCopyTest : public ::testing::Test {
protected:
    explicit ModelCopyTest(const char* prefix) : prefix_(prefix) {}
    void SetUp() override {
        dir = std::filesystem::temp_directory_path() /
              (prefix_ + std::to_string(::getpid()) + "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::filesystem::remove_all(dir);
        std::filesystem::create_directories(dir);
        for (auto& e : std::filesystem::directory_iterator(FIXTURES_DIR "/tiny/model"))
            std::filesystem::copy_file(e.path(), dir / e.path().filename());
        for (auto& e : std::filesystem::directory_iterator(dir))
            std::filesystem::permissions(e.path(), std::filesystem::perms::owner_write, std::filesystem::perm_options::add);
    }
    void TearDown() override { std::filesystem::remove_all(dir); }

    std::filesystem::path dir;

private:
    std::string prefix_;
};

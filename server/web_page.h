// The web page served at / (server/web/index.html, built into the binary: no files to install,
// nothing fetched from elsewhere).
#pragma once
#include <string>

namespace fdl::server {

const std::string& web_page_html();

}  // namespace fdl::server
